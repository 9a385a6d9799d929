"""The broker: publish events with ids and retention, subscribe to channel patterns, replay.

Three implementations share these semantics: `RedisBroker` (one Redis), `ClusterBroker` (a Redis
Cluster, `REDIS_CLUSTER=true`) and `MemoryBroker` (the embedded default and the test fake).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from shared.broker.streams import Streams
from shared.channels import ALL_DRONES_PATTERN, DRONE_PREFIX, parse_channel, slot_of
from shared.events import PendingEvent, PublishedEvent, parse_event_id

MessageHandler = Callable[[PublishedEvent], None]
# `history(FROM_START, ...)`: everything retained, e.g. after Redis lost its data (new epoch).
FROM_START = "0-0"
ResumeHandler = Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class LostScope:
    """Events a subscription could not deliver and cannot replay: all of them (`slots` None: one
    Redis lost its data, or the outage outlasted retention), or those of some Redis Cluster
    partitions (hash slots: a master failed over before it replicated them)."""

    slots: frozenset[int] | None = None

    def covers(self, serial: str | None) -> bool:
        """Whether events of this drone may be among the lost. Events of no drone (fleet
        telemetry, broadcasts) spread over every slot, so any loss may include some."""
        if self.slots is None or serial is None:
            return True
        return slot_of(serial) in self.slots


LostHandler = Callable[[LostScope], None]

_ID_PREFIX = b'{"id":"'


def published_from_wire(channel: str, payload: bytes) -> PublishedEvent:
    """Build a PublishedEvent from a pub/sub message without decoding the JSON.

    The envelope starts with `{"id":"<id>",` because the broker writes it that way; a message
    published by someone else (no id) is relayed with an empty id and no ordering promise.
    """
    serial, _ = parse_channel(channel)
    event_id = ""
    if payload.startswith(_ID_PREFIX):
        end = payload.find(b'"', len(_ID_PREFIX))
        if end > 0:
            event_id = payload[len(_ID_PREFIX) : end].decode()
    return PublishedEvent(id=event_id, channel=channel, serial=serial, envelope=payload)


@dataclass(slots=True)
class History:
    """What a reconnecting client missed. `recovered` is False when the gap left the window."""

    recovered: bool
    events: list[PublishedEvent] = field(default_factory=list)


@dataclass(slots=True)
class Snapshot:
    event_id: str | None  # the event that made this state; None when read from the database
    state: dict[str, Any]

    @classmethod
    def from_json(cls, raw: bytes | str) -> Snapshot:
        decoded = orjson.loads(raw)
        return cls(event_id=decoded["eventId"], state=decoded["state"])


def id_after(candidate: str, last: str) -> bool:
    """True when event id `candidate` comes after `last` ("" is before everything)."""
    if not last:
        return True
    if not candidate:
        return True
    return parse_event_id(candidate) > parse_event_id(last)


class Subscription(Protocol):
    """What its owner wants from the bus; patterns come and go with the clients that want them.

    It hands each matching event to its owner once, in publish order (per drone; per partition
    on a cluster). After its connection was lost it replays from retention what was published
    meanwhile, before anything newer; what it cannot replay it reports to `on_lost`.
    """

    async def add(self, pattern: str) -> None: ...

    async def remove(self, *patterns: str) -> None:
        """Stop receiving these patterns (one unsubscribe for all of them)."""
        ...

    async def close(self) -> None: ...


class Broker(Protocol):
    @property
    def streams(self) -> Streams:
        """Partitioned streams with consumer groups (telemetry's bus)."""
        ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> bool: ...

    async def publish(self, event: PendingEvent) -> PublishedEvent: ...

    async def notify(self, channel: str, payload: bytes) -> None:
        """Plain pub/sub with no id, no retention and no promise: a nudge to whichever process
        holds something (a device socket) to go and look at the database, which is the truth."""
        ...

    async def history(self, after_id: str, serials: frozenset[str] | None) -> History:
        """Events after `after_id` for these serials (None: every event), oldest first.

        On a cluster an id orders only its own partition, so the gap is recovered only when
        every serial asked for lives in one partition (one drone always does)."""
        ...

    async def snapshot(self, serial: str) -> Snapshot | None: ...

    async def latest_id(self, serial: str | None = None) -> str:
        """The id of the newest retained event ("" when there is none): of all events, or on a
        cluster of the partition that holds `serial`'s events ("" without a serial)."""
        ...

    def subscription(
        self,
        on_message: MessageHandler,
        on_resume: ResumeHandler | None = None,
        on_lost: LostHandler | None = None,
    ) -> Subscription:
        """A subscription whose events go to `on_message` (see `Subscription`).

        `on_lost` hears of events it could not deliver and cannot replay; `on_resume` runs after
        a lost connection was re-established and its gap filled (for duties of the owner's own,
        such as looking for work a lost nudge announced).
        """
        ...


def wants(serials: frozenset[str] | None, event: PublishedEvent) -> bool:
    if serials is None:
        return True
    return event.serial is not None and event.serial in serials


_GLOB = frozenset("*?[\\")


class PatternFilter:
    """A subscription's channel patterns, matched without a glob per pattern per message: the
    gateway holds one `drone:{serial}:*` per watched drone. Understood shapes: `drone:*` (every
    drone and fleet channel), `drone:{serial}:*`, `drone:*:{kind}` and exact channels; any other
    glob is matched with fnmatch."""

    def __init__(self) -> None:
        self.patterns: set[str] = set()
        self.all_drones = False
        self.serials: set[str] = set()
        self.kinds: set[str] = set()
        self.exact: set[str] = set()
        self.globs: set[str] = set()

    @staticmethod
    def classify(pattern: str) -> tuple[str, str]:
        """("all" | "serial" | "kind" | "exact" | "glob", what)."""
        if pattern == ALL_DRONES_PATTERN:
            return "all", ""
        if pattern.startswith(DRONE_PREFIX) and pattern.endswith(":*"):
            serial = pattern[len(DRONE_PREFIX) : -2]
            if serial and not _GLOB.intersection(serial) and ":" not in serial:
                return "serial", serial
        if pattern.startswith(f"{DRONE_PREFIX}*:"):
            kind = pattern[len(DRONE_PREFIX) + 2 :]
            if kind and not _GLOB.intersection(kind) and ":" not in kind:
                return "kind", kind
        if not _GLOB.intersection(pattern):
            return "exact", pattern
        return "glob", pattern

    def _slot(self, shape: str) -> set[str]:
        return {
            "serial": self.serials,
            "kind": self.kinds,
            "exact": self.exact,
            "glob": self.globs,
        }[shape]

    def add(self, pattern: str) -> None:
        self.patterns.add(pattern)
        shape, what = self.classify(pattern)
        if shape == "all":
            self.all_drones = True
        else:
            self._slot(shape).add(what)

    def remove(self, pattern: str) -> None:
        self.patterns.discard(pattern)
        shape, what = self.classify(pattern)
        if shape == "all":
            self.all_drones = False
        else:
            self._slot(shape).discard(what)

    @property
    def fleet_wide(self) -> bool:
        """Whether any pattern wants events of drones it does not name."""
        return self.all_drones or bool(self.kinds) or bool(self.globs)

    def matches(self, channel: str) -> bool:
        if channel in self.exact:
            return True
        if channel.startswith(DRONE_PREFIX):
            if self.all_drones:
                return True
            serial, _, kind = channel[len(DRONE_PREFIX) :].rpartition(":")
            if serial in self.serials or kind in self.kinds:
                return True
        return any(fnmatch.fnmatchcase(channel, glob) for glob in self.globs)
