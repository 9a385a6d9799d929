"""Partitioned streams with consumer groups: the bus telemetry flows through.

Redis Streams in production (`shared/broker/redis_streams.py`), and `MemoryStreams` here for the
embedded default and tests, with the same promises:

- `append` stores every entry or none, so a 2xx after it means the batch is durable;
- a consumer group delivers each entry to one consumer, which acknowledges it by `commit`;
  entries delivered and never acknowledged stay pending, and `claim_pending` hands them to the
  consumer that took the partition over;
- each partition has an owner with a lease (`acquire`, `renew`, `release`), and `commit` (ack,
  checkpoint of the consumer's state, trim) happens only while the committer still owns the
  partition: a consumer that lost its lease cannot overwrite its successor's checkpoint;
- `tail` reads a stream without a group, for live subscribers.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Protocol

# `tail(stream, LATEST, ...)`: only what is appended from now on.
LATEST = "$"
# Acknowledged entries stay this long for live subscribers that `tail` the stream.
TAIL_KEEP_MS = 60_000
# Entries a stream of judged readings keeps (one per committed batch), for live subscribers.
JUDGED_KEEP = 10_000
# Members of an "active" set older than this are dropped.
ACTIVE_KEEP_SECONDS = 3600.0


@dataclass(frozen=True, slots=True)
class StreamEntry:
    id: str
    payload: bytes


def entry_id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class Streams(Protocol):
    async def append(self, entries: list[tuple[str, bytes]]) -> list[str]:
        """Append each (stream, payload), all or none; returns the entry ids in order."""
        ...

    async def create_group(self, stream: str, group: str) -> None:
        """Create `group` on `stream` (reading from its start) unless it exists."""
        ...

    async def read_new(
        self, stream: str, group: str, consumer: str, count: int, block_ms: int
    ) -> list[StreamEntry]:
        """Entries not yet delivered to the group, now pending for `consumer` (waits up to
        `block_ms` for one)."""
        ...

    async def claim_pending(
        self, stream: str, group: str, consumer: str, count: int
    ) -> list[StreamEntry]:
        """Up to `count` entries pending for any consumer of the group, oldest first, now
        pending for `consumer` (XAUTOCLAIM). Only the partition's owner calls it."""
        ...

    async def commit(
        self,
        stream: str,
        group: str,
        ids: list[str],
        checkpoint: str,
        states: dict[str, bytes],
        owner_key: str,
        owner: str,
        lease_ms: int,
        active: tuple[str, dict[str, float]] | None = None,
        judged: tuple[str, bytes] | None = None,
    ) -> bool:
        """If `owner` holds `owner_key`: acknowledge `ids`, save `states` into `checkpoint`,
        mark `active` = (set key, {member: epoch seconds}), append `judged` = (stream, payload)
        for live subscribers, drop acknowledged entries from the stream, renew the lease;
        atomically. False (and nothing done) when the lease was lost."""
        ...

    async def active_since(self, keys: list[str], since: float) -> list[str]:
        """Members of the `active` sets marked at or after `since` (epoch seconds)."""
        ...

    async def load_checkpoint(self, checkpoint: str) -> dict[str, bytes]: ...

    async def acquire(self, owner_key: str, owner: str, lease_ms: int) -> bool: ...

    async def renew(self, owner_key: str, owner: str, lease_ms: int) -> bool: ...

    async def release(self, owner_key: str, owner: str) -> None: ...

    async def heartbeat(self, members: str, member: str, lease_ms: int) -> int:
        """Mark `member` alive for `lease_ms`; returns how many members are alive."""
        ...

    async def leave(self, members: str, member: str) -> None: ...

    async def tail(self, stream: str, after: str, count: int, block_ms: int) -> list[StreamEntry]:
        """Entries after `after` (`LATEST`: from now on), without a group (live subscribers)."""
        ...

    async def last_id(self, stream: str) -> str:
        """The newest entry's id ("0-0" for an empty stream)."""
        ...

    async def backlog(self, stream: str, group: str) -> int:
        """Entries the group has not acknowledged yet (pending or not delivered)."""
        ...


