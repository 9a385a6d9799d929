"""Every query on the `telemetry` collection: readings, their history, and anomaly alerts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from beanie import PydanticObjectId
from bson.errors import InvalidId
from pymongo import DESCENDING, ReturnDocument

from shared.models import TelemetryReading

NEWEST_FIRST = [("timestamp", DESCENDING), ("_id", DESCENDING)]


def parse_id(reading_id: str) -> PydanticObjectId | None:
    try:
        return PydanticObjectId(reading_id)
    except (InvalidId, TypeError, ValueError):
        return None


class TelemetryRepository:
    async def insert_many(self, readings: list[TelemetryReading]) -> None:
        """Store `readings` in the order given (ids were assigned by the caller)."""
        await TelemetryReading.insert_many(readings)

    async def recent_values(self, sensor_id: str, count: int) -> list[float]:
        """The sensor's last `count` values, newest first (index sensor_id, timestamp)."""
        cursor = (
            TelemetryReading.get_pymongo_collection()
            .find({"sensor_id": sensor_id}, {"value": 1, "_id": 0})
            .sort(NEWEST_FIRST)
            .limit(count)
        )
        return [float(raw["value"]) async for raw in cursor]

    async def get(self, reading_id: str) -> TelemetryReading | None:
        oid = parse_id(reading_id)
        if oid is None:
            return None
        return await TelemetryReading.get(oid)

    async def find_page(
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

    async def resolve(
        self, reading: TelemetryReading, changes: dict[str, Any], outbox: list[dict[str, Any]]
    ) -> TelemetryReading | None:
        """Mark an open anomaly resolved, with its event, in one update. None if it was not
        open any more (someone resolved it first)."""
        raw = await TelemetryReading.get_pymongo_collection().find_one_and_update(
            {"_id": reading.id, "is_anomaly": True, "resolved": False},
            {"$set": changes, "$inc": {"version": 1}, "$push": {"outbox": {"$each": outbox}}},
            return_document=ReturnDocument.AFTER,
        )
        return TelemetryReading.model_validate(raw) if raw else None

    # --- statistics ------------------------------------------------------------------------

    async def count(self, query: dict[str, Any]) -> int:
        return int(await TelemetryReading.get_pymongo_collection().count_documents(query))

    async def anomaly_counts(self, query: dict[str, Any]) -> dict[tuple[str, bool], int]:
        """Anomalies by (severity, resolved)."""
        cursor = await TelemetryReading.get_pymongo_collection().aggregate(
            [
                {"$match": {**query, "is_anomaly": True}},
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

    async def active_sensors(self, query: dict[str, Any], since: datetime) -> int:
        """Distinct sensors with a reading received at or after `since`."""
        cursor = await TelemetryReading.get_pymongo_collection().aggregate(
            [
                {"$match": {**query, "received_at": {"$gte": since}}},
                {"$group": {"_id": "$sensor_id"}},
                {"$count": "n"},
            ]
        )
        rows = await cursor.to_list(None)
        return int(rows[0]["n"]) if rows else 0


telemetry_repository = TelemetryRepository()
