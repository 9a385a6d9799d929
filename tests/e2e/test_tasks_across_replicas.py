"""Processing tasks end to end (seed 003): two api instances and two workers, one real Redis,
one MongoDB (shared embedded engine, or MONGODB_URI). Drones and applications are real
`websockets` clients on different api instances. Timings are printed."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import websockets

from services.api.main import create_app
from services.worker.main import Worker
from services.worker.routing import TaskRouter
from shared.models.task import ProcessingTask
from shared.mongo_embedded import EmbeddedMongoClient
from shared.runtime import Runtime
from tests.conftest import REAL_MONGODB_URI, drop_database, make_settings
from tests.e2e.test_alerts_across_replicas import FAST, serve_together
from tests.fixtures.devices import DeviceClient

pytestmark = pytest.mark.e2e

TASK_TIMEOUTS = {
    "task_ack_timeout_seconds": 0.6,
    "task_heartbeat_timeout_seconds": 0.6,
    "task_max_attempts": 3,
    "worker_sweep_seconds": 0.1,
    "worker_lease_seconds": 0.5,
}


@dataclass
class System:
    api: list[str]
    http: list[httpx.AsyncClient]
    workers: list[Worker]
    settings: Any
    shared_mongo: Any

    def ws(self, replica: int, kind: str, device_id: str) -> str:
        return f"{self.api[replica].replace('http', 'ws', 1)}/ws/{kind}/{device_id}"

    async def create(self, replica: int = 0, **fields: Any) -> str:
        body = {"app_id": "App001", "drone_id": "Drone001", "task_type": "image_analysis",
                "input_data": {"image_url": "https://example.com/image.jpg"}, **fields}  # fmt: skip
        response = await self.http[replica].post("/api/processing-tasks", json=body)
        assert response.status_code == 201, response.text
        return str(response.json()["task_id"])

    async def task(self, task_id: str) -> dict[str, Any]:
        response = await self.http[0].get(f"/api/v1/processing-tasks/{task_id}")
        return dict(response.json())

    async def wait_status(self, task_id: str, status: str, timeout: float = 5) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while (task := await self.task(task_id))["status"] != status:
            assert time.monotonic() < deadline, f"{task_id} is {task['status']}, not {status}"
            await asyncio.sleep(0.02)
        return task

    async def add_worker(self) -> Worker:
        runtime = Runtime.create(self.settings, mongo_client=self.shared_mongo)
        await runtime.start()
        worker = Worker(runtime)
        await worker.start()
        self.workers.append(worker)
        return worker


@pytest.fixture
async def system(bus: tuple[str, bool]) -> AsyncIterator[System]:
    redis_url, cluster = bus
    settings = make_settings(redis_url=redis_url, redis_cluster=cluster, **FAST, **TASK_TIMEOUTS)
    shared_mongo = None if REAL_MONGODB_URI else EmbeddedMongoClient()
    apps = [
        create_app(settings, runtime=Runtime.create(settings, mongo_client=shared_mongo))
        for _ in range(2)
    ]
    async with serve_together(apps) as urls, AsyncExitStack() as stack:
        http = [await stack.enter_async_context(httpx.AsyncClient(base_url=u)) for u in urls]
        system = System(urls, http, [], settings, shared_mongo)
        await system.add_worker()
        yield system
        for worker in system.workers:
            await worker.stop()
            await worker.runtime.stop()
        await drop_database(apps[0].state.runtime)


@pytest.mark.parametrize("bus", ["redis", "cluster"], indirect=True)
async def test_seed_003_examples_work_as_written(system: System) -> None:
    """Seed 003's Step 2 (drone) and Step 3 (application) code, with only the URIs changed."""
    sent_at: list[float] = []
    received_at: list[float] = []

    async def process_image(input_data: dict[str, Any]) -> dict[str, Any]:
        return {"detections": [{"class": "person", "confidence": 0.92}], "seen": input_data}

    async def drone_worker() -> None:
        uri = system.ws(1, "drone", "Drone001")
        async with websockets.connect(uri) as websocket:
            # Wait for processing task
            message = await websocket.recv()
            received_at.append(time.perf_counter())
            data = json.loads(message)

            if data["type"] == "processing_task":
                task_id = data["task_id"]
                task_data = data["task_data"]

                # Process the task
                result = await process_image(task_data["input_data"])

                # Send result back
                result_message = {
                    "type": "processing_result",
                    "data": {
                        "task_id": task_id,
                        "drone_id": "Drone001",
                        "result_data": result,
                        "processing_time": 1.25,
                        "success": True,
                        "timestamp": "2024-01-01T12:00:00Z",
                    },
                }
                await websocket.send(json.dumps(result_message))
                await asyncio.sleep(0.2)  # (the seed's loop ends here; let the send go out)

    results: list[dict[str, Any]] = []

    async def application_worker() -> None:
        uri = system.ws(0, "application", "App001")
        async with websockets.connect(uri) as websocket:
            # Send processing task
            task_message = {
                "type": "processing_task",
                "data": {
                    "app_id": "App001",
                    "drone_id": "Drone001",
                    "task_type": "image_analysis",
                    "input_data": {"image_url": "https://example.com/image.jpg"},
                    "priority": 2,
                },
            }
            await websocket.send(json.dumps(task_message))
            sent_at.append(time.perf_counter())

            # Wait for result
            message = await websocket.recv()
            data = json.loads(message)

            if data["type"] == "processing_result_received":
                result_data = data["result_data"]
                print(f"Received result: {result_data}")
                results.append(data)

    drone = asyncio.create_task(drone_worker())
    await asyncio.sleep(0.3)  # the drone is connected and waiting
    await asyncio.wait_for(asyncio.gather(application_worker(), drone), 10)
    assert results, "the application's first message was not processing_result_received"
    assert results[0]["result_data"]["detections"][0]["class"] == "person"
    assert results[0]["drone_id"] == "Drone001" and results[0]["app_id"] == "App001"
    latency_ms = (received_at[0] - sent_at[0]) * 1000
    print(f"\n[dispatch] application send -> drone receipt: {latency_ms:.1f} ms")
    task = await system.wait_status(results[0]["task_id"], "completed")
    assert task["attempts"] == 1


