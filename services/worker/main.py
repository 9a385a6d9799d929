"""The worker service: task routing and timeouts (seed 003), telemetry consumers (seed 004),
and the outbox relay.

It is woken by the bus (a task created or ended, a drone online) to route that drone at once,
and it sweeps on a timer as the backstop and to enforce timeouts. Any number may run: they
coordinate through MongoDB (routing leases, compare-and-set transitions), never directly.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import FastAPI

from services.worker.routing import TaskRouter
from services.worker.telemetry import TelemetryConsumers
from services.worker.timeouts import TimeoutSweeper
from shared.aio import cancel_and_wait
from shared.broker import Subscription
from shared.channels import ChannelKind, drone_kind_pattern
from shared.events import EventName, PublishedEvent
from shared.logging import get_logger
from shared.models import OUTBOX_MODELS
from shared.outbox import OutboxRelay
from shared.probes import probe_router
from shared.runtime import Runtime
from shared.settings import Settings, get_settings

log = get_logger(__name__)

_ROUTE_EVERYONE_EVERY = 4  # sweeps between full routing passes (the backstop)
_COUNT_EVERY = 10  # sweeps between task-state gauge refreshes


class Worker:
    """Background duties of the product; started by `dronecast worker` or `dronecast dev`."""

    def __init__(self, runtime: Runtime, relay_outbox: bool = True) -> None:
        self.runtime = runtime
        self.id = f"worker-{uuid.uuid4().hex[:10]}"
        settings = runtime.settings
        self.router = TaskRouter(runtime.broker, settings, self.id)
        self.sweeper = TimeoutSweeper(runtime.broker, settings)
        # `dronecast dev` already relays in its api; one relay per process is enough.
        self._relay = OutboxRelay(runtime.broker, list(OUTBOX_MODELS)) if relay_outbox else None
        self.telemetry = TelemetryConsumers(runtime.broker, settings, self.id)
        self._subscription: Subscription | None = None
        self._due: set[str] = set()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        if self._relay is not None:
            self._relay.start()
        self._subscription = self.runtime.broker.subscription(self._on_event, self._on_resume)
        await self._subscription.add(drone_kind_pattern(ChannelKind.TASK))
        await self._subscription.add(drone_kind_pattern(ChannelKind.PRESENCE))
        self._tasks = [
            self._spawn(self._route_when_woken(), "route"),
            self._spawn(self._sweep_forever(), "sweep"),
        ]
        self.wake_all()
        await self.telemetry.start()
        log.info("worker_started", worker=self.id)

    async def stop(self) -> None:
        await self.telemetry.stop()
        await cancel_and_wait(*self._tasks)
        if self._subscription is not None:
            await self._subscription.close()
        released = await self.router.release_all()
        if self._relay is not None:
            await self._relay.stop()
        log.info("worker_stopped", worker=self.id, leases_released=released)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        return asyncio.create_task(coro, name=f"worker-{name}")

    def wake(self, drone_id: str) -> None:
        self._due.add(drone_id)
        self._wake.set()

    def wake_all(self) -> None:
        self._due.add("*")
        self._wake.set()

    def _on_event(self, event: PublishedEvent) -> None:
        if event.serial is None:
            return
        try:
            name = orjson.loads(event.envelope).get("event")
        except orjson.JSONDecodeError:
            return
        # A new task, a freed slot (ended, cancelled, re-queued) or a drone that came online.
        if name != EventName.TASK_DISPATCHED.value and name != EventName.DRONE_OFFLINE.value:
            self.wake(event.serial)

    async def _on_resume(self) -> None:
        self.wake_all()  # whatever happened while the bus was away, the sweep catches up

    async def _route_when_woken(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            due, self._due = self._due, set()
            try:
                if "*" in due:
                    await self.router.route_everyone()
                else:
                    online = await self.router.online_drones()
                    for drone_id in sorted(due & online):
                        await self.router.dispatch_next_tasks(drone_id)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep routing through a failing database or bus
                log.warning("routing_failed", error=str(exc))
                await asyncio.sleep(0.5)

    async def _sweep_forever(self) -> None:
        sweeps = 0
        while True:
            await asyncio.sleep(self.runtime.settings.worker_sweep_seconds)
            sweeps += 1
            try:
                for drone_id in await self.sweeper.sweep():
                    self.wake(drone_id)
                if sweeps % _ROUTE_EVERYONE_EVERY == 0:
                    self.wake_all()
                if sweeps % _COUNT_EVERY == 0:
                    await self.sweeper.count_by_status()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the sweep must outlive a failing database or bus
                log.warning("sweep_failed", error=str(exc))


def create_worker_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    runtime = Runtime.create(settings)
    worker = Worker(runtime)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        await worker.start()
        try:
            yield
        finally:
            runtime.draining = True
            await worker.stop()
            await runtime.stop()

    app = FastAPI(title="DroneCast worker", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.include_router(probe_router(runtime, "worker"))
    app.state.worker = worker
    return app
