"""Every query on the `devicePresence` collection."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from shared.models import DevicePresence
from shared.models.presence import PresenceKind

_DRONE = PresenceKind.DRONE.value
_REPLICA = PresenceKind.REPLICA.value


class PresenceRepository:
    async def get_drone(self, drone_id: str) -> DevicePresence | None:
        return await DevicePresence.find_one({"kind": _DRONE, "device_id": drone_id})

    async def insert(self, presence: DevicePresence) -> bool:
        """False when another connection created it first (the caller reads it and retries)."""
        try:
            await presence.insert()
        except DuplicateKeyError:
            return False
        return True

    async def compare_and_set(
        self, presence: DevicePresence, changes: dict[str, Any], outbox: list[dict[str, Any]]
    ) -> DevicePresence | None:
        raw = await DevicePresence.get_pymongo_collection().find_one_and_update(
            {"_id": presence.id, "version": presence.version},
            {"$set": changes, "$inc": {"version": 1}, "$push": {"outbox": {"$each": outbox}}},
            return_document=ReturnDocument.AFTER,
        )
        return DevicePresence.model_validate(raw) if raw else None

    async def close_session(
        self, drone_id: str, session: str, now: datetime, expires_at: datetime, reason: str
    ) -> bool:
        """The socket of `session` closed: keep the drone online until `expires_at` (grace),
        unless a newer session owns it already."""
        result = await DevicePresence.get_pymongo_collection().update_one(
            {"kind": _DRONE, "device_id": drone_id, "session": session, "online": True},
            {
                "$set": {
                    "closed_at": now,
                    "last_seen_at": now,
                    "expires_at": expires_at,
                    "closing_reason": reason,
                },
                "$inc": {"version": 1},
            },
        )
        return bool(result.matched_count)

    async def renew(self, drone_id: str, session: str, now: datetime, expires_at: datetime) -> bool:
        result = await DevicePresence.get_pymongo_collection().update_one(
            {
                "kind": _DRONE,
                "device_id": drone_id,
                "session": session,
                "online": True,
                "closed_at": None,
            },
            # The version bump makes a sweep that read the lapsed lease lose its race.
            {"$set": {"last_seen_at": now, "expires_at": expires_at}, "$inc": {"version": 1}},
        )
        return bool(result.matched_count)

    async def expired(self, now: datetime, limit: int = 500) -> list[DevicePresence]:
        return (
            await DevicePresence.find({"kind": _DRONE, "online": True, "expires_at": {"$lt": now}})
            .limit(limit)
            .to_list()
        )

    async def count_online(self) -> int:
        return await DevicePresence.find({"kind": _DRONE, "online": True}).count()

    async def report_replica(
        self, replica_id: str, counts: dict[str, int], now: datetime, expires_at: datetime
    ) -> None:
        await DevicePresence.get_pymongo_collection().update_one(
            {"kind": _REPLICA, "device_id": replica_id},
            {
                "$set": {"counts": counts, "last_seen_at": now, "expires_at": expires_at},
                "$setOnInsert": {"online": True, "version": 0, "outbox": [], "deletedAt": None},
            },
            upsert=True,
        )

    async def live_replicas(self, now: datetime) -> list[DevicePresence]:
        return await DevicePresence.find({"kind": _REPLICA, "expires_at": {"$gte": now}}).to_list()

    async def delete_replica(self, replica_id: str) -> None:
        await DevicePresence.get_pymongo_collection().delete_one(
            {"kind": _REPLICA, "device_id": replica_id}
        )

    async def purge_replicas(self, expired_before: datetime) -> None:
        await DevicePresence.get_pymongo_collection().delete_many(
            {"kind": _REPLICA, "expires_at": {"$lt": expired_before}}
        )


presence_repository = PresenceRepository()
