"""Every query on `processingTasks` and `processingResults`.

Transitions are compare-and-set on the task's current status, with the events appended to its
outbox in the same update; a `None` back means someone else moved the task first.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from beanie import SortDirection
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from shared.errors import Conflict
from shared.models.task import IN_FLIGHT, ProcessingResult, ProcessingTask, TaskStatus

Sort = list[tuple[str, SortDirection]]
# A drone's next task: highest priority first, then the oldest.
NEXT_FIRST: Sort = [
    ("priority", SortDirection.DESCENDING),
    ("created_at", SortDirection.ASCENDING),
    ("_id", SortDirection.ASCENDING),
]
NEWEST_FIRST: Sort = [("created_at", SortDirection.DESCENDING), ("_id", SortDirection.DESCENDING)]


class TaskRepository:
    async def insert(self, task: ProcessingTask) -> ProcessingTask:
        try:
            await task.insert()
        except DuplicateKeyError as exc:
            raise Conflict(f"task '{task.task_id}' already exists") from exc
        return task

    async def get(self, task_id: str) -> ProcessingTask | None:
        return await ProcessingTask.find_one({"task_id": task_id})

    async def find_page(
        self, query: dict[str, Any], limit: int, offset: int, sort: Sort
    ) -> tuple[list[ProcessingTask], int]:
        total = await ProcessingTask.find(query).count()
        tasks = await ProcessingTask.find(query).sort(sort).skip(offset).limit(limit).to_list()
        return tasks, total

    async def transition(
        self,
        task_id: str,
        from_statuses: tuple[TaskStatus, ...],
        changes: dict[str, Any],
        outbox: list[dict[str, Any]],
        extra_match: dict[str, Any] | None = None,
    ) -> ProcessingTask | None:
        raw = await ProcessingTask.get_pymongo_collection().find_one_and_update(
            {
                "task_id": task_id,
                "status": {"$in": [s.value for s in from_statuses]},
                **(extra_match or {}),
            },
            {"$set": changes, "$inc": {"version": 1}, "$push": {"outbox": {"$each": outbox}}},
            return_document=ReturnDocument.AFTER,
        )
        return ProcessingTask.model_validate(raw) if raw else None

    async def claim_next(
        self,
        drone_id: str,
        worker: str,
        now: datetime,
        outbox_for: Any,
    ) -> ProcessingTask | None:
        """Lease the drone's next pending task (highest priority, then oldest) to `worker`."""
        collection = ProcessingTask.get_pymongo_collection()
        candidate = await collection.find_one(
            {"drone_id": drone_id, "status": TaskStatus.PENDING.value}, sort=NEXT_FIRST
        )
        if candidate is None:
            return None
        task = ProcessingTask.model_validate(candidate)
        changes: dict[str, Any] = {
            "dispatched_at": now,
            "dispatched_by": worker,
            "delivered_to": None,
            "attempts": task.attempts + 1,
            "updated_at": now,
        }
        dispatched = task.model_copy(update={**changes, "status": TaskStatus.DISPATCHED})
        return await self.transition(
            task.task_id,
            (TaskStatus.PENDING,),
            {**changes, "status": TaskStatus.DISPATCHED.value},
            outbox_for(dispatched),
            extra_match={"version": task.version},
        )

    async def count_in_flight(self, drone_id: str) -> int:
        return await ProcessingTask.find(
            {"drone_id": drone_id, "status": {"$in": [s.value for s in IN_FLIGHT]}}
        ).count()

    async def drones_with_pending(self) -> list[str]:
        collection = ProcessingTask.get_pymongo_collection()
        drones: list[str] = await collection.distinct("drone_id", {"status": "pending"})
        return drones

    async def find_ids(self, query: dict[str, Any], limit: int = 500) -> list[str]:
        cursor = ProcessingTask.get_pymongo_collection().find(query, {"task_id": 1}).limit(limit)
        return [raw["task_id"] async for raw in cursor]

    async def undelivered_for(self, drone_id: str) -> list[ProcessingTask]:
        return (
            await ProcessingTask.find(
                {"drone_id": drone_id, "status": TaskStatus.DISPATCHED.value, "delivered_to": None}
            )
            .sort(NEXT_FIRST)
            .to_list()
        )

    async def drones_with_undelivered(self, drone_ids: list[str]) -> list[str]:
        if not drone_ids:
            return []
        drones: list[str] = await ProcessingTask.get_pymongo_collection().distinct(
            "drone_id",
            {
                "drone_id": {"$in": drone_ids},
                "status": TaskStatus.DISPATCHED.value,
                "delivered_to": None,
            },
        )
        return drones

    async def mark_delivered(self, task_id: str, connection: str) -> ProcessingTask | None:
        """Claim the sending of a dispatched task for one drone connection, exactly once."""
        raw = await ProcessingTask.get_pymongo_collection().find_one_and_update(
            {"task_id": task_id, "status": TaskStatus.DISPATCHED.value, "delivered_to": None},
            {"$set": {"delivered_to": connection}},
            return_document=ReturnDocument.AFTER,
        )
        return ProcessingTask.model_validate(raw) if raw else None

    async def insert_result(self, result: ProcessingResult) -> ProcessingResult | None:
        """None when the task already has a result (a resent result is not stored twice)."""
        try:
            await result.insert()
        except DuplicateKeyError:
            return None
        return result

    async def result_of(self, task_id: str) -> ProcessingResult | None:
        return await ProcessingResult.find_one({"task_id": task_id})

    async def results_of_drone(self, drone_id: str, limit: int) -> list[ProcessingResult]:
        return (
            await ProcessingResult.find({"drone_id": drone_id})
            .sort([("timestamp", SortDirection.DESCENDING), ("_id", SortDirection.DESCENDING)])
            .limit(limit)
            .to_list()
        )


task_repository = TaskRepository()
