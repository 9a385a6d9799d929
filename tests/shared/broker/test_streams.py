"""The stream interface telemetry flows through, on every implementation: `MemoryStreams` (the
embedded default), `RedisStreams` on a real redis-server, and `ClusterStreams` on a real Redis
Cluster (3 masters, 3 replicas). Same calls, same answers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from shared.broker import ClusterBroker, MemoryBroker, RedisBroker
from shared.broker.streams import LATEST, Streams
from shared.channels import (
    TELEMETRY_GROUP,
    TELEMETRY_MEMBERS,
    telemetry_active,
    telemetry_checkpoint,
    telemetry_judged,
    telemetry_owner,
    telemetry_partition,
    telemetry_stream,
)

STREAM, CHECKPOINT, OWNER = telemetry_stream(3), telemetry_checkpoint(3), telemetry_owner(3)
ACTIVE, JUDGED = telemetry_active(3), telemetry_judged(3)
LEASE_MS = 5000


@pytest.fixture(params=["memory", "redis", pytest.param("cluster", marks=pytest.mark.cluster)])
async def streams(request: pytest.FixtureRequest) -> AsyncIterator[Streams]:
    broker: MemoryBroker | RedisBroker | ClusterBroker
    if request.param == "memory":
        broker = MemoryBroker()
    elif request.param == "redis":
        broker = RedisBroker(request.getfixturevalue("redis_url"))
    else:
        broker = ClusterBroker(request.getfixturevalue("cluster_url"))
    await broker.start()
    try:
        await broker.streams.create_group(STREAM, TELEMETRY_GROUP)
        yield broker.streams
    finally:
        await broker.close()


async def test_each_entry_goes_to_one_consumer_of_the_group(streams: Streams) -> None:
    ids = await streams.append([(STREAM, b"a"), (STREAM, b"b"), (STREAM, b"c")])
    first = await streams.read_new(STREAM, TELEMETRY_GROUP, "w1", 2, 0)
    second = await streams.read_new(STREAM, TELEMETRY_GROUP, "w2", 10, 0)
    assert [e.payload for e in first] == [b"a", b"b"] and [e.payload for e in second] == [b"c"]
    assert [e.id for e in first + second] == ids
    assert await streams.read_new(STREAM, TELEMETRY_GROUP, "w1", 10, 50) == []
    assert await streams.backlog(STREAM, TELEMETRY_GROUP) == 3  # delivered, not acknowledged


async def test_a_blocked_reader_wakes_when_an_entry_arrives(streams: Streams) -> None:
    reading = asyncio.create_task(streams.read_new(STREAM, TELEMETRY_GROUP, "w1", 10, 8000))
    await asyncio.sleep(0.1)
    started = time.monotonic()
    await streams.append([(STREAM, b"x")])
    [entry] = await reading
    assert entry.payload == b"x" and time.monotonic() - started < 4.0  # not at the 8 s timeout


async def test_what_a_lost_consumer_left_pending_is_claimed_oldest_first(streams: Streams) -> None:
    await streams.append([(STREAM, b"a"), (STREAM, b"b")])
    await streams.read_new(STREAM, TELEMETRY_GROUP, "dead", 10, 0)
    await streams.append([(STREAM, b"c")])
    claimed = await streams.claim_pending(STREAM, TELEMETRY_GROUP, "heir", 10)
    assert [e.payload for e in claimed] == [b"a", b"b"]
    assert [e.payload for e in await streams.read_new(STREAM, TELEMETRY_GROUP, "heir", 10, 0)] == [
        b"c"
    ]


async def test_commit_acknowledges_checkpoints_and_keeps_the_lease(streams: Streams) -> None:
    assert await streams.acquire(OWNER, "w1", LEASE_MS)
    await streams.append([(STREAM, b"a")])
    [entry] = await streams.read_new(STREAM, TELEMETRY_GROUP, "w1", 10, 0)
    done = await streams.commit(
        STREAM, TELEMETRY_GROUP, [entry.id], CHECKPOINT, {"s1": b"{}"}, OWNER, "w1", LEASE_MS,
        (ACTIVE, {"SN1/s1": time.time()}), (JUDGED, b"[1]"),
    )  # fmt: skip
    assert done is True
    assert await streams.backlog(STREAM, TELEMETRY_GROUP) == 0
    assert await streams.load_checkpoint(CHECKPOINT) == {"s1": b"{}"}
    assert await streams.active_since([ACTIVE], time.time() - 60) == ["SN1/s1"]
    assert await streams.claim_pending(STREAM, TELEMETRY_GROUP, "w2", 10) == []
    assert not await streams.acquire(OWNER, "w2", LEASE_MS)  # still w1's


async def test_a_consumer_that_lost_its_lease_cannot_commit(streams: Streams) -> None:
    assert await streams.acquire(OWNER, "w1", 100)
    await streams.append([(STREAM, b"a")])
    [entry] = await streams.read_new(STREAM, TELEMETRY_GROUP, "w1", 10, 0)
    await asyncio.sleep(0.25)  # w1 stalls past its lease
    assert await streams.acquire(OWNER, "w2", LEASE_MS)
    stale = await streams.commit(
        STREAM, TELEMETRY_GROUP, [entry.id], CHECKPOINT, {"s1": b"old"}, OWNER, "w1", LEASE_MS
    )
    assert stale is False
    assert await streams.load_checkpoint(CHECKPOINT) == {}  # nothing of w1's was written
    [claimed] = await streams.claim_pending(STREAM, TELEMETRY_GROUP, "w2", 10)
    assert claimed.id == entry.id  # still pending, for w2 to redo
    assert not await streams.renew(OWNER, "w1", LEASE_MS)
    await streams.release(OWNER, "w1")  # not w1's to release
    assert not await streams.acquire(OWNER, "w3", LEASE_MS)


async def test_tail_reads_new_entries_without_a_group(streams: Streams) -> None:
    await streams.append([(STREAM, b"old")])
    tail = asyncio.create_task(streams.tail(JUDGED, LATEST, 10, 2000))
    await asyncio.sleep(0.1)
    assert await streams.acquire(OWNER, "w1", LEASE_MS)
    await streams.commit(
        STREAM, TELEMETRY_GROUP, [], CHECKPOINT, {}, OWNER, "w1", LEASE_MS, None, (JUDGED, b"j1")
    )
    [entry] = await tail
    assert entry.payload == b"j1"
    assert await streams.tail(JUDGED, entry.id, 10, 0) == []
    assert await streams.last_id(JUDGED) == entry.id


async def test_heartbeats_count_the_consumers_alive(streams: Streams) -> None:
    assert await streams.heartbeat(TELEMETRY_MEMBERS, "w1", 200) == 1
    assert await streams.heartbeat(TELEMETRY_MEMBERS, "w2", 5000) == 2
    await asyncio.sleep(0.3)  # w1 stopped beating
    assert await streams.heartbeat(TELEMETRY_MEMBERS, "w2", 5000) == 1
    await streams.leave(TELEMETRY_MEMBERS, "w2")
    assert await streams.heartbeat(TELEMETRY_MEMBERS, "w3", 5000) == 1


def test_a_partitions_keys_share_one_cluster_slot() -> None:
    keys = [STREAM, CHECKPOINT, OWNER, ACTIVE, JUDGED]
    tags = {key[key.index("{") + 1 : key.index("}")] for key in keys}
    assert tags == {"tp3"}
    assert telemetry_partition("DRONE1", 16) == telemetry_partition("DRONE1", 16)
    assert len({telemetry_partition(f"D{n}", 16) for n in range(200)}) == 16


async def test_an_append_across_partitions_lands_each_entry_in_its_own_stream(
    streams: Streams,
) -> None:
    # Sixteen partitions: on a cluster they live on several masters, and the append is split.
    batch = [(telemetry_stream(p), f"entry-{p}".encode()) for p in range(16)]
    batch += [(telemetry_stream(p), f"again-{p}".encode()) for p in range(16)]
    ids = await streams.append(batch)
    assert len(ids) == 32 and all(ids)
    for p in range(16):
        entries = await streams.tail(telemetry_stream(p), "0-0", 10, 0)
        assert [entry.payload for entry in entries] == [
            f"entry-{p}".encode(),
            f"again-{p}".encode(),
        ]
        assert [entry.id for entry in entries] == [ids[p], ids[16 + p]]
    active = [telemetry_active(p) for p in range(16)]
    assert await streams.active_since(active, 0) == []
