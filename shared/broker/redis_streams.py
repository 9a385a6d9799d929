"""`Streams` on Redis: XADD in MULTI, consumer groups (XREADGROUP, XAUTOCLAIM), leases, and a
commit script (`stream_commit.lua`) that acknowledges, checkpoints, trims and renews the lease
in one step, only while the committer owns the partition.

Each call names keys built by `shared/channels.py`; a partition's keys share a hash tag, so on
a Redis Cluster everything one commit touches is on one slot.
"""

from __future__ import annotations

import time
from importlib import resources
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from shared.broker.streams import (
    ACTIVE_KEEP_SECONDS,
    JUDGED_KEEP,
    LATEST,
    TAIL_KEEP_MS,
    StreamEntry,
    entry_id_key,
)

_COMMIT_LUA = resources.files("shared.broker").joinpath("stream_commit.lua").read_text()
_RENEW_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
_FIELD = b"r"


def _entries(raw: Any) -> list[StreamEntry]:
    return [
        StreamEntry(entry_id.decode(), fields[_FIELD])
        for entry_id, fields in raw or []
        if fields  # a pending entry that was trimmed comes back without fields
    ]


class RedisStreams:
    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._commit = client.register_script(_COMMIT_LUA)
        self._renew = client.register_script(_RENEW_LUA)
        self._release = client.register_script(_RELEASE_LUA)

    async def append(self, entries: list[tuple[str, bytes]]) -> list[str]:
        async with self._client.pipeline(transaction=True) as pipe:
            for stream, payload in entries:
                pipe.xadd(stream, {_FIELD: payload})
            ids = await pipe.execute()
        return [entry_id.decode() for entry_id in ids]

    async def create_group(self, stream: str, group: str) -> None:
        try:
            await self._client.xgroup_create(stream, group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def read_new(
        self, stream: str, group: str, consumer: str, count: int, block_ms: int
    ) -> list[StreamEntry]:
        raw: Any = await self._client.xreadgroup(
            group, consumer, {stream: ">"}, count=count, block=block_ms or None
        )
        return _entries(raw[0][1]) if raw else []

    async def claim_pending(
        self, stream: str, group: str, consumer: str, count: int
    ) -> list[StreamEntry]:
        raw: Any = await self._client.xautoclaim(
            stream, group, consumer, min_idle_time=0, start_id="0-0", count=count
        )
        # [next cursor, entries, deleted ids]; trimmed entries are listed as deleted.
        return sorted(_entries(raw[1]), key=lambda entry: entry_id_key(entry.id))

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
        trim = ""
        if ids:
            newest = max(entry_id_key(entry_id) for entry_id in ids)
            trim = f"{max(newest[0] - TAIL_KEEP_MS, 0)}-0"
        judged_key, judged_payload = judged if judged is not None else (checkpoint + ":judged", b"")
        args: list[Any] = [group, owner, lease_ms, trim, len(ids), *ids]
        args += [judged_payload, JUDGED_KEEP, len(states)]
        for field, value in states.items():
            args += [field, value]
        active_key, members = active if active is not None else (checkpoint + ":active", {})
        args.append(time.time() - ACTIVE_KEEP_SECONDS)
        for member, score in members.items():
            args += [score, member]
        done = await self._commit(
            keys=[stream, checkpoint, owner_key, active_key, judged_key], args=args
        )
        return bool(done)

    async def active_since(self, keys: list[str], since: float) -> list[str]:
        async with self._client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.zrangebyscore(key, since, "+inf")
            results = await pipe.execute()
        return [member.decode() for members in results for member in members]

    async def load_checkpoint(self, checkpoint: str) -> dict[str, bytes]:
        raw: Any = await self._client.hgetall(checkpoint)
        return {key.decode(): value for key, value in raw.items()}

    async def acquire(self, owner_key: str, owner: str, lease_ms: int) -> bool:
        if await self._client.set(owner_key, owner, nx=True, px=lease_ms):
            return True
        return await self.renew(owner_key, owner, lease_ms)

    async def renew(self, owner_key: str, owner: str, lease_ms: int) -> bool:
        return bool(await self._renew(keys=[owner_key], args=[owner, lease_ms]))

    async def release(self, owner_key: str, owner: str) -> None:
        await self._release(keys=[owner_key], args=[owner])

    async def heartbeat(self, members: str, member: str, lease_ms: int) -> int:
        now_ms = int(time.time() * 1000)
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.zadd(members, {member: now_ms + lease_ms})
            pipe.zremrangebyscore(members, "-inf", now_ms)
            pipe.zcard(members)
            result = await pipe.execute()
        return int(result[2])

    async def leave(self, members: str, member: str) -> None:
        await self._client.zrem(members, member)

    async def tail(self, stream: str, after: str, count: int, block_ms: int) -> list[StreamEntry]:
        start = after if after != LATEST else "$"
        raw: Any = await self._client.xread({stream: start}, count=count, block=block_ms or None)
        return _entries(raw[0][1]) if raw else []

    async def last_id(self, stream: str) -> str:
        raw: Any = await self._client.xrevrange(stream, "+", "-", count=1)
        return raw[0][0].decode() if raw else "0-0"

    async def backlog(self, stream: str, group: str) -> int:
        try:
            groups: Any = await self._client.xinfo_groups(stream)
        except ResponseError:
            return 0
        for info in groups:
            if info["name"].decode() == group:
                lag = info.get("lag")
                return int(info["pending"]) + int(lag or 0)
        return int(await self._client.xlen(stream))


__all__ = ["RedisError", "RedisStreams"]
