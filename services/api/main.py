"""The api service: REST, device WebSockets, probes. `create_app()` builds it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, Protocol

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from services.api.alerts.endpoints import IMAGE_UPLOAD_PATH, uploads_router
from services.api.alerts.endpoints import router as alerts_router
from services.api.alerts.endpoints import seed_router as alerts_seed_router
from services.api.devices.endpoints import router as devices_router
from services.api.devices.hub import DeviceHub
from services.api.drones.endpoints import router as drones_router
from services.api.errors import install_error_handlers
from services.api.metrics import HttpMetricsMiddleware, RequestIdMiddleware
from services.api.security import BodySizeLimit
from services.api.tasks.endpoints import router as tasks_router
from services.api.tasks.endpoints import seed_router as tasks_seed_router
from services.api.telemetry.endpoints import router as telemetry_router
from services.api.telemetry.feed import TelemetryFeed
from services.api.telemetry.graphql import graphql_router
from services.api.web.endpoints import install_web
from shared.limits import RateLimiter
from shared.logging import get_logger
from shared.models import OUTBOX_MODELS
from shared.outbox import OutboxRelay
from shared.probes import probe_router
from shared.runtime import Runtime
from shared.settings import Settings, get_settings
from shared.telemetry.service import telemetry_service

log = get_logger(__name__)

DESCRIPTION = """
DroneCast's REST API: drones, alerts (and their pictures), processing tasks and sensor
telemetry. Every change is published as an event on Redis (`drone:{serial}:{kind}`) and relayed
live by the Socket.IO gateway at `/ws/events`. Drones and applications also connect over
`/ws/drone/{drone_id}` and `/ws/application/{app_id}` (see docs/messages.md). The live
operations dashboard is at `/`.

Errors are always `{"error": "<Type>", "detail": "..."}`.
"""


class Component(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


_ERROR_BODY = {
    "application/json": {
        "schema": {
            "type": "object",
            "properties": {"error": {"type": "string"}, "detail": {"type": "string"}},
            "required": ["error", "detail"],
        }
    }
}
# What any route may answer besides its own responses; every one is `{"error", "detail"}`.
COMMON_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {
        "description": "Malformed request (e.g. a body that is not JSON)",
        "content": _ERROR_BODY,
    },
    401: {"description": "No valid bearer token", "content": _ERROR_BODY},
    403: {"description": "The token's role may not do this", "content": _ERROR_BODY},
    413: {"description": "Body larger than MAX_BODY_BYTES", "content": _ERROR_BODY},
    415: {"description": "A body that is not sent as JSON", "content": _ERROR_BODY},
    422: {"description": "Invalid input", "content": _ERROR_BODY},
    429: {"description": "Too many requests from this client", "content": _ERROR_BODY},
}


def create_app(
    settings: Settings | None = None,
    runtime: Runtime | None = None,
    components: Sequence[Component] | None = None,
) -> FastAPI:
    """Build the api. `components` start (in order) before it serves and stop after; by default
    that is just its own Runtime. `dronecast dev` passes the shared runtime, gateway and worker."""
    settings = settings or (runtime.settings if runtime else get_settings())
    rt = runtime or Runtime.create(settings)
    parts: Sequence[Component] = [rt] if components is None else components
    device_hub = DeviceHub(settings, rt)
    telemetry_feed = TelemetryFeed(rt.broker, settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for part in parts:
            await part.start()
        relay = OutboxRelay(rt.broker, list(OUTBOX_MODELS))
        relay.start()
        await device_hub.start()
        for warning in rt.warnings:
            log.warning("startup_warning", detail=warning)
        log.info("api_started", embedded_store=settings.embedded_store, auth=settings.auth_enabled)
        try:
            yield
        finally:
            rt.draining = True
            await telemetry_feed.stop()
            await device_hub.stop()
            await relay.stop()
            for part in reversed(parts):
                await part.stop()
            log.info("api_stopped")

    app = FastAPI(
        title="DroneCast API",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        responses=COMMON_ERRORS,
        # Served by services/api/web from the product's own assets, not a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.runtime = rt
    app.state.broker = rt.broker
    app.state.device_hub = device_hub
    app.state.rate_limiter = RateLimiter(settings.requests_per_second, settings.request_burst)
    app.state.telemetry_feed = telemetry_feed
    install_error_handlers(app)
    app.include_router(
        probe_router(
            rt,
            "api",
            before_scrape=[partial(telemetry_service.refresh_active_sensors, rt.broker, settings)],
        )
    )
    app.include_router(drones_router)
    app.include_router(alerts_router)
    app.include_router(alerts_seed_router)
    app.include_router(uploads_router)
    app.include_router(tasks_router)
    app.include_router(tasks_seed_router)
    app.include_router(telemetry_router)
    app.include_router(graphql_router(settings))
    app.include_router(devices_router)
    install_web(app, settings)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["*"],
        allow_headers=["*"],
    )
    # An image upload is its picture: up to MAX_IMAGE_BYTES (base64 in JSON: 4/3 of that).
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_body_bytes,
        larger=(IMAGE_UPLOAD_PATH, settings.max_frame_bytes),
    )
    app.add_middleware(HttpMetricsMiddleware)
    app.add_middleware(RequestIdMiddleware)
    return app
