"""Every task timeout, enforced by whichever worker sweeps first (transitions are
compare-and-set, so two sweeping workers cannot both act on one task):

- dispatched, not acknowledged within TASK_ACK_TIMEOUT_SECONDS: back to `pending` (the drone
  may have missed it), or `failed` after TASK_MAX_ATTEMPTS dispatches;
- processing, no status update within TASK_HEARTBEAT_TIMEOUT_SECONDS: `failed`;
- pending past its deadline: `failed`.

Nothing can stay `dispatched` or `processing` forever: a drone or worker that dies leaves its
tasks to these clocks.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from services.worker import metrics
from shared.broker import Broker
from shared.logging import get_logger
from shared.models.base import utcnow
from shared.models.task import ProcessingTask, TaskStatus
from shared.settings import Settings
from shared.tasks.repository import TaskRepository, task_repository
from shared.tasks.service import TaskService, status_event, task_service

log = get_logger(__name__)


class TimeoutSweeper:
    def __init__(
        self,
        broker: Broker,
        settings: Settings,
        service: TaskService = task_service,
        repository: TaskRepository = task_repository,
    ) -> None:
        self.broker = broker
        self.settings = settings
        self.service = service
        self.repository = repository

    async def sweep(self) -> set[str]:
        """Apply every due timeout. Returns the drones whose tasks went back in the queue."""
        now = utcnow()
        requeued: set[str] = set()
        ack_cutoff = now - timedelta(seconds=self.settings.task_ack_timeout_seconds)
        for task_id in await self.repository.find_ids(
            {"status": TaskStatus.DISPATCHED.value, "dispatched_at": {"$lt": ack_cutoff}}
        ):
            task = await self.repository.get(task_id)
            if task is None or task.dispatched_at is None or task.dispatched_at >= ack_cutoff:
                continue  # acknowledged or re-dispatched since it was listed
            if await self._unacknowledged(task):
                requeued.add(task.drone_id)
        heartbeat_cutoff = now - timedelta(seconds=self.settings.task_heartbeat_timeout_seconds)
        for task_id in await self.repository.find_ids(
            {"status": TaskStatus.PROCESSING.value, "last_heartbeat_at": {"$lt": heartbeat_cutoff}}
        ):
            await self._expire(
                task_id,
                TaskStatus.PROCESSING,
                "heartbeat",
                f"no status update from the drone for "
                f"{self.settings.task_heartbeat_timeout_seconds:g}s",
                lambda task: (
                    task.last_heartbeat_at is not None and task.last_heartbeat_at < heartbeat_cutoff
                ),
            )
        default_cutoff = now - timedelta(seconds=self.settings.task_default_deadline_seconds)

        def past_deadline(task: ProcessingTask) -> bool:
            if task.deadline_at is not None:
                return task.deadline_at < now
            return task.created_at < default_cutoff

        for task_id in await self.repository.find_ids(
            {
                "status": TaskStatus.PENDING.value,
                "$or": [
                    {"deadline_at": {"$lt": now}},
                    {"deadline_at": None, "created_at": {"$lt": default_cutoff}},
                ],
            }
        ):
            await self._expire(
                task_id,
                TaskStatus.PENDING,
                "deadline",
                "still pending at its deadline",
                past_deadline,
            )
        return requeued

    async def _unacknowledged(self, task: ProcessingTask) -> bool:
        if task.attempts >= self.settings.task_max_attempts:
            await self._expire(
                task.task_id,
                TaskStatus.DISPATCHED,
                "ack",
                f"not acknowledged by the drone after {task.attempts} dispatches",
                lambda fresh: fresh.attempts == task.attempts,
            )
            return False
        reason = (
            f"not acknowledged within {self.settings.task_ack_timeout_seconds:g}s; "
            "back in the queue"
        )
        moved = await self.service.move(
            self.broker,
            task,
            (TaskStatus.DISPATCHED,),
            {
                "status": TaskStatus.PENDING,
                "dispatched_at": None,
                "dispatched_by": None,
                "delivered_to": None,
            },
            lambda after: status_event(after, reason=reason),
        )
        if moved is not None:
            metrics.TIMEOUTS.labels("ack").inc()
            metrics.RETRIES.inc()
            log.warning("task_requeued", task_id=task.task_id, attempts=task.attempts)
        return moved is not None

    async def _expire(
        self,
        task_id: str,
        status: TaskStatus,
        kind: str,
        reason: str,
        still_due: Callable[[ProcessingTask], bool],
    ) -> None:
        # Re-read: a heartbeat (or anything) may have landed since the task was listed as due.
        task = await self.repository.get(task_id)
        if task is None or task.status is not status or not still_due(task):
            return
        if await self.service.fail(self.broker, task, (status,), reason) is not None:
            metrics.TIMEOUTS.labels(kind).inc()
            log.warning("task_timed_out", task_id=task_id, kind=kind, reason=reason)

    async def count_by_status(self) -> None:
        for status in TaskStatus:
            count = await ProcessingTask.find({"status": status.value}).count()
            metrics.TASKS.labels(status.value).set(count)
