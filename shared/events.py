"""The event envelope and the one enum of event names.

An event is built as a `PendingEvent` (everything but its id), handed to the broker, and the
broker assigns the id when it publishes. On the wire the envelope is:

    {"id": "<stream id>", "event": "drone.updated", "serial": "SN1",
     "timestamp": "2026-01-01T12:00:00.000Z", "data": {...}}

Ids are Redis stream ids (`<ms>-<seq>`). On one Redis they increase across the whole system, so
one id orders every event and a client can resume from the last one it saw. On a Redis Cluster
they increase within a partition (a hash slot, which holds every event of a drone): see
`PendingEvent.partition_key` and the README's "Delivery guarantees".
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import orjson

from shared.channels import SYSTEM_BROADCAST, ChannelKind, drone_channel, fleet_channel


class EventName(StrEnum):
    DRONE_CREATED = "drone.created"
    DRONE_UPDATED = "drone.updated"
    DRONE_DELETED = "drone.deleted"
    DRONE_STREAM_STATUS = "drone.stream.status"
    DRONE_AI_TOGGLED = "drone.ai.detection.toggled"
    DRONE_CLASSES_CHANGED = "drone.detection.classes.changed"
    DRONE_ONLINE = "drone.online"
    DRONE_OFFLINE = "drone.offline"
    ALERT_CREATED = "alert.created"
    ALERT_RESPONDED = "alert.responded"
    ALERT_COMPLETED = "alert.completed"
    TASK_CREATED = "task.created"
    TASK_DISPATCHED = "task.dispatched"
    TASK_STATUS = "task.status"
    TASK_COMPLETED = "task.completed"
    TASK_FAILED = "task.failed"
    TELEMETRY_ANOMALY = "telemetry.anomaly"
    SYSTEM_BROADCAST = "system.broadcast"


_KIND_BY_EVENT: dict[EventName, ChannelKind] = {
    EventName.DRONE_CREATED: ChannelKind.CREATED,
    EventName.DRONE_UPDATED: ChannelKind.UPDATED,
    EventName.DRONE_DELETED: ChannelKind.DELETED,
    EventName.DRONE_STREAM_STATUS: ChannelKind.STREAM,
    EventName.DRONE_AI_TOGGLED: ChannelKind.AI,
    EventName.DRONE_CLASSES_CHANGED: ChannelKind.CONFIG,
    EventName.DRONE_ONLINE: ChannelKind.PRESENCE,
    EventName.DRONE_OFFLINE: ChannelKind.PRESENCE,
    EventName.ALERT_CREATED: ChannelKind.INCIDENT,
    EventName.ALERT_RESPONDED: ChannelKind.INCIDENT,
    EventName.ALERT_COMPLETED: ChannelKind.INCIDENT,
    EventName.TASK_CREATED: ChannelKind.TASK,
    EventName.TASK_DISPATCHED: ChannelKind.TASK,
    EventName.TASK_STATUS: ChannelKind.TASK,
    EventName.TASK_COMPLETED: ChannelKind.TASK,
    EventName.TASK_FAILED: ChannelKind.TASK,
    EventName.TELEMETRY_ANOMALY: ChannelKind.TELEMETRY,
}

# Socket.IO event a client receives, by channel kind (seed 001: `drone:event`, `system:event`).
_SIO_EVENT_BY_KIND: dict[str, str] = {
    ChannelKind.INCIDENT.value: "alert:event",
    ChannelKind.TASK.value: "task:event",
    ChannelKind.TELEMETRY.value: "alert:event",
    "broadcast": "system:event",
}
DRONE_SIO_EVENT = "drone:event"


def sio_event_for_kind(kind: str) -> str:
    return _SIO_EVENT_BY_KIND.get(kind, DRONE_SIO_EVENT)


def channel_for(name: EventName, serial: str | None) -> str:
    """`drone:{serial}:{kind}`; an event of no drone (a telemetry anomaly of a sensor that is on
    no drone) goes on the fleet-wide `drone:all:{kind}`, which only all-drone subscribers get."""
    if name is EventName.SYSTEM_BROADCAST:
        return SYSTEM_BROADCAST
    if serial is None:
        return fleet_channel(_KIND_BY_EVENT[name])
    return drone_channel(serial, _KIND_BY_EVENT[name])


EVENT_ID_RE = re.compile(r"^(\d{1,20})-(\d{1,20})$")


def parse_event_id(event_id: str) -> tuple[int, int]:
    """`"1700000000000-3"` -> (1700000000000, 3). Raises ValueError on anything else."""
    match = EVENT_ID_RE.match(event_id)
    if match is None:
        raise ValueError(f"not an event id: {event_id!r}")
    return int(match.group(1)), int(match.group(2))


def iso_now() -> str:
    return format_timestamp(datetime.now(UTC))


def format_timestamp(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


@dataclass(frozen=True, slots=True)
class PendingEvent:
    """An event that has not been published yet. `uid` makes publishing it idempotent."""

    name: EventName
    serial: str | None
    data: dict[str, Any]
    timestamp: str = field(default_factory=iso_now)
    uid: str = field(default_factory=lambda: uuid.uuid4().hex)
    # The drone's full current state, kept by the broker as the snapshot for `snapshot: true`.
    # None leaves the snapshot as it is; `deletes_snapshot` removes it.
    snapshot: dict[str, Any] | None = None
    deletes_snapshot: bool = False

    @property
    def channel(self) -> str:
        return channel_for(self.name, self.serial)

    @property
    def partition_key(self) -> str:
        """What orders this event with others on a Redis Cluster (its hash slot): its drone; a
        system broadcast its channel; a telemetry anomaly of a sensor on no drone its sensor, so
        that sensor's events stay in order while the fleet's spread over every slot."""
        if self.serial is not None:
            return self.serial
        if self.name is EventName.SYSTEM_BROADCAST:
            return SYSTEM_BROADCAST
        sensor = self.data.get("sensor_id")
        return f"sensor:{sensor}" if isinstance(sensor, str) else f"event:{self.uid}"

    def body_without_id(self) -> bytes:
        """The envelope's JSON after its `"id"` member: `"event":...}`.

        The broker prepends `{"id":"<id>",` once the id exists, so the envelope is encoded once.
        """
        encoded = orjson.dumps(
            {
                "event": self.name.value,
                "serial": self.serial,
                "timestamp": self.timestamp,
                "data": self.data,
            }
        )
        return encoded[1:]

    def to_dict(self) -> dict[str, Any]:
        """For storing in an outbox: everything needed to publish it later, unchanged."""
        return {
            "uid": self.uid,
            "name": self.name.value,
            "serial": self.serial,
            "data": self.data,
            "timestamp": self.timestamp,
            "snapshot": self.snapshot,
            "deletes_snapshot": self.deletes_snapshot,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> PendingEvent:
        return cls(
            name=EventName(raw["name"]),
            serial=raw.get("serial"),
            data=raw.get("data") or {},
            timestamp=raw["timestamp"],
            uid=raw["uid"],
            snapshot=raw.get("snapshot"),
            deletes_snapshot=bool(raw.get("deletes_snapshot")),
        )


def envelope_bytes(event_id: str, body_without_id: bytes) -> bytes:
    return b'{"id":"' + event_id.encode() + b'",' + body_without_id


@dataclass(frozen=True, slots=True)
class PublishedEvent:
    """An event as it travels the bus: its id, where it went, and its envelope's JSON."""

    id: str
    channel: str
    serial: str | None
    envelope: bytes

    def to_dict(self) -> dict[str, Any]:
        decoded: dict[str, Any] = orjson.loads(self.envelope)
        return decoded
