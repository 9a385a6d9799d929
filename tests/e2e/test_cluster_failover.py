"""The product on a Redis Cluster (REDIS_CLUSTER=true), as separate processes: `dronecast api`
and two `dronecast gateway`s on 3 masters + 3 replicas, python-socketio clients, changes made
over REST (so through the outbox). A master is killed by PID mid-stream.

Each test prints its figures: sent, received, lost, duplicated, notices, recovery time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import socketio

from shared.broker import ClusterBroker
from shared.channels import slot_of
from tests.e2e.conftest import service_env
from tests.fixtures.numbered import (
    LOST,
    ResumingClient,
    Verdict,
    assert_contiguous,
    publish_numbered,
    verify_timeline,
)
from tests.fixtures.redis_cluster import RedisCluster
from tests.fixtures.servers import ServiceProcess

pytestmark = [pytest.mark.e2e, pytest.mark.cluster]


def cluster_env(cluster_url: str, **extra: str) -> dict[str, str]:
    return service_env(cluster_url, REDIS_CLUSTER="true", **extra)


@pytest.fixture
def product(cluster_url: str) -> Iterator[dict[str, ServiceProcess]]:
    # One test client writes the whole fleet's changes, faster than one client may (50/s).
    env = cluster_env(cluster_url, REQUESTS_PER_SECOND="10000", REQUEST_BURST="10000")
    processes = {
        "api": ServiceProcess("api", env),
        "gateway-1": ServiceProcess("gateway", env),
        "gateway-2": ServiceProcess("gateway", env),
    }
    for process in processes.values():
        process.start(wait_ready=False)
    try:
        for process in processes.values():
            process.wait_ready()
        yield processes
    finally:
        for process in processes.values():
            process.stop()


def drones_per_master(cluster: RedisCluster, each: int) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {node.port: [] for node in cluster.masters()}
    n = 0
    while any(len(serials) < each for serials in found.values()):
        serial = f"FLEET-{n}"
        port = cluster.master_of(serial).port
        if len(found[port]) < each:
            found[port].append(serial)
        n += 1
    return found


class Watcher:
    """A dashboard or detector: what it saw per drone, in arrival order, `LOST` where it was
    told `EventsLost`. The n of an event is the number in the deviceName it carries."""

    def __init__(self, url: str, subscription: dict[str, Any]) -> None:
        self.url = url
        self.subscription = subscription
        self.timelines: dict[str, list[int | str]] = {}
        self.sio = socketio.AsyncClient(reconnection=False)
        self.sio.on("drone:event", self._event)
        self.sio.on("error", self._error)
        self.arrived: dict[tuple[str, int], float] = {}

    async def start(self) -> Watcher:
        await self.sio.connect(self.url, socketio_path="/ws/events", transports=["websocket"])
        ack = await self.sio.call("subscribe", self.subscription, timeout=15)
        assert ack["ok"] is True, ack
        return self

    async def _event(self, event: dict[str, Any]) -> None:
        if event["event"] != "drone.updated":
            return
        n = int(event["data"]["changes"]["deviceName"]["new"].split("-")[1])
        self.timelines.setdefault(event["serial"], []).append(n)
        self.arrived.setdefault((event["serial"], n), time.monotonic())

    async def _error(self, error: dict[str, Any]) -> None:
        if error.get("error") == "EventsLost":
            for timeline in self.timelines.values():
                timeline.append(LOST)

    def saw(self, serial: str, n: int) -> bool:
        return n in self.timelines.get(serial, [])


async def test_a_master_killed_mid_stream_every_client_gets_everything_or_is_told(
    product: dict[str, ServiceProcess], redis_cluster: RedisCluster
) -> None:
    api, gateways = product["api"], [product["gateway-1"], product["gateway-2"]]
    groups = drones_per_master(redis_cluster, 2)
    serials = [serial for group in groups.values() for serial in group]
    victim_port, victims = next(iter(groups.items()))
    victim = redis_cluster.node_at(victim_port)
    rounds, kill_at = 60, 20
    async with httpx.AsyncClient(base_url=api.url, timeout=10) as http:
        for serial in serials:
            created = await http.post(
                "/api/v1/drones/register",
                json={"deviceSerialNumber": serial, "deviceName": f"{serial}-start"},
            )
            assert created.status_code == 201
        watchers = [
            await Watcher(gateways[i % 2].url, {"droneSerial": serial}).start()
            for i, serial in enumerate(serials)
        ] + [await Watcher(gateway.url, {"all": True}).start() for gateway in gateways]

        killed_at = 0.0
        for n in range(rounds):
            if n == kill_at:
                redis_cluster.kill(victim)
                killed_at = time.monotonic()
            # The write succeeds whatever the bus is doing; its event is owed by the outbox.
            answers = await asyncio.gather(
                *(
                    http.patch(f"/api/v1/drones/sn/{s}", json={"deviceName": f"n-{n}"})
                    for s in serials
                )
            )
            refused = [(a.status_code, a.text[:300]) for a in answers if a.status_code != 200]
            assert refused == [], (n, refused)
            await asyncio.sleep(0.05)
        patched_s = time.monotonic() - killed_at

    await until_true(
        lambda: all(
            w.saw(s, rounds - 1)
            for w in watchers
            for s in serials
            if s in w.timelines or w.subscription.get("all")
        ),
        40,
    )
    caught_up_s = time.monotonic() - killed_at
    await asyncio.sleep(0.5)
    # Recovery: from the SIGKILL until the first change written after it to a drone of the
    # killed shard reached its watchers (published by the outbox once the replica took over).
    recovery = (
        max(w.arrived[(s, kill_at)] for w in watchers for s in victims if (s, kill_at) in w.arrived)
        - killed_at
    )

    totals = Verdict()
    for watcher in watchers:
        for serial in serials:
            if (
                "droneSerial" in watcher.subscription
                and watcher.subscription["droneSerial"] != serial
            ):
                continue
            verdict = verify_timeline(watcher.timelines.get(serial, []), rounds)
            if serial not in victims:
                assert verdict == Verdict(received=rounds), (serial, verdict)
            totals.received += verdict.received
            totals.duplicated += verdict.duplicated
            totals.lost += verdict.lost
            totals.notices += verdict.notices
    sent = rounds * (len(serials) + len(serials) * 2)  # each drone's watcher + two dashboards
    print(
        f"\n[cluster master SIGKILL] sent={sent} received={totals.received} lost={totals.lost} "
        f"duplicated={totals.duplicated} notices={totals.notices} "
        f"recovery_s={recovery:.2f} all_caught_up_s={caught_up_s:.2f} patches_s={patched_s:.2f} "
        f"victim_drones={victims} slot={slot_of(victims[0])}"
    )
    for watcher in watchers:
        await watcher.sio.disconnect()


async def test_clients_of_a_killed_gateway_resume_one_drone_exactly_and_hear_when_they_cannot(
    cluster_url: str,
) -> None:
    env = cluster_env(cluster_url)
    gateways = [ServiceProcess("gateway", env), ServiceProcess("gateway", env)]
    for gateway in gateways:
        gateway.start(wait_ready=False)
    publisher = ClusterBroker(cluster_url)
    await publisher.start()
    try:
        for gateway in gateways:
            gateway.wait_ready()
        assert slot_of("SN1") != slot_of("SN2")
        urls = [gateway.url for gateway in gateways]
        one_drone = [await ResumingClient(urls, {"droneSerial": "SN1"}).start(0) for _ in range(3)]
        two_slots = await ResumingClient(urls, {"droneSerials": ["SN1", "SN2"]}).start(0)
        await publish_numbered(publisher, 0, 200, serial="SN1", every=20)
        gateways[0].kill()
        await publish_numbered(publisher, 200, 200, serial="SN1", every=20)
        for client in one_drone:
            await client.wait_for(400)
        await asyncio.sleep(0.3)
        for client in one_drone:
            assert client.reconnects == 1
            assert client.acks[-1]["recovered"] is True  # one drone: one partition, one order
            assert_contiguous(client.numbers, 400)
        # Two drones in two partitions: one id cannot say what was missed in the other.
        await until_true(lambda: two_slots.reconnects == 1 and len(two_slots.acks) == 2)
        assert two_slots.acks[-1]["ok"] is True and two_slots.acks[-1]["recovered"] is False
        for client in [*one_drone, two_slots]:
            await client.close()
    finally:
        await publisher.close()
        for gateway in gateways:
            gateway.stop()


async def until_true(condition: Any, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)
