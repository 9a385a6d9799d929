"""The embedded engine's TTL expiry (what `dronecast dev` stores readings in): documents go
once their date is older than the index allows, whichever way they were written or changed,
and the rest stay. MongoDB does this itself, so these tests are about the embedded engine
only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bson import ObjectId

from shared.mongo_embedded import EmbeddedMongoClient, expire_now

HOUR = 3600


@pytest.fixture
async def readings() -> Any:
    collection = EmbeddedMongoClient()["ttl_test"]["readings"]
    await collection.create_index("timestamp", expireAfterSeconds=HOUR)
    return collection


def ago(seconds: float) -> datetime:
    return datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=seconds)


async def ids(collection: Any) -> set[str]:
    return {document["name"] async for document in collection.find({})}


async def test_documents_older_than_the_index_allows_expire_and_the_rest_stay(
    readings: Any,
) -> None:
    await readings.insert_many(
        [
            {"_id": ObjectId(), "name": "old", "timestamp": ago(HOUR + 60)},
            {"_id": ObjectId(), "name": "new", "timestamp": ago(60)},
            {"_id": ObjectId(), "name": "undated", "timestamp": "yesterday"},
            {"_id": ObjectId(), "name": "none"},
        ],
        ordered=False,  # the lean path telemetry writes with
    )
    await readings.insert_one({"name": "old one by one", "timestamp": ago(2 * HOUR)})
    await readings.insert_one(
        {"name": "aware", "timestamp": datetime.now(UTC) - timedelta(hours=3)}
    )
    await readings.insert_one({"name": "dates", "timestamp": [ago(60), ago(HOUR + 60)]})
    expire_now(readings)
    assert await ids(readings) == {"new", "undated", "none"}
    # later writes are seen too, after the first expiry built what it uses
    await readings.insert_many(
        [{"_id": ObjectId(), "name": "late and old", "timestamp": ago(HOUR + 1)}], ordered=False
    )
    await readings.insert_one({"name": "late and new", "timestamp": ago(1)})
    expire_now(readings)
    assert await ids(readings) == {"new", "undated", "none", "late and new"}


async def test_a_changed_date_decides_not_the_one_it_was_written_with(readings: Any) -> None:
    await readings.insert_one({"name": "renewed", "timestamp": ago(10)})
    await readings.insert_one({"name": "backdated", "timestamp": ago(10)})
    await readings.insert_one({"name": "deleted", "timestamp": ago(10)})
    expire_now(readings)  # nothing due yet
    await readings.update_one({"name": "renewed"}, {"$set": {"timestamp": ago(-HOUR)}})
    await readings.replace_one(
        {"name": "backdated"}, {"name": "backdated", "timestamp": ago(2 * HOUR)}
    )
    await readings.replace_one({"name": "renewed"}, {"name": "renewed", "timestamp": ago(5)})
    await readings.update_many({"name": "missing"}, {"$set": {"timestamp": ago(5)}}, upsert=True)
    await readings.delete_one({"name": "deleted"})
    expire_now(readings)
    assert await ids(readings) == {"renewed", "missing"}


async def test_a_dropped_collection_starts_over(readings: Any) -> None:
    await readings.insert_one({"name": "before", "timestamp": ago(10)})
    expire_now(readings)
    await readings.drop()
    await readings.create_index("timestamp", expireAfterSeconds=HOUR)
    await readings.insert_one({"name": "after", "timestamp": ago(HOUR + 10)})
    await readings.insert_one({"name": "kept", "timestamp": ago(10)})
    expire_now(readings)
    assert await ids(readings) == {"kept"}
