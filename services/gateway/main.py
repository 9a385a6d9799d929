"""The gateway service: Socket.IO at `/ws/events`, plus `/health`, `/ready`, `/metrics`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import socketio
from fastapi import FastAPI

from services.gateway.server import SOCKETIO_PATH, Gateway
from shared.logging import get_logger
from shared.probes import probe_router
from shared.runtime import Runtime
from shared.settings import Settings, get_settings

log = get_logger(__name__)


def create_gateway_app(settings: Settings | None = None) -> socketio.ASGIApp:
    settings = settings or get_settings()
    runtime = Runtime.create(settings)
    gateway = Gateway(settings, runtime.broker, runtime)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await runtime.start(with_database=not settings.embedded_store)
        await gateway.start()
        for warning in runtime.warnings:
            log.warning("startup_warning", detail=warning)
        log.info("gateway_started", path=f"/{SOCKETIO_PATH}")
        try:
            yield
        finally:
            runtime.draining = True
            await gateway.stop()
            await runtime.stop()
            log.info("gateway_stopped")

    probes = FastAPI(title="DroneCast gateway", lifespan=lifespan, docs_url=None, redoc_url=None)
    probes.include_router(probe_router(runtime, "gateway"))
    probes.state.gateway = gateway
    return socketio.ASGIApp(gateway.sio, other_asgi_app=probes, socketio_path=SOCKETIO_PATH)