async def test_rest_created_task_reaches_a_drone_that_connects_later(system: System) -> None:
    task_id = await system.create()
    await asyncio.sleep(0.3)
    assert (await system.task(task_id))["status"] == "pending"  # nobody to give it to
    connected = time.perf_counter()
    drone = await DeviceClient(system.api[1], "drone", "Drone001").connect()
    [message] = await drone.wait_for("processing_task")
    print(
        f"\n[dispatch] drone connect -> task receipt: {(time.perf_counter() - connected) * 1000:.1f} ms"
    )
    assert message["task_id"] == task_id
    assert message["task_data"]["input_data"] == {"image_url": "https://example.com/image.jpg"}
    await drone.close()


async def test_priority_order_one_task_at_a_time(system: System) -> None:
    ids = {p: await system.create(priority=p) for p in (1, 5, 3)}
    drone = await DeviceClient(system.api[1], "drone", "Drone001").connect()
    received: list[str] = []
    for _ in range(3):
        [message] = (await drone.wait_for("processing_task", count=len(received) + 1))[-1:]
        received.append(message["task_id"])
        await asyncio.sleep(0.2)
        assert len(drone.of_type("processing_task")) == len(received)  # in-flight limit 1
        await drone.send({"type": "processing_result",
                          "data": {"task_id": message["task_id"], "result_data": {}}})  # fmt: skip
    assert received == [ids[5], ids[3], ids[1]]
    await drone.close()


async def test_status_updates_reach_the_application_on_another_replica(system: System) -> None:
    app = await DeviceClient(system.api[0], "application", "App001").connect()
    drone = await DeviceClient(system.api[1], "drone", "Drone001").connect()
    task_id = await system.create()
    [task] = await drone.wait_for("processing_task")
    await drone.send({"type": "task_status_update",
                      "data": {"task_id": task_id, "status": "processing",
                               "additional_data": {"progress": 75}}})  # fmt: skip
    [update] = await app.wait_for("task_status_update")
    assert update["status"] == "processing" and update["additional_data"] == {"progress": 75}
    assert update["drone_id"] == "Drone001" and update["task_id"] == task["task_id"]
    await drone.send({"type": "processing_result",
                      "data": {"task_id": task_id, "result_data": {}, "success": False,
                               "error_message": "Invalid image format"}})  # fmt: skip
    [result] = await app.wait_for("processing_result_received")
    assert result["success"] is False and result["error_message"] == "Invalid image format"
    failed = await system.wait_status(task_id, "failed")
    assert failed["error_message"] == "Invalid image format"
    await app.close()
    await drone.close()