@dataclass
class _Group:
    next: int = 0  # absolute position of the first entry not yet delivered
    pending: OrderedDict[str, str] = field(default_factory=OrderedDict)  # id -> consumer


class _Stream:
    """Entries in order; `order[i]` is the entry at absolute position `base + i`."""

    def __init__(self) -> None:
        self.entries: dict[str, bytes] = {}
        self.order: list[str] = []
        self.base = 0
        self.head = 0  # order[:head] are trimmed
        self.groups: dict[str, _Group] = {}
        self.appended = asyncio.Event()
        self.last = (0, 0)

    @property
    def end(self) -> int:
        return self.base + len(self.order)

    def trim_before(self, position: int) -> None:
        while self.base + self.head < position:
            self.entries.pop(self.order[self.head], None)
            self.head += 1
        if self.head > 1024 and self.head * 2 > len(self.order):
            del self.order[: self.head]
            self.base += self.head
            self.head = 0


class MemoryStreams:
    """The embedded default's streams: one process, same semantics as Redis."""

    def __init__(self) -> None:
        self._streams: dict[str, _Stream] = {}
        self._hashes: dict[str, dict[str, bytes]] = {}
        self._sorted: dict[str, dict[str, float]] = {}
        self._leases: dict[str, tuple[str, float]] = {}
        self._members: dict[str, dict[str, float]] = {}
        self._last_ms = 0
        self._seq = 0

    def _stream(self, name: str) -> _Stream:
        stream = self._streams.get(name)
        if stream is None:
            stream = self._streams[name] = _Stream()
        return stream

    def _next_id(self) -> str:
        now_ms = int(time.time() * 1000)
        if now_ms > self._last_ms:
            self._last_ms, self._seq = now_ms, 0
        else:
            self._seq += 1
        return f"{self._last_ms}-{self._seq}"

    async def append(self, entries: list[tuple[str, bytes]]) -> list[str]:
        ids = []
        touched = set()
        for name, payload in entries:
            stream = self._stream(name)
            entry_id = self._next_id()
            stream.entries[entry_id] = payload
            stream.order.append(entry_id)
            stream.last = entry_id_key(entry_id)
            ids.append(entry_id)
            touched.add(name)
        for name in touched:
            stream = self._streams[name]
            stream.appended.set()
            stream.appended = asyncio.Event()
        return ids

    async def create_group(self, stream: str, group: str) -> None:
        target = self._stream(stream)
        target.groups.setdefault(group, _Group(next=target.base + target.head))

    async def _wait(self, stream: _Stream, block_ms: int) -> None:
        if block_ms > 0:
            try:
                await asyncio.wait_for(stream.appended.wait(), block_ms / 1000)
            except TimeoutError:
                pass

    async def read_new(
        self, stream: str, group: str, consumer: str, count: int, block_ms: int
    ) -> list[StreamEntry]:
        target = self._stream(stream)
        state = target.groups[group]
        if state.next >= target.end:
            await self._wait(target, block_ms)
        start = max(state.next, target.base + target.head) - target.base
        ids = target.order[start : start + count]
        state.next = target.base + start + len(ids)
        for entry_id in ids:
            state.pending[entry_id] = consumer
        return [StreamEntry(entry_id, target.entries[entry_id]) for entry_id in ids]

    async def claim_pending(
        self, stream: str, group: str, consumer: str, count: int
    ) -> list[StreamEntry]:
        target = self._stream(stream)
        state = target.groups[group]
        out = []
        for entry_id in list(state.pending)[:count]:
            payload = target.entries.get(entry_id)
            if payload is None:  # trimmed away: nothing left to deliver
                del state.pending[entry_id]
                continue
            state.pending[entry_id] = consumer
            out.append(StreamEntry(entry_id, payload))
        return out

    def _owns(self, owner_key: str, owner: str) -> bool:
        held = self._leases.get(owner_key)
        return held is not None and held[0] == owner and held[1] > time.monotonic()

    async def commit(
        self,
        stream: str,
        group: str,
        ids: list[str],
        checkpoint: str,
        states: dict[str, bytes],
        owner_key: str,
        owner: str,
        lease_ms: int,
        active: tuple[str, dict[str, float]] | None = None,
        judged: tuple[str, bytes] | None = None,
    ) -> bool:
        if not self._owns(owner_key, owner):
            return False
        if judged is not None:
            self._append_capped(*judged)
        target = self._stream(stream)
        state = target.groups[group]
        for entry_id in ids:
            state.pending.pop(entry_id, None)
        self._hashes.setdefault(checkpoint, {}).update(states)
        if active is not None:
            self._mark(*active)
        # Drop what the group is done with (delivered, not pending), once it is older than
        # live subscribers need.
        keep_from = (int(time.time() * 1000) - TAIL_KEEP_MS, 0)
        limit = state.next
        if state.pending:
            oldest = next(iter(state.pending))
            limit = min(limit, target.base + target.order.index(oldest, target.head))
        position = target.base + target.head
        while position < limit and entry_id_key(target.order[position - target.base]) < keep_from:
            position += 1
        target.trim_before(position)
        self._leases[owner_key] = (owner, time.monotonic() + lease_ms / 1000)
        return True

    def _append_capped(self, name: str, payload: bytes) -> None:
        stream = self._stream(name)
        entry_id = self._next_id()
        stream.entries[entry_id] = payload
        stream.order.append(entry_id)
        stream.last = entry_id_key(entry_id)
        stream.trim_before(stream.end - JUDGED_KEEP)
        stream.appended.set()
        stream.appended = asyncio.Event()

    def _mark(self, key: str, members: dict[str, float]) -> None:
        scores = self._sorted.setdefault(key, {})
        scores.update(members)
        oldest = time.time() - ACTIVE_KEEP_SECONDS
        if len(scores) > 1024 and min(scores.values()) < oldest:
            for member in [m for m, score in scores.items() if score < oldest]:
                del scores[member]

    async def active_since(self, keys: list[str], since: float) -> list[str]:
        return [
            member
            for key in keys
            for member, score in self._sorted.get(key, {}).items()
            if score >= since
        ]

    async def load_checkpoint(self, checkpoint: str) -> dict[str, bytes]:
        return dict(self._hashes.get(checkpoint, {}))

    async def acquire(self, owner_key: str, owner: str, lease_ms: int) -> bool:
        held = self._leases.get(owner_key)
        if held is not None and held[0] != owner and held[1] > time.monotonic():
            return False
        self._leases[owner_key] = (owner, time.monotonic() + lease_ms / 1000)
        return True

    async def renew(self, owner_key: str, owner: str, lease_ms: int) -> bool:
        if not self._owns(owner_key, owner):
            return False
        self._leases[owner_key] = (owner, time.monotonic() + lease_ms / 1000)
        return True

    async def release(self, owner_key: str, owner: str) -> None:
        if self._owns(owner_key, owner):
            del self._leases[owner_key]

    async def heartbeat(self, members: str, member: str, lease_ms: int) -> int:
        now = time.monotonic()
        alive = self._members.setdefault(members, {})
        alive[member] = now + lease_ms / 1000
        for name, until in list(alive.items()):
            if until <= now:
                del alive[name]
        return len(alive)

    async def leave(self, members: str, member: str) -> None:
        self._members.get(members, {}).pop(member, None)

    async def tail(self, stream: str, after: str, count: int, block_ms: int) -> list[StreamEntry]:
        target = self._stream(stream)
        start = target.last if after == LATEST else entry_id_key(after)
        for attempt in range(2):
            if target.last > start:
                out = []
                for entry_id, payload in reversed(target.entries.items()):
                    if entry_id_key(entry_id) <= start:
                        break
                    out.append(StreamEntry(entry_id, payload))
                out.reverse()
                return out[:count]
            if attempt == 0:
                await self._wait(target, block_ms)
        return []

    async def last_id(self, stream: str) -> str:
        ms, seq = self._stream(stream).last
        return f"{ms}-{seq}"

    async def backlog(self, stream: str, group: str) -> int:
        target = self._stream(stream)
        state = target.groups.get(group)
        if state is None:
            return len(target.entries)
        return target.end - state.next + len(state.pending)
