"""Every query on telemetry's collections: `telemetry` (readings) and `telemetryAlerts`.

Writes are idempotent by id: a reading (or an alert) delivered twice is stored once, so a
consumer may redo a batch after a crash. Each list query is an equality on at most one indexed
field plus a `timestamp` range, sorted newest first: one index of `TelemetryReading.Settings`
answers it (see `index_for`).
"""

from __future__ import annotations

from typing import Any

from beanie import PydanticObjectId
from bson.errors import InvalidId
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.errors import BulkWriteError

from shared.models import TelemetryAlert, TelemetryReading
from shared.models.telemetry import RETENTION_INDEX

NEWEST_FIRST = [("timestamp", DESCENDING), ("_id", DESCENDING)]
_DUPLICATE_KEY = 11000


def parse_id(raw: str) -> PydanticObjectId | None:
    try:
        return PydanticObjectId(raw)
    except (InvalidId, TypeError, ValueError):
        return None


async def insert_once(collection: Any, documents: list[dict[str, Any]]) -> int:
    """Insert `documents`, skipping any whose `_id` is already stored; returns how many were
    new. Unordered, so one duplicate does not stop the rest."""
    if not documents:
        return 0
    try:
        result = await collection.insert_many(documents, ordered=False)
        return len(result.inserted_ids)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(error.get("code") != _DUPLICATE_KEY for error in errors):
            raise
        return int(exc.details.get("nInserted", len(documents) - len(errors)))


class TelemetryRepository:
    # --- writes (the consumer) ------------------------------------------------------------

    async def store_readings(self, documents: list[dict[str, Any]]) -> int:
        return await insert_once(TelemetryReading.get_pymongo_collection(), documents)

    async def store_alerts(self, documents: list[dict[str, Any]]) -> int:
        return await insert_once(TelemetryAlert.get_pymongo_collection(), documents)

    async def ensure_retention(self, seconds: int) -> None:
        """The TTL index that expires readings `seconds` after their timestamp; remade when
        the setting changed."""
        collection = TelemetryReading.get_pymongo_collection()
        indexes = await collection.index_information()
        current = indexes.get(RETENTION_INDEX)
        if current is not None and current.get("expireAfterSeconds") == seconds:
            return
        if current is not None:
            await collection.drop_index(RETENTION_INDEX)
        await collection.create_index(
            [("timestamp", ASCENDING)], name=RETENTION_INDEX, expireAfterSeconds=seconds
        )

    # --- reads ------------------------------------------------------------------------------

    async def find_readings(
        self, query: dict[str, Any], limit: int, offset: int
    ) -> tuple[list[TelemetryReading], int]:
        total = await TelemetryReading.find(query).count()
        readings = (
            await TelemetryReading.find(query)
            .sort("-timestamp", "-_id")
            .skip(offset)
            .limit(limit)
            .to_list()
        )
        return readings, total

    async def find_alerts(
        self, query: dict[str, Any], limit: int, offset: int
    ) -> tuple[list[TelemetryAlert], int]:
        total = await TelemetryAlert.find(query).count()
        alerts = (
            await TelemetryAlert.find(query)
            .sort("-timestamp", "-_id")
            .skip(offset)
            .limit(limit)
            .to_list()
        )
        return alerts, total

    async def get_alert(self, alert_id: str) -> TelemetryAlert | None:
        oid = parse_id(alert_id)
        if oid is None:
            return None
        return await TelemetryAlert.get(oid)

    async def resolve(
        self, alert: TelemetryAlert, changes: dict[str, Any], outbox: list[dict[str, Any]]
    ) -> TelemetryAlert | None:
        """Mark an open alert resolved, with its event, in one update. None if it was not
        open any more (someone resolved it first)."""
        raw = await TelemetryAlert.get_pymongo_collection().find_one_and_update(
            {"_id": alert.id, "resolved": False},
            {"$set": changes, "$inc": {"version": 1}, "$push": {"outbox": {"$each": outbox}}},
            return_document=ReturnDocument.AFTER,
        )
        return TelemetryAlert.model_validate(raw) if raw else None

    # --- statistics ------------------------------------------------------------------------

    async def count(self, query: dict[str, Any]) -> int:
        return int(await TelemetryReading.get_pymongo_collection().count_documents(query))

    async def alert_counts(self, query: dict[str, Any]) -> dict[tuple[str, bool], int]:
        """Alerts by (severity, resolved)."""
        cursor = await TelemetryAlert.get_pymongo_collection().aggregate(
            [
                {"$match": query},
                {
                    "$group": {
                        "_id": {"severity": "$severity", "resolved": "$resolved"},
                        "n": {"$sum": 1},
                    }
                },
            ]
        )
        rows = await cursor.to_list(None)
        return {
            (str(row["_id"]["severity"]), bool(row["_id"]["resolved"])): int(row["n"])
            for row in rows
        }


def index_for(model: type, query: dict[str, Any]) -> list[tuple[str, int]] | None:
    """The declared index that serves `query` sorted newest first: one whose first field is
    one of the query's equality fields followed by `timestamp`, else the one that starts with
    `timestamp`; the other equality fields filter what it finds. None if none does."""
    equal = {field for field in query if field != "timestamp"}
    indexes = [list(index.document["key"].items()) for index in model.Settings.indexes]  # type: ignore[attr-defined]
    for keys in indexes:
        fields = [field for field, _ in keys]
        if fields[0] in equal and fields[1:2] == ["timestamp"]:
            return keys
    # No equality field is indexed: the time index gives the order and the window, and the
    # other fields filter what it finds.
    return next((keys for keys in indexes if keys[0][0] == "timestamp"), None)


telemetry_repository = TelemetryRepository()
