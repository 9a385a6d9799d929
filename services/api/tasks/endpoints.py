"""Processing tasks and results over REST (seed 003): `/api/v1/processing-…` and the seed's own
`/api/processing-…` paths, served by the same handlers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from services.api.deps import BrokerDep, PageDep, SettingsDep
from services.api.security import CanManageTasks, CanRead
from shared.drones.schemas import SERIAL_PATTERN
from shared.models.task import TaskStatus
from shared.schemas import UtcDatetime
from shared.tasks.schemas import (
    ResultList,
    ResultOut,
    TaskCreate,
    TaskCreated,
    TaskFilters,
    TaskList,
    TaskOut,
)
from shared.tasks.service import task_service

_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such task or result (or not one the token may see)"},
    409: {"description": "The task is not in a state that allows this"},
}
DroneId = Annotated[str, Query(pattern=SERIAL_PATTERN)]


async def create_task(
    body: TaskCreate, broker: BrokerDep, settings: SettingsDep, principal: CanManageTasks
) -> dict[str, Any]:
    """Create a task for a drone. It waits as `pending` until the drone is connected; the worker
    then dispatches it (highest priority first, oldest first within a priority). Still pending
    at `deadline_at` (`deadline_seconds`, default TASK_DEFAULT_DEADLINE_SECONDS), it fails."""
    task = await task_service.create(
        broker, principal, body, settings.task_default_deadline_seconds
    )
    return {
        "task_id": task.task_id,
        "message": "Processing task created successfully",
        "task": task.public(),
    }


async def list_tasks(
    page: PageDep,
    principal: CanRead,
    drone_id: Annotated[str | None, Query(pattern=SERIAL_PATTERN)] = None,
    app_id: Annotated[str | None, Query(max_length=64)] = None,
    status: TaskStatus | None = None,
    task_type: Annotated[str | None, Query(max_length=100)] = None,
    since: Annotated[
        UtcDatetime | None, Query(description="created_at >= since (ISO 8601)")
    ] = None,
    until: Annotated[
        UtcDatetime | None, Query(description="created_at <= until (ISO 8601)")
    ] = None,
) -> dict[str, Any]:
    """Tasks, newest first, filtered by drone, application, status, type and time."""
    filters = TaskFilters(
        drone_id=drone_id,
        app_id=app_id,
        status=status,
        task_type=task_type,
        since=since,
        until=until,
    )
    tasks, total = await task_service.find(principal, filters, page.limit, page.offset)
    return page.body("tasks", [task.public() for task in tasks], total)


async def get_task(task_id: str, principal: CanRead) -> dict[str, Any]:
    return (await task_service.get(principal, task_id)).public()


async def pending_tasks_of_drone(
    drone_id: str,
    principal: CanRead,
    limit: Annotated[int, Query(ge=1, le=500)] = 10,
) -> dict[str, Any]:
    """A drone's pending tasks in the order they will be dispatched."""
    tasks = await task_service.pending_for_drone(principal, drone_id, limit)
    return {"tasks": [task.public() for task in tasks], "count": len(tasks), "drone_id": drone_id}


async def cancel_task(task_id: str, broker: BrokerDep, principal: CanManageTasks) -> dict[str, Any]:
    """Cancel a pending or dispatched task (409 otherwise). A drone that was sent it receives
    `{"type": "task_cancelled", "task_id", ...}`."""
    return (await task_service.cancel(broker, principal, task_id)).public()


async def get_result(task_id: str, principal: CanRead) -> dict[str, Any]:
    return (await task_service.result(principal, task_id)).public()


async def results_of_drone(
    drone_id: str,
    principal: CanRead,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """A drone's results, newest first."""
    results = await task_service.results_for_drone(principal, drone_id, limit)
    return {
        "results": [result.public() for result in results],
        "count": len(results),
        "drone_id": drone_id,
    }


def _task_router(prefix: str, in_schema: bool) -> APIRouter:
    router = APIRouter(prefix=prefix, include_in_schema=in_schema)
    tasks = "processing tasks" if in_schema else "processing tasks (seed 003 paths)"
    add = router.add_api_route
    add("/processing-tasks", create_task, methods=["POST"], status_code=201,
        response_model=TaskCreated, responses=_ERRORS, tags=[tasks])  # fmt: skip
    add("/processing-tasks", list_tasks, methods=["GET"], response_model=TaskList, tags=[tasks])
    add("/processing-tasks/drone/{drone_id}/pending", pending_tasks_of_drone, methods=["GET"],
        response_model=TaskList, responses=_ERRORS, tags=[tasks])  # fmt: skip
    add("/processing-tasks/{task_id}", get_task, methods=["GET"], response_model=TaskOut,
        responses=_ERRORS, tags=[tasks])  # fmt: skip
    add("/processing-tasks/{task_id}/cancel", cancel_task, methods=["POST"],
        response_model=TaskOut, responses=_ERRORS, tags=[tasks])  # fmt: skip
    add("/processing-results/drone/{drone_id}", results_of_drone, methods=["GET"],
        response_model=ResultList, responses=_ERRORS, tags=[tasks])  # fmt: skip
    add("/processing-results/{task_id}", get_result, methods=["GET"], response_model=ResultOut,
        responses=_ERRORS, tags=[tasks])  # fmt: skip
    return router


router = _task_router("/api/v1", in_schema=True)
# Seed 003's paths, same handlers; left out of /docs so each operation is described once.
seed_router = _task_router("/api", in_schema=False)
