"""`/health`, `/ready` and `/metrics`, the same on every service.

`readiness` and `prometheus_exposition` are also what the api's `/api/v1/monitoring/health` and
`/api/v1/monitoring/metrics` (seed 004) answer, so the two never disagree.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shared import metrics
from shared.logging import get_logger
from shared.runtime import Runtime

log = get_logger(__name__)

# Refreshes a gauge that is read from storage (e.g. active sensors) right before a scrape.
ScrapeHook = Callable[[], Awaitable[None]]


async def readiness(runtime: Runtime, service: str) -> tuple[dict[str, Any], bool]:
    """What `/ready` says, and whether the process is ready: MongoDB and Redis answer, and it
    is not draining."""
    checks = await runtime.readiness()
    ok = all(checks.values()) and not runtime.draining
    metrics.READY.set(1 if ok else 0)
    body = {
        "status": "ready" if ok else "unavailable",
        "service": service,
        "checks": checks,
        "draining": runtime.draining,
    }
    return body, ok


async def prometheus_exposition(before_scrape: Sequence[ScrapeHook] = ()) -> Response:
    for hook in before_scrape:
        try:
            await hook()
        except Exception as exc:  # a scrape must answer even when storage does not
            log.warning("scrape_hook_failed", error=str(exc))
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def probe_router(
    runtime: Runtime, service: str, before_scrape: Sequence[ScrapeHook] = ()
) -> APIRouter:
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
        body, ok = await readiness(runtime, service)
        return JSONResponse(body, status_code=200 if ok else 503)

    @router.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        return await prometheus_exposition(before_scrape)

    return router
