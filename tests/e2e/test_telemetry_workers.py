"""Telemetry across processes: `dronecast api` and two `dronecast worker`s on one real Redis.
A worker frozen with entries in hand, then killed (SIGKILL), loses nothing: the other takes its
partitions once the leases lapse, claims what it left pending, and every anomaly is published
exactly once. A client that sends the same readings twice gets one alert."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
import redis
import socketio

from shared.channels import EVENT_STREAM, TELEMETRY_GROUP, telemetry_stream
from shared.events import envelope_bytes
from tests.e2e.conftest import service_env
from tests.fixtures.servers import ServiceProcess
from tests.fixtures.telemetry import DATA, recent, series, steady

pytestmark = pytest.mark.e2e

PARTITIONS = 4
DRONES = [f"SN{n}" for n in range(8)]


@pytest.fixture
def processes(redis_url: str) -> Iterator[dict[str, ServiceProcess]]:
    env = service_env(
        redis_url,
        TELEMETRY_PARTITIONS=str(PARTITIONS),
        TELEMETRY_LEASE_SECONDS="1",
        TELEMETRY_READ_BATCH="2",  # small batches: a frozen worker holds some
        REQUESTS_PER_SECOND="10000",  # one client sends all the fleet's batches
        REQUEST_BURST="10000",
        LOG_LEVEL="WARNING",
    )
    started = {
        "api": ServiceProcess("api", env),
        "worker-a": ServiceProcess("worker", env),
        "worker-b": ServiceProcess("worker", env),
    }
    for process in started.values():
        process.start(wait_ready=False)
    try:
        for process in started.values():
            process.wait_ready()
        yield started
    finally:
        for process in started.values():
            process.stop()


def backlog(client: redis.Redis) -> int:
    total = 0
    for partition in range(PARTITIONS):
        for group in client.xinfo_groups(telemetry_stream(partition)):
            if group["name"].decode() == TELEMETRY_GROUP:
                total += int(group["pending"]) + int(group["lag"] or 0)
    return total


def wait_caught_up(client: redis.Redis, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while backlog(client):
        assert time.monotonic() < deadline, f"backlog stays at {backlog(client)}"
        time.sleep(0.05)


def stalled_consumers(client: redis.Redis) -> set[str]:
    """Consumers holding entries they have not touched for a while."""
    stalled = set()
    for partition in range(PARTITIONS):
        for consumer in client.xinfo_consumers(telemetry_stream(partition), TELEMETRY_GROUP):
            if consumer["pending"] and consumer["idle"] > 400:
                stalled.add(consumer["name"].decode())
    return stalled


def anomaly_ids(client: redis.Redis) -> list[str]:
    """The ids of every `telemetry.anomaly` published (the retention stream keeps them all)."""
    ids = []
    for entry_id, fields in client.xrange(EVENT_STREAM):
        envelope: dict[str, Any] = orjson.loads(envelope_bytes(entry_id.decode(), fields[b"b"]))
        if envelope["event"] == "telemetry.anomaly":
            ids.append(envelope["data"]["id"])
    return ids


def post(http: httpx.Client, body: list[dict[str, Any]]) -> list[dict[str, Any]]:
    response = http.post(DATA, json=body)
    assert response.status_code == 202, response.text
    accepted: list[dict[str, Any]] = response.json()
    return accepted


def test_a_killed_worker_loses_nothing_and_nothing_is_published_twice(
    processes: dict[str, ServiceProcess], redis_url: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    rounds = 40
    readings = {}
    for n, drone in enumerate(DRONES):
        values = steady(40 + 4 * rounds)
        for round_ in range(n, rounds, len(DRONES)):  # one spike per round, drones in turn
            values[40 + 4 * round_ + 1] = 500.0
        readings[drone] = series(values, "temp", recent(3600), drone_serial=drone)
    spikes: list[str] = []
    with httpx.Client(base_url=processes["api"].url, timeout=10) as http:
        for drone in DRONES:  # each sensor's history first
            post(http, readings[drone][:40])
        wait_caught_up(client)
        frozen = None
        for round_ in range(rounds):
            # Worker A is frozen while its reads are still blocked in Redis, just before a
            # round arrives: Redis hands it the round's first entries of its partitions, which
            # it then holds without ever committing them.
            freezing = frozen is None and round_ >= 5
            if freezing:
                processes["worker-a"].signal(signal.SIGSTOP)
            for drone in DRONES:
                chunk = readings[drone][40 + 4 * round_ : 44 + 4 * round_]
                accepted = post(http, chunk)
                spikes += [
                    a["id"] for a, r in zip(accepted, chunk, strict=True) if r["value"] == 500
                ]
            if freezing:
                time.sleep(0.6)
                if stalled_consumers(client):
                    frozen = processes["worker-a"]
                else:  # it had nothing in hand: let it go on and try again
                    processes["worker-a"].signal(signal.SIGCONT)
        assert frozen is not None, "worker A never held entries when frozen"
        frozen.kill()  # SIGKILL: no goodbye, no release
        wait_caught_up(client, timeout=60)
    time.sleep(0.5)
    published = anomaly_ids(client)
    assert sorted(set(published) & set(spikes)) == sorted(spikes)  # none lost
    assert len(published) == len(set(published))  # none twice
    metrics = httpx.get(f"{processes['worker-b'].url}/metrics").text
    redelivered = [
        float(line.split()[1])
        for line in metrics.splitlines()
        if line.startswith("dronecast_telemetry_redelivered_total ")
    ]
    assert redelivered and redelivered[0] > 0  # B redid what A had in hand


def test_readings_sent_twice_raise_one_alert(
    processes: dict[str, ServiceProcess], redis_url: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    body = series([*steady(40), 500.0, 20.0], "temp", drone_serial="SN1")
    with httpx.Client(base_url=processes["api"].url, timeout=10) as http:
        first = post(http, body)
        again = post(http, body)  # a client retrying after a timeout
        wait_caught_up(client)
    assert [item["id"] for item in again] == [item["id"] for item in first]
    time.sleep(0.3)
    assert anomaly_ids(client) == [first[40]["id"]]


@pytest.mark.cluster
async def test_on_a_redis_cluster_a_spike_reaches_a_socketio_client_once(cluster_url: str) -> None:
    """`REDIS_CLUSTER=true`: the readings' partitions live on several masters; the worker takes
    them, judges, and the anomaly comes out of the gateway as `alert:event`."""
    env = service_env(
        cluster_url,
        REDIS_CLUSTER="true",
        TELEMETRY_PARTITIONS="8",
        REQUESTS_PER_SECOND="10000",
        REQUEST_BURST="10000",
        LOG_LEVEL="WARNING",
    )
    started = [ServiceProcess(name, env) for name in ("api", "worker", "gateway")]
    for process in started:
        process.start(wait_ready=False)
    sio = socketio.AsyncClient(reconnection=False)
    anomalies: list[dict[str, Any]] = []
    arrived = asyncio.Event()

    @sio.on("alert:event")
    async def on_alert(event: dict[str, Any]) -> None:
        if event["event"] == "telemetry.anomaly":
            anomalies.append(event)
            arrived.set()

    try:
        for process in started:
            process.wait_ready()
        api, gateway = started[0], started[2]
        await sio.connect(gateway.url, socketio_path="/ws/events", transports=["websocket"])
        ack = await sio.call("subscribe", {"droneSerials": DRONES}, timeout=15)
        assert ack["ok"] is True, ack
        async with httpx.AsyncClient(base_url=api.url, timeout=10) as http:
            spike_ids = []
            for drone in DRONES:  # eight drones: their partitions are spread over the masters
                body = series([*steady(40), 500.0, 20.0], "temp", recent(600), drone_serial=drone)
                response = await http.post(DATA, json=body)
                assert response.status_code == 202, response.text
                spike_ids.append(response.json()[40]["id"])
        deadline = time.monotonic() + 30
        while len(anomalies) < len(DRONES) and time.monotonic() < deadline:
            arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(arrived.wait(), 1)
        await asyncio.sleep(0.5)  # anything sent twice would be here by now
        assert sorted(event["data"]["id"] for event in anomalies) == sorted(spike_ids)
        assert {event["serial"] for event in anomalies} == set(DRONES)
    finally:
        await sio.disconnect()
        for process in started:
            process.stop()
