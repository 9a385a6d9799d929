"""The `processingTasks` and `processingResults` collections (seed 003 field names, snake_case).

A task's life: `pending` -> `dispatched` (a worker leased it to a connected drone) ->
`processing` (the drone acknowledged it) -> `completed` | `failed`; `cancelled` by its
application while pending or dispatched. Every transition is a compare-and-set on `status`
(and `version`), with its events in the same update (the outbox), so racing workers cannot
both move a task, and no transition's event is lost.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from beanie import Document
from pydantic import Field
from pymongo import ASCENDING, DESCENDING, IndexModel

from shared.models.base import OutboxMixin, utcnow


class TaskStatus(StrEnum):
    PENDING = "pending"
    DISPATCHED = "dispatched"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


IN_FLIGHT = (TaskStatus.DISPATCHED, TaskStatus.PROCESSING)
FINAL = (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED)


class ProcessingTask(OutboxMixin, Document):
    task_id: str
    app_id: str
    drone_id: str
    task_type: str
    input_data: dict[str, Any] = Field(default_factory=dict)
    status: TaskStatus = TaskStatus.PENDING
    priority: int = 3
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    error_message: str | None = None
    # Routing and timeouts
    attempts: int = 0
    deadline_at: datetime | None = None  # still pending past this: failed
    dispatched_at: datetime | None = None
    dispatched_by: str | None = None  # the worker that leased it
    delivered_to: str | None = None  # the drone connection that was sent it
    started_at: datetime | None = None
    last_heartbeat_at: datetime | None = None
    finished_at: datetime | None = None

    class Settings:
        name = "processingTasks"
        use_revision = False
        indexes = [
            IndexModel([("task_id", ASCENDING)], unique=True),
            IndexModel([("app_id", ASCENDING)]),
            IndexModel([("drone_id", ASCENDING)]),
            IndexModel([("status", ASCENDING)]),
            IndexModel([("created_at", ASCENDING)]),
            # The routing query: a drone's next task, highest priority first, then oldest.
            IndexModel(
                [
                    ("drone_id", ASCENDING),
                    ("status", ASCENDING),
                    ("priority", DESCENDING),
                    ("created_at", ASCENDING),
                ]
            ),
            IndexModel([("outbox.timestamp", ASCENDING)], sparse=True),
        ]

    def public(self) -> dict[str, Any]:
        from shared.events import format_timestamp

        def stamp(moment: datetime | None) -> str | None:
            return format_timestamp(moment) if moment else None

        return {
            "task_id": self.task_id,
            "app_id": self.app_id,
            "drone_id": self.drone_id,
            "task_type": self.task_type,
            "input_data": self.input_data,
            "status": self.status.value,
            "priority": self.priority,
            "created_at": stamp(self.created_at),
            "updated_at": stamp(self.updated_at),
            "error_message": self.error_message,
            "attempts": self.attempts,
            "deadline_at": stamp(self.deadline_at),
            "dispatched_at": stamp(self.dispatched_at),
            "started_at": stamp(self.started_at),
            "finished_at": stamp(self.finished_at),
        }

    def seed_task_data(self) -> dict[str, Any]:
        """`task_data` of the seed's `processing_task` message to a drone."""
        return {
            "app_id": self.app_id,
            "drone_id": self.drone_id,
            "task_type": self.task_type,
            "input_data": self.input_data,
            "priority": self.priority,
        }


class ProcessingResult(Document):
    task_id: str
    drone_id: str
    app_id: str | None = None
    result_data: dict[str, Any] = Field(default_factory=dict)
    processing_time: float | None = None
    success: bool = True
    error_message: str | None = None
    timestamp: datetime = Field(default_factory=utcnow)
    received_at: datetime = Field(default_factory=utcnow)
    # The task had already ended (timed out, failed, cancelled) when this result arrived: it is
    # kept for the record and changes nothing.
    late: bool = False

    class Settings:
        name = "processingResults"
        use_revision = False
        indexes = [
            IndexModel([("task_id", ASCENDING)], unique=True),
            IndexModel([("drone_id", ASCENDING)]),
            IndexModel([("timestamp", ASCENDING)]),
        ]

    def public(self) -> dict[str, Any]:
        from shared.events import format_timestamp

        return {
            "result_id": str(self.id),
            "task_id": self.task_id,
            "drone_id": self.drone_id,
            "app_id": self.app_id,
            "result_data": self.result_data,
            "processing_time": self.processing_time,
            "success": self.success,
            "error_message": self.error_message,
            "timestamp": format_timestamp(self.timestamp),
            "late": self.late,
        }


class RoutingLease(Document):
    """A worker's hold on routing one drone's tasks: with it, the in-flight limit holds even
    when workers race. It lapses by itself if the worker dies."""

    drone_id: str
    owner: str
    until: datetime

    class Settings:
        name = "taskRouting"
        use_revision = False
        indexes = [IndexModel([("drone_id", ASCENDING)], unique=True)]
