"""The broker's promises, checked on both implementations: Redis (real server) and memory."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson
import pytest

from shared.broker import Broker, BrokerUnavailable, MemoryBroker, RedisBroker
from shared.broker.base import id_after
from shared.channels import drone_pattern
from shared.events import EventName, PendingEvent, PublishedEvent, parse_event_id
from tests.fixtures.redis_server import RedisServer


@pytest.fixture(params=["redis", "memory"])
async def broker(
    request: pytest.FixtureRequest, redis_server: RedisServer
) -> AsyncIterator[Broker]:
    instance: Broker
    if request.param == "redis":
        if redis_server.process is None or redis_server.process.poll() is not None:
            redis_server.start()
        redis_server.flush()
        instance = RedisBroker(redis_server.url, retention_seconds=600, max_events=1000)
    else:
        instance = MemoryBroker(retention_seconds=600, max_events=1000)
    await instance.start()
    yield instance
    await instance.close()


def updated(serial: str, n: int, **kwargs: object) -> PendingEvent:
    return PendingEvent(EventName.DRONE_UPDATED, serial, {"n": n}, **kwargs)  # type: ignore[arg-type]


async def test_ids_increase_and_envelope_carries_them(broker: Broker) -> None:
    published = [await broker.publish(updated("SN1", n)) for n in range(50)]
    ids = [parse_event_id(event.id) for event in published]
    assert ids == sorted(ids) and len(set(ids)) == 50
    envelope = orjson.loads(published[0].envelope)
    assert envelope["id"] == published[0].id
    assert envelope["event"] == "drone.updated"
    assert envelope["serial"] == "SN1"
    assert envelope["data"] == {"n": 0}
    assert envelope["timestamp"].endswith("Z")
    assert published[0].channel == "drone:SN1:updated"


async def test_publishing_the_same_event_twice_sends_it_once(broker: Broker) -> None:
    received: list[PublishedEvent] = []
    subscription = broker.subscription(received.append)
    await subscription.add(drone_pattern("SN1"))
    event = updated("SN1", 1)
    first = await broker.publish(event)
    second = await broker.publish(event)
    await asyncio.sleep(0.2)
    assert first.id == second.id
    assert [e.id for e in received] == [first.id]


async def test_history_returns_what_came_after_an_id_for_the_serials_asked(broker: Broker) -> None:
    first = await broker.publish(updated("SN1", 0))
    for n in range(1, 6):
        await broker.publish(updated("SN1", n))
        await broker.publish(updated("SN2", n))
    history = await broker.history(first.id, frozenset({"SN1"}))
    assert history.recovered
    assert [orjson.loads(e.envelope)["data"]["n"] for e in history.events] == [1, 2, 3, 4, 5]
    everything = await broker.history(first.id, None)
    assert len(everything.events) == 10


async def test_history_beyond_retention_is_not_recovered(broker: Broker) -> None:
    first = await broker.publish(updated("SN1", 0))
    for n in range(1, 1500):  # max_events=1000: the first one is trimmed
        await broker.publish(updated("SN1", n))
    history = await broker.history(first.id, None)
    assert not history.recovered
    assert history.events == []


async def test_history_of_an_id_that_never_existed_is_not_recovered(broker: Broker) -> None:
    await broker.publish(updated("SN1", 0))
    history = await broker.history("1-0", None)
    assert not history.recovered


async def test_history_rejects_a_malformed_id(broker: Broker) -> None:
    with pytest.raises(ValueError):
        await broker.history("not-an-id", None)


async def test_snapshot_follows_the_latest_state_and_goes_with_delete(broker: Broker) -> None:
    assert await broker.snapshot("SN1") is None
    await broker.publish(updated("SN1", 1, snapshot={"streamIsOn": False}))
    last = await broker.publish(updated("SN1", 2, snapshot={"streamIsOn": True}))
    snapshot = await broker.snapshot("SN1")
    assert snapshot is not None
    assert snapshot.state == {"streamIsOn": True}
    assert snapshot.event_id == last.id
    await broker.publish(PendingEvent(EventName.DRONE_DELETED, "SN1", {}, deletes_snapshot=True))
    assert await broker.snapshot("SN1") is None


async def test_subscription_gets_only_its_patterns_in_order(broker: Broker) -> None:
    received: list[PublishedEvent] = []
    subscription = broker.subscription(received.append)
    await subscription.add(drone_pattern("SN1"))
    for n in range(20):
        await broker.publish(updated("SN1", n))
        await broker.publish(updated("SN2", n))
    for _ in range(50):
        if len(received) == 20:
            break
        await asyncio.sleep(0.02)
    assert [orjson.loads(e.envelope)["data"]["n"] for e in received] == list(range(20))
    assert all(e.serial == "SN1" for e in received)
    await subscription.remove(drone_pattern("SN1"))
    await broker.publish(updated("SN1", 99))
    await asyncio.sleep(0.1)
    assert len(received) == 20


async def test_removing_several_patterns_at_once_stops_each_and_keeps_the_rest(
    broker: Broker,
) -> None:
    received: list[PublishedEvent] = []
    subscription = broker.subscription(received.append)
    for serial in ("SN1", "SN2", "SN3"):
        await subscription.add(drone_pattern(serial))
    await subscription.remove(drone_pattern("SN1"), drone_pattern("SN2"), drone_pattern("SN9"))
    for serial in ("SN1", "SN2", "SN3"):
        await broker.publish(updated(serial, 0))
    for _ in range(50):
        if received:
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.1)
    assert [e.serial for e in received] == ["SN3"]


async def test_latest_id_is_the_newest_event(broker: Broker) -> None:
    assert await broker.latest_id() == ""
    await broker.publish(updated("SN1", 0))
    last = await broker.publish(updated("SN1", 1))
    assert await broker.latest_id() == last.id


def test_id_order_is_numeric_not_textual() -> None:
    assert id_after("1700000000000-10", "1700000000000-9")
    assert not id_after("999-0", "1000-0")


async def test_publish_reports_redis_down(redis_server: RedisServer) -> None:
    broker = RedisBroker(redis_server.url)
    await broker.start()
    redis_server.stop()
    try:
        with pytest.raises(BrokerUnavailable):
            await broker.publish(updated("SN1", 0))
        assert not await broker.ping()
    finally:
        redis_server.start()
        await broker.close()


async def test_subscription_comes_back_after_client_kill_and_calls_resume(
    redis_server: RedisServer, redis_url: str
) -> None:
    broker = RedisBroker(redis_url)
    await broker.start()
    received: list[PublishedEvent] = []
    resumed = asyncio.Event()

    async def on_resume() -> None:
        resumed.set()

    subscription = broker.subscription(received.append, on_resume)
    await subscription.add(drone_pattern("SN1"))
    with redis_server.client() as admin:
        assert admin.client_kill_filter(_type="pubsub") >= 1
    await asyncio.wait_for(resumed.wait(), 10)
    await broker.publish(updated("SN1", 1))
    for _ in range(50):
        if received:
            break
        await asyncio.sleep(0.02)
    assert [orjson.loads(e.envelope)["data"]["n"] for e in received] == [1]
    await broker.close()


async def test_notify_reaches_subscribers_without_an_id_or_retention(broker: Broker) -> None:
    received: list[PublishedEvent] = []
    subscription = broker.subscription(received.append)
    await subscription.add("dronecast:nudge:drone:*")
    await broker.notify("dronecast:nudge:drone:D1", b'{"look":"commands"}')
    for _ in range(50):
        if received:
            break
        await asyncio.sleep(0.02)
    assert [(e.channel, e.envelope, e.id) for e in received] == [
        ("dronecast:nudge:drone:D1", b'{"look":"commands"}', "")
    ]
    assert await broker.latest_id() == ""


async def test_a_password_given_apart_from_the_url_authenticates() -> None:
    """REDIS_PASSWORD: for a URL without credentials (the password lives in a Secret)."""
    from shared.broker import create_broker
    from tests.conftest import make_settings

    server = RedisServer("--requirepass", "s3cret-pass")
    server.start()
    try:
        for password, works in (("s3cret-pass", True), ("", False)):
            broker = create_broker(make_settings(redis_url=server.url, redis_password=password))
            await broker.start()
            try:
                if works:
                    published = await broker.publish(updated("SN1", 1))
                    assert (await broker.latest_id()) == published.id
                else:
                    with pytest.raises(BrokerUnavailable):
                        await broker.publish(updated("SN1", 2))
            finally:
                await broker.close()
    finally:
        server.stop()
