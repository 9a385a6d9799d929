"""Every Redis channel, stream key and Socket.IO room name is built here and nowhere else.

Channel layout is seed 001's public contract: `drone:{serial}:{kind}` for one drone's events,
`drone:all:{kind}` for fleet-wide ones, `system:broadcast` for system messages.

On a Redis Cluster (`REDIS_CLUSTER=true`) every event belongs to a *partition*, the hash slot of
its drone's serial, and everything the publish script touches carries a hash tag of that slot:
the partition's log `dronecast:log:{T}`, its idempotency markers, its fleet channel
`dronecast:fleet:{T}`, the drone's snapshot `dronecast:snapshot:{SN}` and the drone's sharded
channels `drone:{SN}:{kind}` (`{SN}` and the slot's tag `T` hash to the same slot).
"""

from __future__ import annotations

import zlib
from binascii import crc_hqx
from enum import StrEnum
from functools import cache

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

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


# --- Redis Cluster partitions ------------------------------------------------------------------

SLOTS = REDIS_CLUSTER_HASH_SLOTS
LOG_PREFIX = "dronecast:log:"
FLEET_PREFIX = "dronecast:fleet:"


def slot_of(partition_key: str) -> int:
    """The hash slot of a partition key (a serial, or what orders a drone-less event)."""
    return int(key_slot(partition_key.encode()))


@cache
def _slot_tags() -> tuple[str, ...]:
    """For each of the 16384 slots, the shortest decimal string that hashes to it: the tag of
    the slot's own keys (its log, its fleet channel). Built once per process (~0.2 s)."""
    tags: list[str | None] = [None] * SLOTS
    missing, n = SLOTS, 0
    while missing:
        slot = crc_hqx(str(n).encode(), 0) % SLOTS  # key_slot() of a key without braces
        if tags[slot] is None:
            tags[slot] = str(n)
            missing -= 1
        n += 1
    return tuple(tag for tag in tags if tag is not None)


def slot_tag(slot: int) -> str:
    return _slot_tags()[slot]


def log_key(slot: int) -> str:
    """The partition's retention stream: every event of the slot, in one id order."""
    return f"{LOG_PREFIX}{{{slot_tag(slot)}}}"


def partition_fleet_channel(slot: int) -> str:
    """Every event of the slot, as `<logical channel>\n<envelope>`: what fleet-wide consumers
    (and gateways, per slot of the drones their clients watch) SSUBSCRIBE to."""
    return f"{FLEET_PREFIX}{{{slot_tag(slot)}}}"


def partition_published_key(slot: int, event_uid: str) -> str:
    return f"{PUBLISHED_PREFIX}{{{slot_tag(slot)}}}:{event_uid}"


def partition_epoch_key(slot: int) -> str:
    return f"{EPOCH_KEY}:{{{slot_tag(slot)}}}"


def tagged_snapshot_key(serial: str) -> str:
    return f"{SNAPSHOT_PREFIX}{{{serial}}}"


def sharded_channel(channel: str) -> str:
    """The channel an event is SPUBLISHed on for direct Redis subscribers (detectors):
    `drone:SN:kind` -> `drone:{SN}:kind`, in the drone's slot; `system:broadcast` as it is
    (its own slot is its partition). Fleet events of no drone have none: "" (they go only on
    their partition's fleet channel)."""
    serial, kind = parse_channel(channel)
    if serial is not None:
        return f"{DRONE_PREFIX}{{{serial}}}:{kind}"
    return channel if channel == SYSTEM_BROADCAST else ""


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
