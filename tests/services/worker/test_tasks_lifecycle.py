"""Task routing and every timeout, on the real services and store (embedded MongoDB engine, or
MONGODB_URI), with short settings. Drones come online through the real presence service."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from services.worker import metrics
from services.worker.routing import TaskRouter
from services.worker.timeouts import TimeoutSweeper
from shared.auth import ANONYMOUS_ADMIN
from shared.devices.service import presence_service
from shared.errors import Conflict
from shared.models.task import ProcessingTask, TaskStatus
from shared.runtime import Runtime
from shared.tasks.repository import task_repository
from shared.tasks.schemas import ResultReport, StatusReport, TaskCreate
from shared.tasks.service import task_service
from tests.conftest import drop_database, make_settings
from tests.fixtures.events import EventRecorder, record_all


@pytest.fixture
async def runtime() -> AsyncIterator[Runtime]:
    settings = make_settings(
        task_in_flight_per_drone=1,
        task_ack_timeout_seconds=0.2,
        task_max_attempts=2,
        task_heartbeat_timeout_seconds=0.3,
        worker_lease_seconds=0.3,
    )
    rt = Runtime.create(settings)
    await rt.start()
    yield rt
    await drop_database(rt)
    await rt.stop()


async def create(rt: Runtime, drone: str = "D1", priority: int = 3, **extra: Any) -> ProcessingTask:
    body = TaskCreate(
        app_id="App001", drone_id=drone, task_type="image_analysis", priority=priority, **extra
    )
    return await task_service.create(
        rt.broker, ANONYMOUS_ADMIN, body, rt.settings.task_default_deadline_seconds
    )


async def online(rt: Runtime, drone: str = "D1") -> None:
    await presence_service.connected(rt.broker, drone, f"session-{drone}", 30)


async def finish(rt: Runtime, task: ProcessingTask) -> None:
    await task_service.report_status(rt.broker, task.drone_id, StatusReport(task_id=task.task_id))
    await task_service.report_result(
        rt.broker, task.drone_id, ResultReport(task_id=task.task_id, result_data={"ok": 1})
    )


async def status_of(task: ProcessingTask) -> TaskStatus:
    fresh = await ProcessingTask.find_one({"task_id": task.task_id})
    assert fresh is not None
    return fresh.status


async def test_highest_priority_first_then_oldest(runtime: Runtime) -> None:
    low = await create(runtime, priority=1)
    first_urgent = await create(runtime, priority=5)
    high = await create(runtime, priority=3)
    second_urgent = await create(runtime, priority=5)
    await online(runtime)
    router = TaskRouter(runtime.broker, runtime.settings, "w1")
    order = []
    for _ in range(4):
        [task] = await router.dispatch_next_tasks("D1")  # in-flight limit 1
        order.append(task.task_id)
        await finish(runtime, task)
    assert order == [t.task_id for t in (first_urgent, second_urgent, high, low)]


async def test_in_flight_limit_holds(runtime: Runtime) -> None:
    runtime.settings.task_in_flight_per_drone = 2
    tasks = [await create(runtime) for _ in range(5)]
    await online(runtime)
    router = TaskRouter(runtime.broker, runtime.settings, "w1")
    assert len(await router.dispatch_next_tasks("D1")) == 2
    assert await router.dispatch_next_tasks("D1") == []
    await finish(runtime, tasks[0])
    assert [t.task_id for t in await router.dispatch_next_tasks("D1")] == [tasks[2].task_id]


async def test_a_drone_that_is_not_connected_keeps_its_tasks_pending(runtime: Runtime) -> None:
    task = await create(runtime)
    router = TaskRouter(runtime.broker, runtime.settings, "w1")
    assert await router.route_everyone() == 0
    assert await status_of(task) is TaskStatus.PENDING
    await online(runtime)
    assert await router.route_everyone() == 1
    assert await status_of(task) is TaskStatus.DISPATCHED


async def test_racing_workers_never_dispatch_twice_or_past_the_limit(runtime: Runtime) -> None:
    """Four routers, three calls each, per round. (The embedded engine never suspends inside a
    call, so the interleaving that a real MongoDB allows is pinned down by the two tests after
    this one: the routing lease, and the claim's compare-and-set.)"""
    tasks = [await create(runtime) for _ in range(12)]
    await online(runtime)
    routers = [TaskRouter(runtime.broker, runtime.settings, f"w{n}") for n in range(4)]
    events: EventRecorder = await record_all(runtime.broker)
    for _ in range(len(tasks)):
        rounds = await asyncio.gather(*(r.dispatch_next_tasks("D1") for r in routers * 3))
        dispatched = [task for round_ in rounds for task in round_]
        assert len(dispatched) <= 1  # the in-flight limit, whoever won
        in_flight = await ProcessingTask.find(
            {"status": {"$in": ["dispatched", "processing"]}}
        ).count()
        assert in_flight == 1
        current = await ProcessingTask.find_one({"status": "dispatched"})
        assert current is not None
        await finish(runtime, current)
    dispatches = [e for e in events.events if e["event"] == "task.dispatched"]
    assert sorted(e["data"]["task"]["task_id"] for e in dispatches) == sorted(
        t.task_id for t in tasks
    )  # each exactly once


async def test_two_claims_from_the_same_read_cannot_both_win(runtime: Runtime) -> None:
    task = await create(runtime)
    seen_by_both = await task_repository.get(task.task_id)
    assert seen_by_both is not None
    changes = {"status": TaskStatus.DISPATCHED.value, "dispatched_by": "w"}
    claims = [
        await task_repository.transition(
            task.task_id,
            (TaskStatus.PENDING,),
            {**changes, "dispatched_by": worker},
            [],
            extra_match={"version": seen_by_both.version},
        )
        for worker in ("w1", "w2")
    ]
    assert claims[0] is not None and claims[0].dispatched_by == "w1"
    assert claims[1] is None  # the second worker lost: the task is dispatched once


async def test_a_dead_workers_lease_lapses_and_another_takes_over(runtime: Runtime) -> None:
    await create(runtime)
    await online(runtime)
    dead = TaskRouter(runtime.broker, runtime.settings, "dead")
    assert await dead.acquire("D1")  # ...and never releases: it was killed
    survivor = TaskRouter(runtime.broker, runtime.settings, "alive")
    assert await survivor.dispatch_next_tasks("D1") == []
    await asyncio.sleep(0.35)  # worker_lease_seconds
    assert len(await survivor.dispatch_next_tasks("D1")) == 1


async def test_unacknowledged_dispatch_goes_back_then_fails(runtime: Runtime) -> None:
    task = await create(runtime)
    await online(runtime)
    router = TaskRouter(runtime.broker, runtime.settings, "w1")
    sweeper = TimeoutSweeper(runtime.broker, runtime.settings)
    retries_before = metrics.RETRIES._value.get()
    dispatches_before = metrics.DISPATCHES._value.get()
    await router.dispatch_next_tasks("D1")
    await asyncio.sleep(0.25)
    assert await sweeper.sweep() == {"D1"}
    assert metrics.RETRIES._value.get() == retries_before + 1
    assert metrics.DISPATCHES._value.get() == dispatches_before + 1
    assert await status_of(task) is TaskStatus.PENDING
    await router.dispatch_next_tasks("D1")  # attempt 2 of 2
    await asyncio.sleep(0.25)
    assert await sweeper.sweep() == set()
    failed = await ProcessingTask.find_one({"task_id": task.task_id})
    assert failed is not None and failed.status is TaskStatus.FAILED
    assert failed.error_message == "not acknowledged by the drone after 2 dispatches"
    await sweeper.count_by_status()
    assert metrics.TASKS.labels("failed")._value.get() == 1


async def test_processing_without_heartbeat_fails_and_a_late_result_changes_nothing(
    runtime: Runtime,
) -> None:
    task = await create(runtime)
    await online(runtime)
    await TaskRouter(runtime.broker, runtime.settings, "w1").dispatch_next_tasks("D1")
    await task_service.report_status(runtime.broker, "D1", StatusReport(task_id=task.task_id))
    await asyncio.sleep(0.2)
    # A progress update is a heartbeat: it keeps the task alive.
    await task_service.report_status(
        runtime.broker,
        "D1",
        StatusReport(task_id=task.task_id, additional_data={"progress": 50}),
    )
    sweeper = TimeoutSweeper(runtime.broker, runtime.settings)
    await sweeper.sweep()
    assert await status_of(task) is TaskStatus.PROCESSING
    await asyncio.sleep(0.35)
    await sweeper.sweep()
    failed = await ProcessingTask.find_one({"task_id": task.task_id})
    assert failed is not None and failed.status is TaskStatus.FAILED
    assert "no status update" in (failed.error_message or "")
    events: EventRecorder = await record_all(runtime.broker)
    result, after = await task_service.report_result(
        runtime.broker, "D1", ResultReport(task_id=task.task_id, result_data={"late": True})
    )
    assert result.late is True
    assert after.status is TaskStatus.FAILED  # not resurrected
    stored = await task_service.result(ANONYMOUS_ADMIN, task.task_id)
    assert stored.late is True and stored.result_data == {"late": True}
    [event] = await events.wait_for(1)
    assert event["data"]["late_result"]["task_id"] == task.task_id


async def test_pending_past_its_deadline_fails(runtime: Runtime) -> None:
    task = await create(runtime, deadline_seconds=0.1)
    await asyncio.sleep(0.15)
    await TimeoutSweeper(runtime.broker, runtime.settings).sweep()
    failed = await ProcessingTask.find_one({"task_id": task.task_id})
    assert failed is not None and failed.status is TaskStatus.FAILED
    assert failed.error_message == "still pending at its deadline"


async def test_without_its_own_deadline_the_default_applies(runtime: Runtime) -> None:
    runtime.settings.task_default_deadline_seconds = 0.1
    task = await create(runtime)
    assert task.deadline_at == task.created_at + timedelta(seconds=0.1)
    await asyncio.sleep(0.15)
    await TimeoutSweeper(runtime.broker, runtime.settings).sweep()
    assert await status_of(task) is TaskStatus.FAILED


async def test_cancel_only_while_pending_or_dispatched(runtime: Runtime) -> None:
    pending = await create(runtime)
    cancelled = await task_service.cancel(runtime.broker, ANONYMOUS_ADMIN, pending.task_id)
    assert cancelled.status is TaskStatus.CANCELLED
    running = await create(runtime)
    await online(runtime)
    await TaskRouter(runtime.broker, runtime.settings, "w1").dispatch_next_tasks("D1")
    await task_service.report_status(runtime.broker, "D1", StatusReport(task_id=running.task_id))
    with pytest.raises(Conflict):
        await task_service.cancel(runtime.broker, ANONYMOUS_ADMIN, running.task_id)
    with pytest.raises(Conflict):
        await task_service.cancel(runtime.broker, ANONYMOUS_ADMIN, pending.task_id)
