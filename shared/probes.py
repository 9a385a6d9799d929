"""`/health`, `/ready` and `/metrics`, the same on every service."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shared import metrics
from shared.runtime import Runtime


def probe_router(runtime: Runtime, service: str) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/health")
    async def health() -> dict[str, object]:
        """Alive: the process answers. Says loudly when auth is off or storage is embedded."""
        return {
            "status": "ok",
            "service": service,
            "authEnabled": runtime.settings.auth_enabled,
            "warnings": runtime.warnings,
        }

    @router.get("/ready")
    async def ready() -> JSONResponse:
        """Ready for traffic: MongoDB and Redis answer, and the process is not draining."""
        checks = await runtime.readiness()
        ok = all(checks.values()) and not runtime.draining
        metrics.READY.set(1 if ok else 0)
        body = {
            "status": "ready" if ok else "unavailable",
            "service": service,
            "checks": checks,
            "draining": runtime.draining,
        }
        return JSONResponse(body, status_code=200 if ok else 503)

    @router.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router
