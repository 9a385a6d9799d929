"""The worker service. For now it keeps the outbox relay running and serves its probes; task
routing and timeouts arrive with the processing-tasks slice."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from shared.logging import get_logger
from shared.models import DOCUMENT_MODELS
from shared.outbox import OutboxRelay
from shared.probes import probe_router
from shared.runtime import Runtime
from shared.settings import Settings, get_settings

log = get_logger(__name__)


class Worker:
    """Background duties of the product; started by `dronecast worker` or `dronecast dev`."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._relay = OutboxRelay(runtime.broker, list(DOCUMENT_MODELS))

    async def start(self) -> None:
        self._relay.start()
        log.info("worker_started")

    async def stop(self) -> None:
        await self._relay.stop()
        log.info("worker_stopped")


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
    return app
