"""A short soak: `dronecast simulate` drives the product running as separate processes on a
real Redis, while Socket.IO clients (the Python client) listen on two gateways.

It checks what a user of the product relies on:
- every event the simulated fleet caused (the retention stream is the record of all of them)
  reached every client subscribed to it exactly once, and each drone's events in order;
- every task the fleet was given ended in a final state, and every alert was completed;
- no process logged an error.

The api and the worker are separate processes when MONGODB_URI names a real MongoDB. Without
one, they run together in `dronecast dev` (with REDIS_URL set, so on the same Redis as the
gateways): the embedded store lives inside one process and cannot be shared by two.
A longer run with its figures: `python bench/soak.py`.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis.asyncio as aioredis
from dronecast_client import AsyncClient, AsyncEventsClient, Event

from shared.channels import EVENT_STREAM
from tests.conftest import REAL_MONGODB_URI
from tests.e2e.conftest import running, service_env
from tests.fixtures.servers import REPO, ServiceProcess

pytestmark = pytest.mark.e2e

DRONES = 20
DURATION = 55
WATCHED = ["SIM11-002", "SIM11-007", "SIM11-019"]
SETTINGS = {
    "PRESENCE_GRACE_SECONDS": "0.5",  # drones go offline soon after the simulation ends
    "PRESENCE_CHECK_INTERVAL": "0.2",
}


@dataclass
class Listener:
    """An events client and everything it received, in the order received."""

    name: str
    client: AsyncEventsClient
    events: list[Event] = field(default_factory=list)
    notices: list[Any] = field(default_factory=list)

    async def collect(self) -> None:
        async for item in self.client:
            (self.events if isinstance(item, Event) else self.notices).append(item)


def error_lines(process: ServiceProcess) -> list[str]:
    lines = []
    for line in process.logs().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            if line.startswith(("Traceback", "ERROR")):
                lines.append(line)
            continue
        if isinstance(entry, dict) and entry.get("level") in ("error", "critical"):
            lines.append(line)
    return lines


@pytest.fixture
def processes(redis_url: str) -> Iterator[dict[str, ServiceProcess]]:
    env = service_env(redis_url, **SETTINGS)
    if REAL_MONGODB_URI:
        core = {"api": ServiceProcess("api", env), "worker": ServiceProcess("worker", env)}
    else:
        core = {"api": ServiceProcess("dev", env)}  # api + worker; its own gateway is unused
    gateways = {f"gateway-{n}": ServiceProcess("gateway", env) for n in (1, 2)}
    with running({**core, **gateways}) as everything:
        yield everything


async def stream_record(redis_url: str) -> list[tuple[str, str]]:
    """(id, serial) of every event published, oldest first."""
    client = aioredis.from_url(redis_url)
    try:
        entries = await client.xrange(EVENT_STREAM, "-", "+")
    finally:
        await client.aclose()
    return [(raw_id.decode(), fields[b"s"].decode()) for raw_id, fields in entries]


async def test_a_simulated_fleet_reaches_every_subscriber_once_and_in_order(
    processes: dict[str, ServiceProcess], redis_url: str
) -> None:
    gateways = [processes["gateway-1"].url, processes["gateway-2"].url]
    api_url = processes["api"].url
    async with AsyncExitStack() as stack:
        listeners: list[Listener] = []
        for index, url in enumerate(gateways, start=1):
            for scope in ("all", "watched"):
                client = await stack.enter_async_context(AsyncEventsClient(url))
                if scope == "all":
                    await client.subscribe(all=True)
                else:
                    await client.subscribe(serials=WATCHED)
                listeners.append(Listener(f"gateway-{index}/{scope}", client))
        collectors = [asyncio.create_task(listener.collect()) for listener in listeners]

        started = time.monotonic()
        simulate = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.cli", "simulate", "--api", api_url,
            "--drones", str(DRONES), "--duration", str(DURATION), "--seed", "11",
            "--drain", "15", "--json",
            cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        stdout, stderr = await asyncio.wait_for(simulate.communicate(), DURATION + 40)
        print(f"\nsimulate: {time.monotonic() - started:.1f}s\n{stderr.decode().strip()}")
        assert simulate.returncode == 0, stderr.decode()
        summary = json.loads(stdout)

        # Let the last events (drones going offline) arrive, then compare with the record.
        deadline = time.monotonic() + 15
        while True:
            record = await stream_record(redis_url)
            everyone = all(
                len(each.events) >= len(record) for each in listeners if each.name.endswith("/all")
            )
            if (
                everyone and time.monotonic() > started + DURATION + 3
            ) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        await asyncio.sleep(1.0)  # anything extra (a duplicate) would have come by now
        record = await stream_record(redis_url)
        for collector in collectors:
            collector.cancel()

        async with AsyncClient(api_url) as api:
            tasks = (await api.list_tasks(limit=500)).items
            alerts = (await api.list_alerts(limit=500)).items

    counters = summary["counters"]
    print(f"events {len(record)} · tasks {len(tasks)} · alerts {len(alerts)} · {counters}")
    assert counters["alerts"] > 5 and counters["tasks"] > 5 and counters["errors"] == 0, counters
    assert {serial for _, serial in record} >= set(summary["drones"])

    for listener in listeners:
        wanted = [
            event_id
            for event_id, serial in record
            if listener.name.endswith("/all") or serial in WATCHED
        ]
        got = [event.id for event in listener.events]
        assert len(got) == len(set(got)), f"{listener.name} got duplicates"
        assert sorted(got) == sorted(wanted), (
            f"{listener.name}: missing {sorted(set(wanted) - set(got))[:5]}, "
            f"unexpected {sorted(set(got) - set(wanted))[:5]}"
        )
        by_drone: dict[str, list[str]] = defaultdict(list)
        for event in listener.events:
            by_drone[event.serial or ""].append(event.id)
        for serial, ids in by_drone.items():
            assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-")))), (
                f"{listener.name}: {serial}'s events out of order"
            )
        assert not listener.notices, f"{listener.name}: {listener.notices}"

    assert len(tasks) == counters["tasks"] and sorted(t.task_id for t in tasks) == sorted(
        summary["tasks"]
    )
    assert [t.task_id for t in tasks if not t.final] == []
    assert [a.alert_id for a in alerts if a.status != "completed"] == []
    for name, process in processes.items():
        assert error_lines(process) == [], f"{name} logged errors"
