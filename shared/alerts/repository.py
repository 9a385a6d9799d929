"""Every query on the `alerts` collection, including the commands that responses leave."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from shared.models import Alert
from shared.models.alert import CommandState


class AlertRepository:
    async def insert(self, alert: Alert) -> bool:
        """False when the alert_id is taken (the caller makes a new one)."""
        try:
            await alert.insert()
        except DuplicateKeyError:
            return False
        return True

    async def get(self, alert_id: str) -> Alert | None:
        return await Alert.find_one({"alert_id": alert_id})

    async def find_page(
        self, query: dict[str, Any], limit: int, offset: int
    ) -> tuple[list[Alert], int]:
        total = await Alert.find(query).count()
        alerts = (
            await Alert.find(query).sort("-timestamp", "-_id").skip(offset).limit(limit).to_list()
        )
        return alerts, total

    async def compare_and_set(
        self, alert: Alert, changes: dict[str, Any], outbox: list[dict[str, Any]]
    ) -> Alert | None:
        """Apply `changes` and append `outbox` in one update if nobody changed the alert since it
        was read. None when it lost the race."""
        raw = await Alert.get_pymongo_collection().find_one_and_update(
            {"_id": alert.id, "version": alert.version},
            {"$set": changes, "$inc": {"version": 1}, "$push": {"outbox": {"$each": outbox}}},
            return_document=ReturnDocument.AFTER,
        )
        return Alert.model_validate(raw) if raw else None

    # --- commands --------------------------------------------------------------------------

    async def claim_command(self, drone_id: str, session: str, now: datetime) -> Alert | None:
        """Take the drone's oldest pending command for one connection. Atomic, so of any number
        of replicas and connections racing, exactly one gets each command."""
        raw = await Alert.get_pymongo_collection().find_one_and_update(
            {"drone_id": drone_id, "command_state": CommandState.PENDING.value},
            {
                "$set": {
                    "command_state": CommandState.DELIVERED.value,
                    "command_session": session,
                    "command_delivered_at": now,
                }
            },
            sort=[("responded_at", ASCENDING), ("_id", ASCENDING)],
            return_document=ReturnDocument.AFTER,
        )
        return Alert.model_validate(raw) if raw else None

    async def release_command(self, alert_id: str, session: str) -> bool:
        """Give a claimed command back (its socket failed before it was written)."""
        result = await Alert.get_pymongo_collection().update_one(
            {
                "alert_id": alert_id,
                "command_state": CommandState.DELIVERED.value,
                "command_session": session,
            },
            {"$set": _PENDING_AGAIN},
        )
        return bool(result.modified_count)

    async def release_unconfirmed(self, session: str, since: datetime) -> int:
        """Give back what a connection was sent after it was last heard from: when it turns out
        to have been half-open, nothing sent after that point can have arrived."""
        result = await Alert.get_pymongo_collection().update_many(
            {
                "command_session": session,
                "command_state": CommandState.DELIVERED.value,
                "command_delivered_at": {"$gte": since},
            },
            {"$set": _PENDING_AGAIN},
        )
        return int(result.modified_count)

    async def drones_with_pending_commands(self, drone_ids: list[str]) -> set[str]:
        if not drone_ids:
            return set()
        cursor = Alert.get_pymongo_collection().find(
            {"drone_id": {"$in": drone_ids}, "command_state": CommandState.PENDING.value},
            {"drone_id": 1},
        )
        return {raw["drone_id"] async for raw in cursor}

    # --- statistics ------------------------------------------------------------------------

    async def counts(self, query: dict[str, Any]) -> dict[str, Any]:
        def by(field: str) -> list[dict[str, Any]]:
            return [{"$group": {"_id": f"${field}", "n": {"$sum": 1}}}]

        cursor = await Alert.get_pymongo_collection().aggregate(
            [
                {"$match": query},
                {
                    "$facet": {
                        "status": by("status"),
                        "type": by("alert_type"),
                        "severity": by("severity"),
                        "command": by("command_state"),
                    }
                },
            ]
        )
        [facets] = await cursor.to_list(None)
        return {
            name: {str(row["_id"]): int(row["n"]) for row in rows if row["_id"] is not None}
            for name, rows in facets.items()
        }


_PENDING_AGAIN: dict[str, Any] = {
    "command_state": CommandState.PENDING.value,
    "command_session": None,
    "command_delivered_at": None,
}

alert_repository = AlertRepository()
