"""Concurrent replays on one Redis share one read of the retention stream (shared/broker/tail.py),
and get exactly what each would have read alone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson
import pytest

from shared.broker import RedisBroker
from shared.events import EventName, PendingEvent
from tests.fixtures.redis_server import RedisServer


@pytest.fixture
async def broker(redis_url: str) -> AsyncIterator[RedisBroker]:
    instance = RedisBroker(redis_url, retention_seconds=600, max_events=100_000)
    await instance.start()
    yield instance
    await instance.close()


def xrange_calls(redis_server: RedisServer) -> int:
    with redis_server.client() as admin:
        stats = admin.info("commandstats")
    return int(stats.get("cmdstat_xrange", {}).get("calls", 0))


def numbers(events: list) -> list[tuple[str, int]]:
    return [(e.serial, orjson.loads(e.envelope)["data"]["n"]) for e in events]


async def test_a_storm_of_replays_reads_the_stream_a_few_times_not_once_per_client(
    broker: RedisBroker, redis_server: RedisServer
) -> None:
    ids = []
    for n in range(400):
        ids.append(
            (
                await broker.publish(PendingEvent(EventName.DRONE_UPDATED, f"SN{n % 40}", {"n": n}))
            ).id
        )
    # 500 clients, each with its drone and the id of the last event it saw of it.
    requests = [(ids[(k * 7) % 300], frozenset({f"SN{k % 40}"})) for k in range(500)]
    before = xrange_calls(redis_server)
    answers = await asyncio.gather(*(broker.history(after, serials) for after, serials in requests))
    shared_reads = xrange_calls(redis_server) - before
    for (after, serials), answer in zip(requests, answers, strict=True):
        start = ids.index(after)
        expected = [(f"SN{n % 40}", n) for n in range(start + 1, 400) if f"SN{n % 40}" in serials]
        assert answer.recovered and numbers(answer.events) == expected
    print(f"\n[500 concurrent replays] XRANGE calls: {shared_reads}")
    assert shared_reads <= 10, shared_reads  # one client alone reads it twice


async def test_the_shared_copy_follows_redis_losing_its_data(
    broker: RedisBroker, redis_server: RedisServer
) -> None:
    first = await broker.publish(PendingEvent(EventName.DRONE_UPDATED, "SN1", {"n": 0}))
    await broker.publish(PendingEvent(EventName.DRONE_UPDATED, "SN1", {"n": 1}))
    assert numbers((await broker.history(first.id, None)).events) == [("SN1", 1)]
    redis_server.flush()  # as after a restart without persistence: a new stream, a new epoch
    fresh = await broker.publish(PendingEvent(EventName.DRONE_UPDATED, "SN1", {"n": 2}))
    await broker.publish(PendingEvent(EventName.DRONE_UPDATED, "SN1", {"n": 3}))
    assert numbers((await broker.history(fresh.id, None)).events) == [("SN1", 3)]
    assert not (await broker.history(first.id, None)).recovered
