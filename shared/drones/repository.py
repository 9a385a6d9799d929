"""Every query on the `drones` collection."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from beanie import PydanticObjectId
from bson.errors import InvalidId
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from shared.errors import Conflict
from shared.models import Drone

LIVE: dict[str, Any] = {"deletedAt": None}


def parse_id(drone_id: str) -> PydanticObjectId | None:
    try:
        return PydanticObjectId(drone_id)
    except (InvalidId, TypeError, ValueError):
        return None


class DroneRepository:
    async def insert(self, drone: Drone) -> Drone:
        try:
            await drone.insert()
        except DuplicateKeyError as exc:
            raise Conflict(
                f"a drone with deviceSerialNumber '{drone.deviceSerialNumber}' already exists"
            ) from exc
        return drone

    async def get(self, drone_id: str) -> Drone | None:
        oid = parse_id(drone_id)
        if oid is None:
            return None
        return await Drone.find_one({"_id": oid, **LIVE})

    async def get_by_serial(self, serial: str) -> Drone | None:
        return await Drone.find_one({"deviceSerialNumber": serial, **LIVE})

    async def find_page(
        self, filters: dict[str, Any], limit: int, offset: int
    ) -> tuple[list[Drone], int]:
        query = {**filters, **LIVE}
        total = await Drone.find(query).count()
        drones = (
            await Drone.find(query).sort("+createdAt", "+_id").skip(offset).limit(limit).to_list()
        )
        return drones, total

    async def compare_and_set(
        self,
        drone: Drone,
        changes: dict[str, Any],
        outbox: list[dict[str, Any]],
    ) -> Drone | None:
        """Apply `changes` and append `outbox` in one update, if nobody changed the drone since
        it was read. Returns the drone as written, or None when it lost the race."""
        raw = await Drone.get_pymongo_collection().find_one_and_update(
            {"_id": drone.id, "version": drone.version, **LIVE},
            {"$set": changes, "$inc": {"version": 1}, "$push": {"outbox": {"$each": outbox}}},
            return_document=ReturnDocument.AFTER,
        )
        return Drone.model_validate(raw) if raw else None

    async def mark_deleted(
        self, drone: Drone, deleted_at: datetime, outbox: list[dict[str, Any]]
    ) -> Drone | None:
        """Soft-delete: the document stays until its `drone.deleted` event is published."""
        raw = await Drone.get_pymongo_collection().find_one_and_update(
            {"_id": drone.id, **LIVE},
            {
                # The tombstone frees the serial at once; '~' cannot occur in a real serial.
                "$set": {"deletedAt": deleted_at, "deviceSerialNumber": f"~deleted~{drone.id}"},
                "$inc": {"version": 1},
                "$push": {"outbox": {"$each": outbox}},
            },
            return_document=ReturnDocument.AFTER,
        )
        return Drone.model_validate(raw) if raw else None


drone_repository = DroneRepository()
