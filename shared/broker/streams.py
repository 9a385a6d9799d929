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
    ) -> bool:
        """If `owner` holds `owner_key`: acknowledge `ids`, save `states` into `checkpoint`,
        drop acknowledged entries from the stream, renew the lease; atomically. False (and
        nothing done) when the lease was lost."""
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
    delivered: tuple[int, int] = (0, 0)
    pending: OrderedDict[str, str] = field(default_factory=OrderedDict)  # id -> consumer


class _Stream:
    def __init__(self) -> None:
        self.entries: OrderedDict[str, bytes] = OrderedDict()
        self.groups: dict[str, _Group] = {}
        self.appended = asyncio.Event()
        self.last = (0, 0)


class MemoryStreams:
    """The embedded default's streams: one process, same semantics as Redis."""

    def __init__(self) -> None:
        self._streams: dict[str, _Stream] = {}
        self._hashes: dict[str, dict[str, bytes]] = {}
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
            stream.last = entry_id_key(entry_id)
            ids.append(entry_id)
            touched.add(name)
        for name in touched:
            stream = self._streams[name]
            stream.appended.set()
            stream.appended = asyncio.Event()
        return ids

    async def create_group(self, stream: str, group: str) -> None:
        self._stream(stream).groups.setdefault(group, _Group())

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
        for attempt in range(2):
            state = target.groups[group]
            if target.last > state.delivered:
                out = []
                for entry_id, payload in target.entries.items():
                    key = entry_id_key(entry_id)
                    if key <= state.delivered:
                        continue
                    out.append(StreamEntry(entry_id, payload))
                    state.pending[entry_id] = consumer
                    state.delivered = key
                    if len(out) >= count:
                        break
                if out:
                    return out
            if attempt == 0:
                await self._wait(target, block_ms)
        return []

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
    ) -> bool:
        if not self._owns(owner_key, owner):
            return False
        target = self._stream(stream)
        state = target.groups[group]
        for entry_id in ids:
            state.pending.pop(entry_id, None)
        self._hashes.setdefault(checkpoint, {}).update(states)
        # Drop what the group is done with (acknowledged, not pending), once it is older than
        # live subscribers need.
        oldest_pending = min((entry_id_key(i) for i in state.pending), default=None)
        keep_from = (int(time.time() * 1000) - TAIL_KEEP_MS, 0)
        while target.entries:
            first = next(iter(target.entries))
            key = entry_id_key(first)
            if key > state.delivered or key >= keep_from:
                break
            if oldest_pending is not None and key >= oldest_pending:
                break
            del target.entries[first]
        self._leases[owner_key] = (owner, time.monotonic() + lease_ms / 1000)
        return True

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
        undelivered = sum(1 for i in target.entries if entry_id_key(i) > state.delivered)
        return undelivered + len(state.pending)
