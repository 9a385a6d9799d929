"""In-process broker: the embedded default of `dronecast dev`, and the fake in unit tests.

It keeps the Redis broker's promises: one id order, retention by count and time, snapshots,
idempotent publish, and per-pattern subscriptions delivered in publish order.
"""

from __future__ import annotations

import fnmatch
import time
from collections import OrderedDict, deque

import orjson

from shared.broker.base import (
    FROM_START,
    History,
    LostHandler,
    MessageHandler,
    ResumeHandler,
    Snapshot,
    published_from_wire,
    wants,
)
from shared.broker.streams import MemoryStreams
from shared.events import PendingEvent, PublishedEvent, envelope_bytes, parse_event_id


class MemorySubscription:
    def __init__(self, broker: MemoryBroker, on_message: MessageHandler) -> None:
        self._broker = broker
        self._on_message = on_message
        self.patterns: set[str] = set()

    async def add(self, pattern: str) -> None:
        self.patterns.add(pattern)

    async def remove(self, *patterns: str) -> None:
        self.patterns.difference_update(patterns)

    async def close(self) -> None:
        self._broker._subscriptions.discard(self)

    def deliver(self, event: PublishedEvent) -> None:
        # Once, however many of its patterns match (as the Redis subscriptions do).
        for pattern in tuple(self.patterns):
            if fnmatch.fnmatchcase(event.channel, pattern):
                self._on_message(event)
                return


class MemoryBroker:
    def __init__(self, retention_seconds: int = 600, max_events: int = 100_000) -> None:
        self._retention_ms = retention_seconds * 1000
        self._max_events = max_events
        self._log: deque[PublishedEvent] = deque()
        self._published: OrderedDict[str, str] = OrderedDict()
        self._snapshots: dict[str, Snapshot] = {}
        self._subscriptions: set[MemorySubscription] = set()
        self._last_ms = 0
        self._seq = 0
        self._streams = MemoryStreams()

    @property
    def streams(self) -> MemoryStreams:
        return self._streams

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._subscriptions.clear()

    async def ping(self) -> bool:
        return True

    def _next_id(self) -> str:
        now_ms = int(time.time() * 1000)
        if now_ms > self._last_ms:
            self._last_ms, self._seq = now_ms, 0
        else:
            self._seq += 1
        return f"{self._last_ms}-{self._seq}"

    async def publish(self, event: PendingEvent) -> PublishedEvent:
        prior = self._published.get(event.uid)
        if prior is not None:
            return PublishedEvent(
                id=prior, channel=event.channel, serial=event.serial, envelope=b""
            )
        event_id = self._next_id()
        published = published_from_wire(
            event.channel, envelope_bytes(event_id, event.body_without_id())
        )
        self._log.append(published)
        self._published[event.uid] = event_id
        self._trim()
        if event.serial is not None:
            if event.deletes_snapshot:
                self._snapshots.pop(event.serial, None)
            elif event.snapshot is not None:
                state = orjson.loads(orjson.dumps(event.snapshot))
                self._snapshots[event.serial] = Snapshot(event_id=event_id, state=state)
        for subscription in tuple(self._subscriptions):
            subscription.deliver(published)
        return published

    async def notify(self, channel: str, payload: bytes) -> None:
        message = published_from_wire(channel, payload)
        for subscription in tuple(self._subscriptions):
            subscription.deliver(message)

    def _trim(self) -> None:
        oldest_ms = int(time.time() * 1000) - self._retention_ms
        while self._log and (
            len(self._log) > self._max_events or parse_event_id(self._log[0].id)[0] < oldest_ms
        ):
            self._log.popleft()
        while len(self._published) > self._max_events:
            self._published.popitem(last=False)

    async def history(self, after_id: str, serials: frozenset[str] | None) -> History:
        after = parse_event_id(after_id)
        self._trim()
        if after_id == FROM_START:
            return History(recovered=True, events=[e for e in self._log if wants(serials, e)])
        if not self._log or parse_event_id(self._log[0].id) > after:
            return History(recovered=False)
        if not any(event.id == after_id for event in self._log):
            return History(recovered=False)
        events = [
            event
            for event in self._log
            if parse_event_id(event.id) > after and wants(serials, event)
        ]
        return History(recovered=True, events=events)

    async def snapshot(self, serial: str) -> Snapshot | None:
        return self._snapshots.get(serial)

    async def latest_id(self, serial: str | None = None) -> str:
        return self._log[-1].id if self._log else ""

    def subscription(
        self,
        on_message: MessageHandler,
        on_resume: ResumeHandler | None = None,
        on_lost: LostHandler | None = None,
    ) -> MemorySubscription:
        """In-process delivery never drops anything, so `on_resume` and `on_lost` never run."""
        subscription = MemorySubscription(self, on_message)
        self._subscriptions.add(subscription)
        return subscription
