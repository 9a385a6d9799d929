"""Drone presence: `online` while a socket is open, `offline` within a bounded time after not.

- A socket opens: the drone is online (`drone.online` if it was not), owned by that session.
- It closes: the drone stays online for the grace period, so a reconnect to any replica does
  not flap; then whichever replica sweeps first marks it offline (`drone.offline`).
- It goes silent (half-open): the replica closes it and marks the drone offline at once.
- The replica holding it dies: its lease is not renewed, and any replica marks it offline when
  the lease lapses.

Every change compare-and-sets on the owning session or the document version, so a stale timer
or an old replica can never mark offline a drone that reconnected elsewhere. Events go in the
presence document's outbox in the same update. Registered drones get `online`/`lastSeenAt`
mirrored into their `drones` document.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pymongo.errors import PyMongoError

from shared.broker import Broker
from shared.devices.repository import PresenceRepository, presence_repository
from shared.drones.repository import DroneRepository, drone_repository
from shared.drones.service import drone_service
from shared.errors import Conflict
from shared.events import EventName, PendingEvent, format_timestamp
from shared.logging import get_logger
from shared.models import DevicePresence
from shared.models.base import utcnow
from shared.models.presence import PresenceKind
from shared.outbox import drain, outbox_entries

log = get_logger(__name__)

_MAX_ATTEMPTS = 20
LEASE_EXPIRED = "lease_expired"


def _presence_event(drone_id: str, online: bool, reason: str, at: datetime) -> PendingEvent:
    return PendingEvent(
        EventName.DRONE_ONLINE if online else EventName.DRONE_OFFLINE,
        drone_id,
        {"online": online, "reason": reason, "lastSeenAt": format_timestamp(at)},
    )


class PresenceService:
    def __init__(self, repository: PresenceRepository, drones: DroneRepository) -> None:
        self.repository = repository
        self.drones = drones

    async def connected(self, broker: Broker, drone_id: str, session: str, lease: float) -> int:
        """`session` now owns the drone's presence. Returns the presence version it wrote,
        which orders connections of one drone across replicas."""
        for _ in range(_MAX_ATTEMPTS):
            now = utcnow()
            fields: dict[str, Any] = {
                "online": True,
                "session": session,
                "connected_at": now,
                "last_seen_at": now,
                "expires_at": now + timedelta(seconds=lease),
                "closed_at": None,
                "closing_reason": None,
            }
            current = await self.repository.get_drone(drone_id)
            went_online = current is None or not current.online
            events = [_presence_event(drone_id, True, "connected", now)] if went_online else []
            if current is None:
                written: DevicePresence | None = DevicePresence(
                    kind=PresenceKind.DRONE,
                    device_id=drone_id,
                    version=1,
                    outbox=outbox_entries(events),
                    **fields,
                )
                assert written is not None
                if not await self.repository.insert(written):
                    continue
            else:
                written = await self.repository.compare_and_set(
                    current, fields, outbox_entries(events)
                )
                if written is None:
                    continue
            await drain(broker, DevicePresence, written.id, written.outbox)
            await self._mirror(broker, drone_id, True, now)
            if went_online:
                log.info("drone_online", drone_id=drone_id, session=session)
            return written.version
        raise Conflict(f"presence of drone '{drone_id}' is changing too fast; try again")

    async def closed(
        self, broker: Broker, drone_id: str, session: str, reason: str, grace: float
    ) -> None:
        """The socket closed: offline after `grace` unless the drone reconnects meanwhile."""
        if grace <= 0:
            await self.lost(broker, drone_id, session, reason)
            return
        now = utcnow()
        await self.repository.close_session(
            drone_id, session, now, now + timedelta(seconds=grace), reason
        )

    async def lost(self, broker: Broker, drone_id: str, session: str, reason: str) -> bool:
        """Offline now, if `session` still owns the drone."""
        for _ in range(_MAX_ATTEMPTS):
            current = await self.repository.get_drone(drone_id)
            if current is None or not current.online or current.session != session:
                return False
            if await self._go_offline(broker, current, reason):
                return True
        return False

    async def renew(self, broker: Broker, drone_id: str, session: str, lease: float) -> str:
        """Extend the lease of a drone whose socket is open here. Returns "renewed", "taken"
        (a newer session owns it: this socket is stale) or "lost" (it was marked offline, e.g.
        while this replica could not reach MongoDB: the caller marks it online again)."""
        now = utcnow()
        if await self.repository.renew(drone_id, session, now, now + timedelta(seconds=lease)):
            await self._mirror(broker, drone_id, True, now)
            return "renewed"
        current = await self.repository.get_drone(drone_id)
        if current is not None and current.online and current.session != session:
            return "taken"
        return "lost"

    async def sweep(self, broker: Broker) -> int:
        """Mark offline every drone whose lease or grace period has lapsed. Any replica may do
        it; the version compare-and-set makes each transition happen once."""
        swept = 0
        for presence in await self.repository.expired(utcnow()):
            reason = presence.closing_reason or LEASE_EXPIRED
            if await self._go_offline(broker, presence, reason):
                swept += 1
        return swept

    async def _go_offline(self, broker: Broker, presence: DevicePresence, reason: str) -> bool:
        now = utcnow()
        written = await self.repository.compare_and_set(
            presence,
            {
                "online": False,
                "session": None,
                "expires_at": None,
                "closed_at": presence.closed_at or now,
                "last_seen_at": presence.closed_at or now,
                "closing_reason": None,
            },
            outbox_entries([_presence_event(presence.device_id, False, reason, now)]),
        )
        if written is None:
            return False
        await drain(broker, DevicePresence, written.id, written.outbox)
        await self._mirror(broker, presence.device_id, False, written.last_seen_at or now)
        log.info("drone_offline", drone_id=presence.device_id, reason=reason)
        return True

    async def _mirror(self, broker: Broker, drone_id: str, online: bool, at: datetime) -> None:
        try:
            await drone_service.mirror_presence(broker, drone_id, online, at)
        except PyMongoError as exc:  # presence itself is written; the next renewal repairs this
            log.warning("presence_mirror_failed", drone_id=drone_id, error=str(exc))

    # --- connection counts ---------------------------------------------------------------

    async def count_online(self) -> int:
        return await self.repository.count_online()

    async def report_replica(self, replica_id: str, counts: dict[str, int], lease: float) -> None:
        now = utcnow()
        await self.repository.report_replica(
            replica_id, counts, now, now + timedelta(seconds=lease)
        )
        await self.repository.purge_replicas(now - timedelta(hours=1))

    async def other_replicas(self, replica_id: str) -> list[dict[str, int]]:
        return [
            replica.counts
            for replica in await self.repository.live_replicas(utcnow())
            if replica.device_id != replica_id
        ]

    async def forget_replica(self, replica_id: str) -> None:
        await self.repository.delete_replica(replica_id)


presence_service = PresenceService(presence_repository, drone_repository)
