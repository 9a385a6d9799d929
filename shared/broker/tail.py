"""The newest part of one Redis's retention stream, read once and shared by concurrent replays.

When a gateway replica dies, thousands of clients resume on the others at once, each with its
own `lastEventId`. On one Redis every event is in one stream, so each replay would scan it from
its id on, every drone's events included, and the same few thousand entries would cross from
Redis thousands of times (measured: a 5000-client storm on one Redis did not finish resuming in
60 s). Here concurrent replays share one copy: a *round* reads the stream once, from the oldest
id any waiting caller needs to the end, and answers every caller that was waiting when it
began. A caller always waits for a round that begins after it arrived: everything published
before it subscribed is then in the copy, and what comes later reaches it live.
"""

from __future__ import annotations

import asyncio
import time
from bisect import bisect_left
from collections.abc import Awaitable, Callable

from shared.broker.base import History
from shared.events import PublishedEvent, parse_event_id

EventId = tuple[int, int]
Entry = tuple[EventId, PublishedEvent]
# Reads one page of the stream: (epoch, [(id, event), ...]) for ids from `start` (a Redis range
# bound such as "(1-2"), at most `count` of them, up to `end` ("+" or an exclusive bound).
PageReader = Callable[[str, str, int], Awaitable[tuple[str, list[tuple[str, PublishedEvent]]]]]

_PAGE = 1000


class StreamTail:
    def __init__(self, read_page: PageReader, max_events: int, retention_ms: int) -> None:
        self._read_page = read_page
        self._max = max_events
        self._retention_ms = retention_ms
        self._ids: list[EventId] = []
        self._events: list[PublishedEvent] = []
        self._epoch: str | None = None
        self._wanted: EventId | None = None  # the oldest id a waiting caller needs
        self._next: asyncio.Future[None] | None = None  # the round new callers wait for
        self._runner: asyncio.Task[None] | None = None

    async def history(self, after_id: str, serials: frozenset[str] | None) -> History | None:
        """Events after `after_id` from the shared copy; None when the copy cannot say (the id
        is older than what it holds), and the caller should ask Redis itself."""
        after = parse_event_id(after_id)
        if self._wanted is None or after < self._wanted:
            self._wanted = after
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
        waiting = self._next
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._rounds(), name="stream-tail")
        await asyncio.shield(waiting)
        return self._answer(after, serials)

    def _answer(self, after: EventId, serials: frozenset[str] | None) -> History | None:
        if not self._ids or after < self._ids[0]:
            return None
        at = bisect_left(self._ids, after)
        if at == len(self._ids) or self._ids[at] != after:
            # Inside the copy's range, which has every id of the stream there: never existed.
            return History(recovered=False)
        events = self._events[at + 1 :]
        if serials is not None:
            events = [event for event in events if event.serial in serials]
        return History(recovered=True, events=events)

    async def _rounds(self) -> None:
        while self._next is not None:
            done, self._next = self._next, None
            wanted, self._wanted = self._wanted, None
            try:
                await self._read(wanted)
            except Exception as exc:  # the waiting callers get it (BrokerUnavailable, ...)
                done.set_exception(exc)
                done.exception()  # retrieved here too: a caller may have given up
            else:
                done.set_result(None)

    async def _read(self, wanted: EventId | None) -> None:
        if self._ids and wanted is not None and wanted < self._ids[0]:
            if len(self._ids) < self._max:
                older = await self._read_range(_bound(wanted), f"({_text(self._ids[0])}")
                if older is not None:
                    self._ids[:0] = [event_id for event_id, _ in older]
                    self._events[:0] = [event for _, event in older]
        start = f"({_text(self._ids[-1])}" if self._ids else _bound(wanted or (0, 0))
        newer = await self._read_range(start, "+")
        if newer is None:  # the stream's epoch changed: Redis lost its data; start afresh
            self._ids, self._events = [], []
            newer = await self._read_range(_bound(wanted or (0, 0)), "+") or []
        self._ids += [event_id for event_id, _ in newer]
        self._events += [event for _, event in newer]
        self._trim()

    async def _read_range(
        self, start: str, end: str
    ) -> list[tuple[EventId, PublishedEvent]] | None:
        """Every entry from `start` to `end`, paged; None if the epoch changed meanwhile."""
        entries: list[Entry] = []
        while True:
            epoch, page = await self._read_page(start, end, _PAGE)
            if self._epoch is not None and epoch != self._epoch:
                self._epoch = epoch
                return None
            self._epoch = epoch
            entries += [(parse_event_id(raw_id), event) for raw_id, event in page]
            if len(page) < _PAGE:
                return entries
            start = f"({page[-1][0]}"

    def _trim(self) -> None:
        oldest_ms = int(time.time() * 1000) - self._retention_ms
        drop = max(len(self._ids) - self._max, bisect_left(self._ids, (oldest_ms, 0)))
        if drop > 0:
            del self._ids[:drop], self._events[:drop]


def _text(event_id: EventId) -> str:
    return f"{event_id[0]}-{event_id[1]}"


def _bound(event_id: EventId) -> str:
    """An inclusive range start at `event_id` (the caller's own id, to check it exists)."""
    return _text(event_id)
