"""Routing: give each connected drone its pending tasks, highest priority first, oldest first
within a priority, never more than TASK_IN_FLIGHT_PER_DRONE at once, never one task twice.

A worker routes a drone only while it holds that drone's `RoutingLease`, so workers that race
over the same drone take turns; claiming a task is itself a compare-and-set, so a task is never
dispatched twice. The api replica holding the drone's socket sends what was dispatched (it
watches `task.dispatched` events), so a worker never needs to know where a drone is.
"""

from __future__ import annotations

import time
from datetime import timedelta

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from services.worker import metrics
from shared.broker import Broker
from shared.events import EventName
from shared.logging import get_logger
from shared.models import DevicePresence
from shared.models.base import utcnow
from shared.models.presence import PresenceKind
from shared.models.task import ProcessingTask, RoutingLease
from shared.outbox import drain, outbox_entries
from shared.settings import Settings
from shared.tasks.repository import TaskRepository, task_repository
from shared.tasks.service import task_event

log = get_logger(__name__)


class TaskRouter:
    def __init__(
        self,
        broker: Broker,
        settings: Settings,
        worker_id: str,
        repository: TaskRepository = task_repository,
    ) -> None:
        self.broker = broker
        self.settings = settings
        self.worker_id = worker_id
        self.repository = repository

    async def acquire(self, drone_id: str) -> bool:
        now = utcnow()
        until = now + timedelta(seconds=self.settings.worker_lease_seconds)
        try:
            lease = await RoutingLease.get_pymongo_collection().find_one_and_update(
                {
                    "drone_id": drone_id,
                    "$or": [{"until": {"$lt": now}}, {"owner": self.worker_id}],
                },
                {"$set": {"owner": self.worker_id, "until": until}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError:
            return False  # another worker holds it
        return lease is not None and lease["owner"] == self.worker_id

    async def release(self, drone_id: str) -> None:
        await RoutingLease.get_pymongo_collection().delete_one(
            {"drone_id": drone_id, "owner": self.worker_id}
        )

    async def release_all(self) -> int:
        deleted = await RoutingLease.get_pymongo_collection().delete_many({"owner": self.worker_id})
        return int(deleted.deleted_count)

    async def dispatch_next_tasks(self, drone_id: str) -> list[ProcessingTask]:
        """Lease the drone's next tasks up to its in-flight limit."""
        started = time.perf_counter()
        if not await self.acquire(drone_id):
            return []
        dispatched: list[ProcessingTask] = []
        try:
            limit = self.settings.task_in_flight_per_drone
            while await self.repository.count_in_flight(drone_id) < limit:
                task = await self.repository.claim_next(
                    drone_id,
                    self.worker_id,
                    utcnow(),
                    lambda after: outbox_entries([task_event(EventName.TASK_DISPATCHED, after)]),
                )
                if task is None:
                    break
                await drain(self.broker, ProcessingTask, task.id, task.outbox)
                metrics.DISPATCHES.inc()
                log.info(
                    "task_dispatched",
                    task_id=task.task_id,
                    drone_id=drone_id,
                    attempt=task.attempts,
                )
                dispatched.append(task)
        finally:
            await self.release(drone_id)
            metrics.ROUTING_SECONDS.observe(time.perf_counter() - started)
        return dispatched

    async def online_drones(self) -> set[str]:
        cursor = DevicePresence.get_pymongo_collection().find(
            {"kind": PresenceKind.DRONE.value, "online": True}, {"device_id": 1}
        )
        return {raw["device_id"] async for raw in cursor}

    async def route_everyone(self) -> int:
        """Every connected drone with pending tasks (the backstop to event-driven routing)."""
        online = await self.online_drones()
        waiting = set(await self.repository.drones_with_pending())
        dispatched = 0
        for drone_id in sorted(online & waiting):
            dispatched += len(await self.dispatch_next_tasks(drone_id))
        return dispatched
