"""Processing tasks (seed 003): creation, the drone's reports, cancellation, and the
transitions the worker makes. Every transition is one compare-and-set with its events."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from enum import Enum
from typing import Any

from shared.auth import Action, Principal, Role
from shared.broker import Broker
from shared.errors import Conflict, Forbidden, InvalidInput, NotFound
from shared.events import EventName, PendingEvent
from shared.logging import get_logger
from shared.models.base import utcnow
from shared.models.task import FINAL, IN_FLIGHT, ProcessingResult, ProcessingTask, TaskStatus
from shared.outbox import drain, outbox_entries
from shared.schemas import time_window
from shared.tasks.repository import (
    NEWEST_FIRST,
    NEXT_FIRST,
    TaskRepository,
    task_repository,
)
from shared.tasks.schemas import ResultReport, StatusReport, TaskCreate, TaskFilters

log = get_logger(__name__)

_MAX_ATTEMPTS = 10
CANCELLED_REASON = "cancelled by the application"

Events = Callable[[ProcessingTask], list[PendingEvent]]


def task_event(name: EventName, task: ProcessingTask, **extra: Any) -> PendingEvent:
    """Envelope data of every task event: the task as it now is, plus what happened."""
    return PendingEvent(name, task.drone_id, {"task": task.public(), **extra})


def status_event(task: ProcessingTask, **extra: Any) -> list[PendingEvent]:
    return [task_event(EventName.TASK_STATUS, task, status=task.status.value, **extra)]


def _stored(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


class TaskService:
    def __init__(self, repository: TaskRepository) -> None:
        self.repository = repository

    # --- transitions ------------------------------------------------------------------------

    async def move(
        self,
        broker: Broker,
        task: ProcessingTask,
        from_statuses: tuple[TaskStatus, ...],
        changes: dict[str, Any],
        events: Events,
    ) -> ProcessingTask | None:
        """Apply `changes` if the task is still in one of `from_statuses` and unchanged since
        read (re-reading on a race). None when it had already moved elsewhere."""
        for _ in range(_MAX_ATTEMPTS):
            if task.status not in from_statuses:
                return None
            after = task.model_copy(update={**changes, "updated_at": utcnow()})
            written = await self.repository.transition(
                task.task_id,
                from_statuses,
                {key: _stored(value) for key, value in changes.items()}
                | {"updated_at": after.updated_at},
                outbox_entries(events(after)),
                extra_match={"version": task.version},
            )
            if written is not None:
                await drain(broker, ProcessingTask, written.id, written.outbox)
                return written
            fresh = await self.repository.get(task.task_id)
            if fresh is None:
                return None
            task = fresh
        raise Conflict(f"task '{task.task_id}' is being changed concurrently; try again")

    async def fail(
        self,
        broker: Broker,
        task: ProcessingTask,
        from_statuses: tuple[TaskStatus, ...],
        reason: str,
    ) -> ProcessingTask | None:
        return await self.move(
            broker,
            task,
            from_statuses,
            {"status": TaskStatus.FAILED, "error_message": reason, "finished_at": utcnow()},
            lambda after: [task_event(EventName.TASK_FAILED, after, reason=reason)],
        )

    async def _state_of(self, task_id: str) -> str:
        current = await self.repository.get(task_id)
        return current.status.value if current else "gone"

    # --- applications -----------------------------------------------------------------------

    async def create(
        self,
        broker: Broker,
        principal: Principal,
        body: TaskCreate,
        default_deadline_seconds: float,
    ) -> ProcessingTask:
        """A task without its own `deadline_seconds` gets `default_deadline_seconds`
        (TASK_DEFAULT_DEADLINE_SECONDS): `deadline_at` is always set."""
        principal.require(Action.MANAGE_TASKS, body.drone_id)
        if principal.role is Role.APPLICATION and body.app_id != principal.sub:
            raise Forbidden(f"an application token for '{principal.sub}' may not act as another")
        now = utcnow()
        task = ProcessingTask(
            task_id=f"task_{uuid.uuid4().hex[:12]}",
            app_id=body.app_id,
            drone_id=body.drone_id,
            task_type=body.task_type,
            input_data=body.input_data,
            priority=body.priority,
            created_at=now,
            updated_at=now,
            deadline_at=now + timedelta(seconds=body.deadline_seconds or default_deadline_seconds),
        )
        task.outbox = outbox_entries([task_event(EventName.TASK_CREATED, task)])
        await self.repository.insert(task)
        await drain(broker, ProcessingTask, task.id, task.outbox)
        log.info("task_created", task_id=task.task_id, drone_id=task.drone_id, app_id=task.app_id)
        return task

    async def get(self, principal: Principal, task_id: str) -> ProcessingTask:
        task = await self.repository.get(task_id)
        if task is None or not principal.may_see(task.drone_id):
            raise NotFound(f"no task '{task_id}'")
        return task

    async def pending_for_drone(
        self, principal: Principal, drone_id: str, limit: int
    ) -> list[ProcessingTask]:
        principal.require(Action.READ, drone_id)
        query = {"drone_id": drone_id, "status": TaskStatus.PENDING.value}
        tasks, _ = await self.repository.find_page(query, limit, 0, NEXT_FIRST)
        return tasks

    async def find(
        self, principal: Principal, filters: TaskFilters, limit: int, offset: int
    ) -> tuple[list[ProcessingTask], int]:
        query: dict[str, Any] = {}
        for field in ("drone_id", "app_id", "task_type"):
            value = getattr(filters, field)
            if value is not None:
                query[field] = value
        if filters.status is not None:
            query["status"] = filters.status.value
        window = time_window(filters.since, filters.until)
        if window:
            query["created_at"] = window
        if principal.drones is not None:
            allowed = sorted(principal.drones)
            if filters.drone_id is not None and filters.drone_id not in principal.drones:
                allowed = []
            query["drone_id"] = {"$in": allowed}
        return await self.repository.find_page(query, limit, offset, NEWEST_FIRST)

    async def cancel(self, broker: Broker, principal: Principal, task_id: str) -> ProcessingTask:
        task = await self.get(principal, task_id)
        principal.require(Action.MANAGE_TASKS, task.drone_id)
        if principal.role is Role.APPLICATION and task.app_id != principal.sub:
            raise Forbidden("only the application that created a task may cancel it")
        cancelled = await self.move(
            broker,
            task,
            (TaskStatus.PENDING, TaskStatus.DISPATCHED),
            {
                "status": TaskStatus.CANCELLED,
                "error_message": CANCELLED_REASON,
                "finished_at": utcnow(),
            },
            lambda after: status_event(
                after, reason=CANCELLED_REASON, was_delivered=after.delivered_to is not None
            ),
        )
        if cancelled is None:
            state = await self._state_of(task_id)
            raise Conflict(f"only a pending or dispatched task can be cancelled; it is {state}")
        log.info("task_cancelled", task_id=task_id, drone_id=task.drone_id)
        return cancelled

    async def result(self, principal: Principal, task_id: str) -> ProcessingResult:
        result = await self.repository.result_of(task_id)
        if result is None or not principal.may_see(result.drone_id):
            raise NotFound(f"no result for task '{task_id}'")
        return result

    async def results_for_drone(
        self, principal: Principal, drone_id: str, limit: int
    ) -> list[ProcessingResult]:
        principal.require(Action.READ, drone_id)
        return await self.repository.results_of_drone(drone_id, limit)

    # --- drones -----------------------------------------------------------------------------

    async def _drone_task(self, drone_id: str, task_id: str) -> ProcessingTask:
        task = await self.repository.get(task_id)
        if task is None or task.drone_id != drone_id:
            raise NotFound(f"no task '{task_id}' for drone '{drone_id}'")
        return task

    async def report_status(
        self, broker: Broker, drone_id: str, report: StatusReport
    ) -> ProcessingTask:
        """The drone acknowledges a task (or reports progress): `processing`, heartbeat now.
        A pending task may be taken too: seed 003 lets drones poll their pending tasks."""
        if report.status is not TaskStatus.PROCESSING:
            raise InvalidInput(
                "a drone reports status 'processing' (with progress in additional_data); "
                "it ends a task with a processing_result"
            )
        task = await self._drone_task(drone_id, report.task_id)
        now = utcnow()
        changes: dict[str, Any] = {"status": TaskStatus.PROCESSING, "last_heartbeat_at": now}
        if task.started_at is None:
            changes["started_at"] = now
        moved = await self.move(
            broker,
            task,
            (TaskStatus.PENDING, *IN_FLIGHT),
            changes,
            lambda after: status_event(after, additional_data=report.additional_data),
        )
        if moved is None:
            state = await self._state_of(report.task_id)
            raise Conflict(f"task '{report.task_id}' is {state}; status update not applied")
        return moved

    async def report_result(
        self, broker: Broker, drone_id: str, report: ResultReport
    ) -> tuple[ProcessingResult, ProcessingTask]:
        """Store the result, and end the task with it. A result for a task that already ended
        (timed out, cancelled) is recorded as late and changes nothing."""
        if report.drone_id is not None and report.drone_id != drone_id:
            raise Forbidden(f"a drone speaks only as itself ('{drone_id}')")
        task = await self._drone_task(drone_id, report.task_id)
        now = utcnow()
        result = ProcessingResult(
            task_id=task.task_id,
            drone_id=drone_id,
            app_id=task.app_id,
            result_data=report.result_data,
            processing_time=report.processing_time,
            success=report.success,
            error_message=report.error_message,
            timestamp=report.timestamp or now,
            received_at=now,
            late=task.status in FINAL,
        )
        if await self.repository.insert_result(result) is None:
            raise Conflict(f"task '{task.task_id}' already has a result")
        if not result.late:
            final = TaskStatus.COMPLETED if report.success else TaskStatus.FAILED
            name = EventName.TASK_COMPLETED if report.success else EventName.TASK_FAILED
            reason = None if report.success else (report.error_message or "the drone failed it")
            ended = await self.move(
                broker,
                task,
                (*IN_FLIGHT, TaskStatus.PENDING),
                {"status": final, "finished_at": now, "error_message": reason},
                lambda after: [
                    task_event(
                        name,
                        after,
                        result=result.public(),
                        **({"reason": reason} if reason else {}),
                    )
                ],
            )
            if ended is not None:
                log.info("task_finished", task_id=task.task_id, status=final.value)
                return result, ended
            result.late = True  # it ended some other way while we were storing the result
            await result.save()
        current = await self.repository.get(task.task_id) or task
        # Recorded, and said so: the application still hears of it, marked late.
        await self.move(
            broker,
            current,
            FINAL,
            {},
            lambda after: status_event(after, late_result=result.public()),
        )
        log.warning("late_result", task_id=task.task_id, status=current.status.value)
        return result, current


task_service = TaskService(task_repository)
