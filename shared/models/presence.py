"""The `devicePresence` collection: which drones are online, held by which socket.

One document per drone serial (registered or not). `session` names the one connection that owns
the drone's presence; every change compare-and-sets on it (or on `version`), so a replica that
lost the drone to a newer connection can never mark it offline. `expires_at` is a lease: the
replica holding the socket renews it, a closed socket shortens it to the grace period, and when
it lapses any replica marks the drone offline. `drone.online`/`drone.offline` are written to the
outbox in the same update as the change.

Documents of kind `replica` are each api replica's heartbeat with its connection counts.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from beanie import Document
from pydantic import Field
from pymongo import ASCENDING, IndexModel

from shared.models.base import OutboxMixin


class PresenceKind(StrEnum):
    DRONE = "drone"
    REPLICA = "replica"


class DevicePresence(OutboxMixin, Document):
    kind: PresenceKind
    device_id: str
    online: bool = False
    session: str | None = None
    connected_at: datetime | None = None
    last_seen_at: datetime | None = None
    expires_at: datetime | None = None
    # Set when the socket closed; the drone stays online until `expires_at` (the grace period).
    closed_at: datetime | None = None
    closing_reason: str | None = None
    # Replica documents: the replica's connections when it last renewed.
    counts: dict[str, int] = Field(default_factory=dict)

    class Settings:
        name = "devicePresence"
        use_revision = False
        indexes = [
            IndexModel([("kind", ASCENDING), ("device_id", ASCENDING)], unique=True),
            IndexModel([("kind", ASCENDING), ("online", ASCENDING), ("expires_at", ASCENDING)]),
            IndexModel([("outbox.timestamp", ASCENDING)], sparse=True),
        ]
