"""Every Redis channel, stream key and Socket.IO room name is built here and nowhere else.

Channel layout is seed 001's public contract: `drone:{serial}:{kind}` for one drone's events,
`drone:all:{kind}` for fleet-wide ones, `system:broadcast` for system messages.
"""

from __future__ import annotations

import zlib
from enum import StrEnum

DRONE_PREFIX = "drone:"
SYSTEM_BROADCAST = "system:broadcast"
ALL = "all"  # reserved: never a drone serial, so `drone:all:*` cannot collide with a drone

# Redis keys owned by the broker.
EVENT_STREAM = "dronecast:events"
SNAPSHOT_PREFIX = "dronecast:snapshot:"
PUBLISHED_PREFIX = "dronecast:published:"
EPOCH_KEY = "dronecast:epoch"


class ChannelKind(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"
    STREAM = "stream"
    AI = "ai"
    CONFIG = "config"
    INCIDENT = "incident"
    TASK = "task"
    PRESENCE = "presence"
    TELEMETRY = "telemetry"


def drone_channel(serial: str, kind: ChannelKind) -> str:
    return f"{DRONE_PREFIX}{serial}:{kind.value}"


def fleet_channel(kind: ChannelKind) -> str:
    return f"{DRONE_PREFIX}{ALL}:{kind.value}"


def drone_pattern(serial: str) -> str:
    """Redis pattern for everything about one drone (what a detector subscribes to)."""
    return f"{DRONE_PREFIX}{serial}:*"


ALL_DRONES_PATTERN = f"{DRONE_PREFIX}*"


def parse_channel(channel: str) -> tuple[str | None, str]:
    """Split a channel into (serial, kind). `system:broadcast` gives (None, "broadcast")."""
    if channel.startswith(DRONE_PREFIX):
        rest = channel[len(DRONE_PREFIX) :]
        serial, _, kind = rest.rpartition(":")
        if serial and serial != ALL:
            return serial, kind
        return None, kind
    return None, channel.rpartition(":")[2]


# Nudges to the process holding a device's socket (see Broker.notify): no ids, no retention.
DEVICE_NUDGE_PREFIX = "dronecast:nudge:"


def device_nudge_channel(kind: str, device_id: str) -> str:
    """`kind` is "drone" or "application"."""
    return f"{DEVICE_NUDGE_PREFIX}{kind}:{device_id}"


def snapshot_key(serial: str) -> str:
    return f"{SNAPSHOT_PREFIX}{serial}"


def published_key(event_uid: str) -> str:
    return f"{PUBLISHED_PREFIX}{event_uid}"


def drone_kind_pattern(kind: ChannelKind) -> str:
    """One kind of channel of every drone (`drone:*:incident`): what each api replica watches to
    tell its connected applications about alerts."""
    return f"{DRONE_PREFIX}*:{kind.value}"


def parse_device_nudge_channel(channel: str) -> tuple[str, str] | None:
    """`dronecast:nudge:drone:SN1` -> ("drone", "SN1"); None for any other channel."""
    if not channel.startswith(DEVICE_NUDGE_PREFIX):
        return None
    kind, _, device_id = channel[len(DEVICE_NUDGE_PREFIX) :].partition(":")
    return (kind, device_id) if kind and device_id else None


# --- telemetry streams (seed 004's batch path on Redis Streams) -------------------------------
# One stream per partition. Each key carries its partition as a hash tag (`{tp7}`), so a
# partition's stream, checkpoint and lease live on one Redis Cluster slot and the commit script
# can touch all three atomically.
TELEMETRY_GROUP = "telemetry-detectors"
TELEMETRY_MEMBERS = "dronecast:telemetry:members"  # consumers alive: a sorted set of heartbeats


def _telemetry_prefix(partition: int) -> str:
    return f"dronecast:telemetry:{{tp{partition}}}"


def telemetry_stream(partition: int) -> str:
    return _telemetry_prefix(partition)


def telemetry_checkpoint(partition: int) -> str:
    """Hash: sensor -> detector state (JSON), as of the last committed entry."""
    return f"{_telemetry_prefix(partition)}:state"


def telemetry_judged(partition: int) -> str:
    """Stream of judged readings (one entry per committed batch), for live subscribers."""
    return f"{_telemetry_prefix(partition)}:judged"


def telemetry_active(partition: int) -> str:
    """Sorted set: sensor key -> when its last reading was received (epoch seconds)."""
    return f"{_telemetry_prefix(partition)}:active"


def telemetry_owner(partition: int) -> str:
    """The consumer that owns the partition, with a lease (PX)."""
    return f"{_telemetry_prefix(partition)}:owner"


def telemetry_partition(routing_key: str, partitions: int) -> int:
    """The partition of a drone (or of a sensor that names no drone): stable across processes
    and releases (CRC-32, not Python's salted hash)."""
    return zlib.crc32(routing_key.encode()) % partitions
