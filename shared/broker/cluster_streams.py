"""`Streams` on a Redis Cluster: each call goes to the master that holds its keys.

A partition's keys (its stream, checkpoint, owner lease, active set, judged stream) share one
hash tag (`shared/channels.py`), so every call of `RedisStreams` that names one partition runs
unchanged on the master of that partition's slot: the commit script stays one single-slot
script. The two calls that name several partitions (`append`, `active_since`) are split by slot;
an append is then one MULTI per slot, not one for the whole batch. A retried POST stores nothing
twice (readings are stored idempotently by id), so a batch cut short by a failover is sent again.

A master that cannot be reached, or that no longer holds the slot, is `BrokerUnavailable` after
the topology is read again: callers retry (the api answers 503, consumers try the next round).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

import redis.asyncio as aioredis
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MovedError, TryAgainError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shared.broker.redis import BrokerUnavailable
from shared.broker.redis_streams import RedisStreams
from shared.broker.streams import StreamEntry

T = TypeVar("T")


def _slot(key: str) -> int:
    return int(key_slot(key.encode()))


def _appending(
    batch: list[tuple[str, bytes]],
) -> Callable[[RedisStreams], Awaitable[list[str]]]:
    return lambda streams: streams.append(batch)


def _active_since(keys: list[str], since: float) -> Callable[[RedisStreams], Awaitable[list[str]]]:
    return lambda streams: streams.active_since(keys, since)


class SlotRouter(Protocol):
    """What the cluster broker tells the streams: where a slot is, and what went wrong."""

    async def master_of(self, slot: int) -> str: ...

    def client_for(self, node: str) -> aioredis.Redis: ...

    async def slot_moved(self) -> None: ...

    def node_failed(self, node: str) -> None: ...


class ClusterStreams:
    def __init__(self, router: SlotRouter) -> None:
        self._router = router
        self._by_node: dict[str, RedisStreams] = {}

    async def _on(self, key: str, call: Callable[[RedisStreams], Awaitable[T]]) -> T:
        """`call` on the streams of the master holding `key`'s slot (one retry after a move)."""
        slot = _slot(key)
        for attempt in range(2):
            node = await self._router.master_of(slot)
            streams = self._by_node.get(node)
            if streams is None:
                streams = self._by_node[node] = RedisStreams(self._router.client_for(node))
            try:
                return await call(streams)
            except MovedError as exc:
                await self._router.slot_moved()
                if attempt:
                    raise BrokerUnavailable(f"slot {slot} moved: {exc}") from exc
            except (RedisConnectionError, RedisTimeoutError, TryAgainError, OSError) as exc:
                self._router.node_failed(node)
                raise BrokerUnavailable(f"{node}: {exc}") from exc
        raise BrokerUnavailable(f"slot {slot}: redirected too often")  # pragma: no cover

    async def append(self, entries: list[tuple[str, bytes]]) -> list[str]:
        by_slot: dict[int, list[int]] = {}
        for index, (stream, _) in enumerate(entries):
            by_slot.setdefault(_slot(stream), []).append(index)
        ids: list[str] = [""] * len(entries)
        for indexes in by_slot.values():
            batch = [entries[i] for i in indexes]
            appended = await self._on(batch[0][0], _appending(batch))
            for index, entry_id in zip(indexes, appended, strict=True):
                ids[index] = entry_id
        return ids

    async def create_group(self, stream: str, group: str) -> None:
        await self._on(stream, lambda s: s.create_group(stream, group))

    async def read_new(
        self, stream: str, group: str, consumer: str, count: int, block_ms: int
    ) -> list[StreamEntry]:
        return await self._on(
            stream, lambda s: s.read_new(stream, group, consumer, count, block_ms)
        )

    async def claim_pending(
        self, stream: str, group: str, consumer: str, count: int
    ) -> list[StreamEntry]:
        return await self._on(stream, lambda s: s.claim_pending(stream, group, consumer, count))

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
        return await self._on(
            stream,
            lambda s: s.commit(
                stream, group, ids, checkpoint, states, owner_key, owner, lease_ms, active, judged
            ),
        )

    async def active_since(self, keys: list[str], since: float) -> list[str]:
        by_slot: dict[int, list[str]] = {}
        for key in keys:
            by_slot.setdefault(_slot(key), []).append(key)
        members: list[str] = []
        for group in by_slot.values():
            members += await self._on(group[0], _active_since(group, since))
        return members

    async def load_checkpoint(self, checkpoint: str) -> dict[str, bytes]:
        return await self._on(checkpoint, lambda s: s.load_checkpoint(checkpoint))

    async def acquire(self, owner_key: str, owner: str, lease_ms: int) -> bool:
        return await self._on(owner_key, lambda s: s.acquire(owner_key, owner, lease_ms))

    async def renew(self, owner_key: str, owner: str, lease_ms: int) -> bool:
        return await self._on(owner_key, lambda s: s.renew(owner_key, owner, lease_ms))

    async def release(self, owner_key: str, owner: str) -> None:
        await self._on(owner_key, lambda s: s.release(owner_key, owner))

    async def heartbeat(self, members: str, member: str, lease_ms: int) -> int:
        return await self._on(members, lambda s: s.heartbeat(members, member, lease_ms))

    async def leave(self, members: str, member: str) -> None:
        await self._on(members, lambda s: s.leave(members, member))

    async def tail(self, stream: str, after: str, count: int, block_ms: int) -> list[StreamEntry]:
        return await self._on(stream, lambda s: s.tail(stream, after, count, block_ms))

    async def last_id(self, stream: str) -> str:
        return await self._on(stream, lambda s: s.last_id(stream))

    async def backlog(self, stream: str, group: str) -> int:
        return await self._on(stream, lambda s: s.backlog(stream, group))
