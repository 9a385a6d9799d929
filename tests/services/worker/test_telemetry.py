"""Telemetry consumers on a real Redis and one database (the shared embedded engine, or
MONGODB_URI): a batch redone after a crash is stored once and alerted once, and a partition that
moves to another consumer keeps its detectors' state (checkpoint) and its pending entries."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from services.worker import telemetry as consumers
from services.worker.telemetry import TelemetryConsumers
from shared.auth import ANONYMOUS_ADMIN
from shared.channels import TELEMETRY_MEMBERS
from shared.models import TelemetryAlert, TelemetryReading
from shared.mongo_embedded import EmbeddedMongoClient
from shared.runtime import Runtime
from shared.settings import Settings
from shared.telemetry.schemas import ReadingIn
from shared.telemetry.service import telemetry_service
from tests.conftest import REAL_MONGODB_URI, drop_database, make_settings
from tests.fixtures.events import EventRecorder, record_all
from tests.fixtures.telemetry import series, steady


@dataclass
class Bus:
    settings: Settings
    mongo: Any
    runtimes: list[Runtime]

    async def runtime(self) -> Runtime:
        runtime = Runtime.create(self.settings, mongo_client=self.mongo)
        await runtime.start()
        self.runtimes.append(runtime)
        return runtime

    async def consumer(self, name: str) -> TelemetryConsumers:
        runtime = await self.runtime()
        started = TelemetryConsumers(runtime.broker, self.settings, name)
        await started.start()
        return started

    async def send(self, body: list[dict[str, Any]]) -> list[dict[str, Any]]:
        readings = [ReadingIn.model_validate(item) for item in body]
        return await telemetry_service.ingest(
            self.runtimes[0].broker, self.settings, ANONYMOUS_ADMIN, readings
        )

    async def settle(self, owner: TelemetryConsumers, timeout: float = 10.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while await owner.backlog():
            assert asyncio.get_running_loop().time() < deadline, "the consumers did not catch up"
            await asyncio.sleep(0.02)


@pytest.fixture
async def bus(redis_url: str) -> AsyncIterator[Bus]:
    settings = make_settings(
        redis_url=redis_url, telemetry_partitions=4, telemetry_lease_seconds=0.6
    )
    bus = Bus(settings, None if REAL_MONGODB_URI else EmbeddedMongoClient(), [])
    await bus.runtime()  # the api's
    yield bus
    await drop_database(bus.runtimes[0])
    for runtime in bus.runtimes:
        await runtime.stop()


@pytest.fixture
def crash_once() -> Iterator[list[int]]:
    """The first batch of each partition dies after it was stored, before it was committed."""
    crashed: list[int] = []

    def crash(partition: int) -> None:
        if partition not in crashed:
            crashed.append(partition)
            raise RuntimeError("consumer died before its commit")

    consumers.crash_point = crash
    yield crashed
    consumers.crash_point = None


async def test_a_batch_redone_after_a_crash_is_stored_once_and_alerted_once(
    bus: Bus, crash_once: list[int]
) -> None:
    events: EventRecorder = await record_all(bus.runtimes[0].broker)
    owner = await bus.consumer("w1")
    accepted = await bus.send(series([*steady(40), 500.0, 20.0], drone_serial="SN1"))
    await bus.settle(owner)
    assert crash_once  # it did die once, and redid the batch
    assert await TelemetryReading.count() == len(accepted) == 42
    [alert] = await TelemetryAlert.find_all().to_list()
    assert str(alert.id) == accepted[40]["id"]
    await asyncio.sleep(0.2)
    assert [e["data"]["id"] for e in events.events] == [accepted[40]["id"]]  # published once
    await owner.stop()


async def test_a_partition_that_moves_keeps_its_detector_state(bus: Bus) -> None:
    readings = series([*steady(40), 500.0, 20.0], drone_serial="SN1")
    first = await bus.consumer("w1")
    await bus.send(readings[:40])
    await bus.settle(first)
    await first.stop()  # lets its partitions go, state checkpointed
    second = await bus.consumer("w2")
    assert second.owned  # took them over
    # Fresh detectors need 30 readings before any verdict: this spike is caught only because
    # the state came along with the partition.
    await bus.send(readings[40:])
    await bus.settle(second)
    [alert] = await TelemetryAlert.find_all().to_list()
    assert alert.value == 500.0 and alert.kind == "jump"
    await second.stop()


async def test_a_stopped_consumers_pending_entries_are_claimed_by_another(bus: Bus) -> None:
    events: EventRecorder = await record_all(bus.runtimes[0].broker)
    stuck = asyncio.Event()

    def hang(partition: int) -> None:
        stuck.set()
        raise asyncio.CancelledError  # the task ends here, stored but not committed

    first = await bus.consumer("w1")
    consumers.crash_point = hang
    try:
        accepted = await bus.send(series([*steady(40), 500.0, 20.0], drone_serial="SN7"))
        await asyncio.wait_for(stuck.wait(), 5)
    finally:
        consumers.crash_point = None
    # w1 stops beating; its partition's entries stay pending under its name.
    if first._task is not None:
        first._task.cancel()
    second = await bus.consumer("w2")
    await bus.settle(second, timeout=15)
    assert await TelemetryReading.count() == 42  # w1 had stored them; w2 redid: once each
    [alert] = await TelemetryAlert.find_all().to_list()
    assert str(alert.id) == accepted[40]["id"]
    await asyncio.sleep(0.2)
    assert [e["data"]["id"] for e in events.events] == [accepted[40]["id"]]
    await second.stop()
    await first.stop()


async def test_a_worker_stopped_while_it_hands_partitions_over_stops(bus: Bus) -> None:
    """A rebalance waits for the partitions it gives up to finish their batch; if the worker
    is told to stop meanwhile, the rebalance ends there (it used to swallow the cancellation,
    carry on, and keep the worker's shutdown waiting for it forever)."""
    owner = await bus.consumer("w1")
    assert len(owner.owned) == 4  # alone: every partition
    # Another worker announces itself: w1's fair share is now 2 of the 4.
    await bus.runtimes[0].broker.streams.heartbeat(TELEMETRY_MEMBERS, "w2", 60_000)
    handing_over = asyncio.create_task(owner.balance())
    await asyncio.sleep(0.05)  # it is waiting for a partition to finish its blocking read
    assert not handing_over.done()
    handing_over.cancel()
    await asyncio.wait({handing_over}, timeout=5)
    assert handing_over.cancelled()
    await asyncio.wait_for(owner.stop(), 5)
