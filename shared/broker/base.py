"""The broker: publish events with ids and retention, subscribe to channel patterns, replay.

Two implementations share these semantics: `RedisBroker` (production) and `MemoryBroker` (the
embedded default and the test fake).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from shared.broker.streams import Streams
from shared.channels import parse_channel
from shared.events import PendingEvent, PublishedEvent, parse_event_id

MessageHandler = Callable[[PublishedEvent], None]
# `history(FROM_START, ...)`: everything retained, e.g. after Redis lost its data (new epoch).
FROM_START = "0-0"
ResumeHandler = Callable[[], Awaitable[None]]

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
    """One pub/sub connection; patterns come and go with the clients that want them."""

    async def add(self, pattern: str) -> None: ...

    async def remove(self, pattern: str) -> None: ...

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
        """Events after `after_id` for these serials (None: every event), oldest first."""
        ...

    async def snapshot(self, serial: str) -> Snapshot | None: ...

    async def epoch(self) -> str:
        """Changes when the bus loses its data (a Redis restart without persistence): then the
        retention stream starts afresh and `history(FROM_START)` holds everything since."""
        ...

    async def latest_id(self) -> str:
        """The id of the newest retained event ("" when there is none)."""
        ...

    def subscription(
        self, on_message: MessageHandler, on_resume: ResumeHandler | None = None
    ) -> Subscription:
        """A subscription whose messages go to `on_message`, in publish order.

        `on_resume` runs after the subscription was lost and re-established, so the owner can
        fill the gap from `history`.
        """
        ...


def wants(serials: frozenset[str] | None, event: PublishedEvent) -> bool:
    if serials is None:
        return True
    return event.serial is not None and event.serial in serials
