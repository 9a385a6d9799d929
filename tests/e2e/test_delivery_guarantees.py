"""Delivery guarantees across replicas (issue 5), with the services as separate processes.

Events go through the product's publish path (RedisBroker.publish: ids, retention, order).
Each test prints the figures it produced: sent, received, lost, duplicated, recovery time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from shared.broker import RedisBroker
from tests.e2e.conftest import service_env
from tests.fixtures.numbered import ResumingClient, assert_contiguous, publish_numbered
from tests.fixtures.redis_server import RedisServer
from tests.fixtures.servers import ServiceProcess

pytestmark = pytest.mark.e2e


@pytest.fixture
def gateways(redis_url: str) -> Iterator[list[ServiceProcess]]:
    env = service_env(redis_url, RETENTION_MAX_EVENTS="100000")
    replicas = [ServiceProcess("gateway", env), ServiceProcess("gateway", env)]
    for replica in replicas:
        replica.start(wait_ready=False)
    try:
        for replica in replicas:
            replica.wait_ready()
        yield replicas
    finally:
        for replica in replicas:
            replica.stop()


@pytest.fixture
async def publisher(redis_url: str) -> AsyncIterator[RedisBroker]:
    broker = RedisBroker(redis_url)
    await broker.start()
    yield broker
    await broker.close()


async def start_clients(
    gateways: list[ServiceProcess], count: int, subscription: dict
) -> list[ResumingClient]:
    urls = [gateway.url for gateway in gateways]
    return list(
        await asyncio.gather(
            *(ResumingClient(urls, subscription).start(n % len(urls)) for n in range(count))
        )
    )


def report(name: str, sent: int, clients: list[ResumingClient], **extra: object) -> None:
    received = sum(len(c.numbers) for c in clients)
    duplicated = sum(len(c.numbers) - len(set(c.numbers)) for c in clients)
    lost = sum(sent - len(set(c.numbers)) for c in clients)
    figures = " ".join(f"{k}={v}" for k, v in extra.items())
    print(
        f"\n[{name}] sent={sent} clients={len(clients)} received={received} "
        f"lost={lost} duplicated={duplicated} {figures}"
    )


async def test_twenty_clients_on_two_replicas_get_5000_events_in_order(
    gateways: list[ServiceProcess], publisher: RedisBroker
) -> None:
    clients = await start_clients(gateways, 20, {"all": True})
    await publish_numbered(publisher, 0, 5000, every=100)
    for client in clients:
        await client.wait_for(5000)
    await asyncio.sleep(0.3)
    report("5000 events", 5000, clients)
    for client in clients:
        assert_contiguous(client.numbers, 5000)
        assert client.errors == []
        await client.close()


async def test_clients_of_a_killed_replica_resume_on_the_other_and_miss_nothing(
    gateways: list[ServiceProcess], publisher: RedisBroker
) -> None:
    clients = await start_clients(gateways, 10, {"droneSerial": "SN1"})
    await publish_numbered(publisher, 0, 1000, every=50)
    killed_at = time.monotonic()
    gateways[0].kill()  # SIGKILL mid-stream: its clients see their connection drop
    await publish_numbered(publisher, 1000, 1000, every=50)
    for client in clients:
        await client.wait_for(2000)
    recovery = time.monotonic() - killed_at
    await asyncio.sleep(0.3)
    moved = [c for c in clients if c.reconnects]
    report("SIGKILL replica", 2000, clients, moved=len(moved), recovery_s=round(recovery, 2))
    assert len(moved) == 5
    for client in clients:
        assert_contiguous(client.numbers, 2000)
    for client in moved:
        assert client.acks[-1]["recovered"] is True
    for client in clients:
        await client.close()


async def test_pubsub_connection_killed_mid_stream_loses_nothing(
    gateways: list[ServiceProcess], publisher: RedisBroker, redis_server: RedisServer
) -> None:
    clients = await start_clients(gateways, 6, {"all": True})

    async def kill_pubsub_connections() -> int:
        await asyncio.sleep(0.2)
        with redis_server.client() as admin:
            return int(admin.client_kill_filter(_type="pubsub"))

    killer = asyncio.create_task(kill_pubsub_connections())
    await publish_numbered(publisher, 0, 3000, every=20)
    killed = await killer
    for client in clients:
        await client.wait_for(3000)
    await asyncio.sleep(0.3)
    report("CLIENT KILL TYPE pubsub", 3000, clients, connections_killed=killed)
    assert killed >= 2
    for client in clients:
        assert_contiguous(client.numbers, 3000)
        assert client.reconnects == 0  # the gateway recovered; the clients noticed nothing
        await client.close()


async def test_redis_restart_mid_stream_resubscribes_every_replica(
    gateways: list[ServiceProcess], publisher: RedisBroker, redis_server: RedisServer
) -> None:
    clients = await start_clients(gateways, 6, {"all": True})
    await publish_numbered(publisher, 0, 500, every=50)
    for client in clients:
        await client.wait_for(500)
    restarted_at = time.monotonic()
    redis_server.restart(down_for=0.5)  # all data gone, as after a crash without persistence
    # Published after the restart while the gateways are still reconnecting: retained in the
    # new stream, so the gateways must fill it in.
    await publish_numbered(publisher, 500, 500, every=50)
    for client in clients:
        await client.wait_for(1000)
    recovery = time.monotonic() - restarted_at
    await asyncio.sleep(0.3)
    report("Redis restart", 1000, clients, recovery_s=round(recovery, 2))
    for client in clients:
        assert_contiguous(client.numbers, 1000)
        # Redis lost its data: the gateway cannot prove nothing was in flight, so it says so.
        assert [e["error"] for e in client.errors] == ["EventsLost"]
        await client.close()


async def test_a_gap_beyond_retention_says_not_recovered_and_bogus_ids_fail_closed(
    redis_url: str,
) -> None:
    # Retention is applied where events are published (the api), with the same settings.
    publisher = RedisBroker(redis_url, max_events=100)
    await publisher.start()
    gateway = ServiceProcess("gateway", service_env(redis_url, RETENTION_MAX_EVENTS="100"))
    gateway.start()
    try:
        first = (await publish_numbered(publisher, 0, 1))[0]
        await publish_numbered(publisher, 1, 500)  # pushes `first` out of the window
        client = ResumingClient([gateway.url], {"droneSerial": "SN1"})
        client.last_id = first
        await client.start()
        assert client.acks[-1]["ok"] is True and client.acks[-1]["recovered"] is False
        assert client.numbers == []  # nothing replayed: the client must reload state
        await client.close()

        bogus = ResumingClient([gateway.url], {"droneSerial": "SN1", "lastEventId": "banana"})
        await bogus.start()
        assert bogus.acks[-1]["ok"] is False and bogus.acks[-1]["error"] == "InvalidSubscribe"
        await publish_numbered(publisher, 501, 5)
        await asyncio.sleep(0.3)
        assert bogus.numbers == []  # fails closed: not subscribed at all
        await bogus.close()
    finally:
        gateway.stop()
        await publisher.close()


async def test_a_replica_subscribes_on_redis_only_to_what_its_clients_want(
    redis_url: str, redis_server: RedisServer
) -> None:
    gateway = ServiceProcess("gateway", service_env(redis_url)).start()

    def patterns() -> int:
        with redis_server.client() as admin:
            return int(admin.pubsub_numpat())

    async def until(expected: int) -> None:
        for _ in range(100):
            if patterns() == expected:
                return
            await asyncio.sleep(0.02)
        assert patterns() == expected

    try:
        await until(1)  # system:broadcast only: nobody wants any drone yet
        detector = ResumingClient([gateway.url], {"droneSerial": "SN1"})
        await detector.start()
        await until(2)  # + drone:SN1:*
        dashboard = ResumingClient([gateway.url], {"all": True})
        await dashboard.start()
        await until(3)  # + drone:* while someone watches every drone
        await dashboard.close()
        await until(2)
        await detector.close()
        await until(1)
    finally:
        gateway.stop()
