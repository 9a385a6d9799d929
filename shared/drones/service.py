"""Drone registry: writes, change detection (seed 002) and the events they cause."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from beanie import PydanticObjectId

from shared.auth import Principal
from shared.broker import Broker
from shared.drones.repository import DroneRepository, drone_repository
from shared.drones.schemas import NOT_NULL_FIELDS, DroneCreate, DroneUpdate
from shared.errors import Conflict, Forbidden, InvalidInput, NotFound
from shared.events import EventName, PendingEvent
from shared.logging import get_logger
from shared.models import Drone
from shared.models.base import utcnow
from shared.outbox import drain, outbox_entries

log = get_logger(__name__)

# Fields with an event of their own besides `drone.updated` (seed 002 "Change Detection Flow").
SPECIFIC_EVENTS: dict[str, EventName] = {
    "streamIsOn": EventName.DRONE_STREAM_STATUS,
    "aiDetectionEnabled": EventName.DRONE_AI_TOGGLED,
    "detectionClasses": EventName.DRONE_CLASSES_CHANGED,
}
_MAX_UPDATE_ATTEMPTS = 20


def detect_changes(drone: Drone, requested: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """field -> {"old", "new"} for every requested field whose value differs."""
    current = drone.public()
    return {
        field: {"old": current[field], "new": value}
        for field, value in requested.items()
        if current[field] != value
    }


def update_events(
    drone_after: dict[str, Any], changes: dict[str, dict[str, Any]]
) -> list[PendingEvent]:
    serial = drone_after["deviceSerialNumber"]
    events = [
        PendingEvent(
            EventName.DRONE_UPDATED,
            serial,
            {"full": drone_after, "changes": changes},
            snapshot=drone_after,
        )
    ]
    for field, name in SPECIFIC_EVENTS.items():
        if field in changes:
            events.append(
                PendingEvent(
                    name,
                    serial,
                    {
                        field: changes[field]["new"],
                        "changes": {field: changes[field]},
                        "full": drone_after,
                    },
                )
            )
    return events


class DroneService:
    def __init__(self, repository: DroneRepository) -> None:
        self.repository = repository

    async def register(self, broker: Broker, principal: Principal, body: DroneCreate) -> Drone:
        if not principal.may_see(body.deviceSerialNumber):
            raise Forbidden(f"the token may not manage drone '{body.deviceSerialNumber}'")
        drone = Drone(id=PydanticObjectId(), **body.model_dump())
        full = drone.public()
        created = PendingEvent(
            EventName.DRONE_CREATED, drone.deviceSerialNumber, {"full": full}, snapshot=full
        )
        drone.outbox = outbox_entries([created])
        await self.repository.insert(drone)
        await drain(broker, Drone, drone.id, drone.outbox)
        log.info("drone_registered", serial=drone.deviceSerialNumber, drone_id=str(drone.id))
        return drone

    async def get(self, principal: Principal, drone_id: str) -> Drone:
        drone = await self.repository.get(drone_id)
        if drone is None or not principal.may_see(drone.deviceSerialNumber):
            raise NotFound(f"no drone with id '{drone_id}'")
        return drone

    async def get_by_serial(self, principal: Principal, serial: str) -> Drone:
        drone = await self.repository.get_by_serial(serial) if principal.may_see(serial) else None
        if drone is None:
            raise NotFound(f"no drone with deviceSerialNumber '{serial}'")
        return drone

    async def list(
        self, principal: Principal, limit: int, offset: int, filters: dict[str, Any]
    ) -> tuple[list[Drone], int]:
        query = {key: value for key, value in filters.items() if value is not None}
        if principal.drones is not None:
            query["deviceSerialNumber"] = {"$in": sorted(principal.drones)}
        return await self.repository.find_page(query, limit, offset)

    async def update(self, broker: Broker, drone: Drone, body: DroneUpdate) -> Drone:
        requested = body.model_dump(exclude_unset=True)
        for field in NOT_NULL_FIELDS:
            if field in requested and requested[field] is None:
                raise InvalidInput(f"{field} cannot be null")
        for _ in range(_MAX_UPDATE_ATTEMPTS):
            changes = detect_changes(drone, requested)
            if not changes:
                return drone  # a no-op update writes nothing and publishes nothing
            now = utcnow()
            after = drone.model_copy(
                update={**{f: c["new"] for f, c in changes.items()}, "updatedAt": now}
            )
            events = update_events(after.public(), changes)
            written = await self.repository.compare_and_set(
                drone,
                {**{f: c["new"] for f, c in changes.items()}, "updatedAt": now},
                outbox_entries(events),
            )
            if written is not None:
                await drain(broker, Drone, written.id, written.outbox)
                log.info("drone_updated", serial=written.deviceSerialNumber, fields=sorted(changes))
                return written
            # Someone changed the drone since we read it: diff against what is there now.
            fresh = await self.repository.get(str(drone.id))
            if fresh is None:
                raise NotFound(f"drone '{drone.deviceSerialNumber}' was deleted")
            drone = fresh
        raise Conflict("the drone is being changed concurrently; try again")

    async def mirror_presence(
        self, broker: Broker, serial: str, online: bool, at: datetime
    ) -> None:
        """Presence (kept in `devicePresence`) changed: a registered drone's document follows.
        When `online` flips, `drone.updated` (changes.online) goes out with the new snapshot,
        in order with every other change of the drone. `lastSeenAt` alone publishes nothing."""
        for _ in range(_MAX_UPDATE_ATTEMPTS):
            drone = await self.repository.get_by_serial(serial)
            if drone is None:
                return  # alerts and tasks may name drones that are not registered
            changes: dict[str, Any] = {"lastSeenAt": at}
            events: list[PendingEvent] = []
            if drone.online != online:
                changes["online"] = online
                after = drone.model_copy(update=changes)
                events = update_events(
                    after.public(), {"online": {"old": drone.online, "new": online}}
                )
            written = await self.repository.compare_and_set(drone, changes, outbox_entries(events))
            if written is not None:
                if events:
                    await drain(broker, Drone, written.id, written.outbox)
                return
        log.warning("presence_mirror_gave_up", serial=serial)

    async def delete(self, broker: Broker, drone: Drone) -> Drone:
        full = drone.public()
        deleted = PendingEvent(
            EventName.DRONE_DELETED,
            drone.deviceSerialNumber,
            {"full": full},
            deletes_snapshot=True,
        )
        written = await self.repository.mark_deleted(drone, utcnow(), outbox_entries([deleted]))
        if written is None:
            raise NotFound(f"no drone with id '{drone.id}'")
        await drain(broker, Drone, written.id, written.outbox)
        log.info("drone_deleted", serial=drone.deviceSerialNumber, drone_id=str(drone.id))
        return drone


drone_service = DroneService(drone_repository)