async def test_drone_gone_mid_task_fails_it_and_a_late_result_changes_nothing(
    system: System,
) -> None:
    app = await DeviceClient(system.api[0], "application", "App001").connect()
    drone = await DeviceClient(system.api[1], "drone", "Drone001").connect()
    task_id = await system.create()
    await drone.wait_for("processing_task")
    await drone.send({"type": "task_status_update", "data": {"task_id": task_id}})
    await drone.close()  # gone mid-task: no more heartbeats
    failed = await system.wait_status(task_id, "failed")
    assert "no status update" in failed["error_message"]
    [update] = [
        u for u in await app.wait_for("task_status_update", count=2) if u["status"] == "failed"
    ]
    assert "no status update" in update["additional_data"]["reason"]
    back = await DeviceClient(system.api[0], "drone", "Drone001").connect()
    ack = await back.request({"type": "processing_result",
                              "data": {"task_id": task_id, "result_data": {"done": 1}}})  # fmt: skip
    assert ack["type"] == "ack" and ack["late"] is True and ack["status"] == "failed"
    [late] = await app.wait_for("processing_result_received")
    assert late["late"] is True and late["result_data"] == {"done": 1}
    assert (await system.task(task_id))["status"] == "failed"
    await app.close()
    await back.close()


async def test_an_unacknowledged_task_is_dispatched_again(system: System) -> None:
    task_id = await system.create()
    first = await DeviceClient(system.api[1], "drone", "Drone001").connect()
    await first.wait_for("processing_task")
    await first.close()  # it never acknowledged
    second = await DeviceClient(system.api[0], "drone", "Drone001").connect()
    [again] = await second.wait_for("processing_task", timeout=5)
    assert again["task_id"] == task_id
    assert (await system.task(task_id))["attempts"] == 2
    await second.close()


async def test_cancel_tells_the_drone(system: System) -> None:
    drone = await DeviceClient(system.api[1], "drone", "Drone001").connect()
    task_id = await system.create()
    await drone.wait_for("processing_task")
    cancelled = await system.http[0].post(f"/api/v1/processing-tasks/{task_id}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    [notice] = await drone.wait_for("task_cancelled")
    assert notice["task_id"] == task_id
    await drone.close()


async def test_two_workers_race_and_nothing_is_dispatched_twice(system: System) -> None:
    await system.add_worker()
    ids = [await system.create() for _ in range(8)]
    drone = await DeviceClient(system.api[1], "drone", "Drone001").connect()
    for n in range(8):
        message = (await drone.wait_for("processing_task", count=n + 1))[-1]
        await drone.send({"type": "processing_result",
                          "data": {"task_id": message["task_id"], "result_data": {}}})  # fmt: skip
    await asyncio.sleep(0.3)
    received = [m["task_id"] for m in drone.of_type("processing_task")]
    assert sorted(received) == sorted(ids)  # each once
    for task_id in ids:
        assert (await system.task(task_id))["attempts"] == 1
    await drone.close()


async def test_a_worker_that_died_holding_a_lease_loses_nothing(system: System) -> None:
    for worker in system.workers:
        await worker.stop()
    system.workers.clear()
    dead = TaskRouter(Runtime.create(system.settings).broker, system.settings, "killed-worker")
    task_id = await system.create()
    drone = await DeviceClient(system.api[1], "drone", "Drone001").connect()
    assert await dead.acquire("Drone001")  # it holds the drone's lease, then is killed
    survivor = await system.add_worker()
    [message] = await drone.wait_for("processing_task", timeout=5)  # after the lease lapsed
    assert message["task_id"] == task_id
    assert (await ProcessingTask.find_one({"task_id": task_id})).dispatched_by == survivor.id  # type: ignore[union-attr]
    await drone.close()
