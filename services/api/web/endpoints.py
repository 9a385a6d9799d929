"""The dashboard (`GET /`), the API docs pages and `/static/`, all served by the api itself.

The dashboard is a client of the product like any other: it reads REST under `/api/v1` and
listens to the Socket.IO gateway at `/ws/events`. The only thing it learns from this module is
its configuration, written into the page: whether tokens are needed, where the gateway is
(`PUBLIC_EVENTS_URL`, by default the page's own origin) and what each role may do.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.middleware.gzip import GZipMiddleware
from starlette.responses import Response
from starlette.staticfiles import StaticFiles

from shared.auth import ROLE_ACTIONS
from shared.settings import Settings

STATIC_DIR = Path(__file__).parent / "static"
STATIC_PATH = "/static"
VENDOR = f"{STATIC_PATH}/vendor"
# The gateway's Socket.IO path, as clients use it (seed 001).
EVENTS_PATH = "/ws/events"
CONFIG_PLACEHOLDER = "__DRONECAST_CONFIG__"


class _Revalidated(StaticFiles):
    """Static files that browsers revalidate (ETag / If-None-Match, a 304 when unchanged), so
    an upgrade never leaves a stale module in a cache; unversioned URLs need that."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def _origin_variants(origin: str) -> list[str]:
    """An http(s) origin and the ws(s) origin a browser's WebSocket to it has."""
    parts = urlsplit(origin)
    ws = "wss" if parts.scheme == "https" else "ws"
    return [origin, f"{ws}://{parts.netloc}"]


def dashboard_config(settings: Settings) -> dict[str, Any]:
    return {
        "authEnabled": settings.auth_enabled,
        "eventsUrl": settings.public_events_url,
        "eventsPath": EVENTS_PATH,
        "graphiql": settings.environment != "production",
        "roles": {
            role.value: sorted(action.value for action in actions)
            for role, actions in ROLE_ACTIONS.items()
        },
    }


def content_security_policy(settings: Settings) -> str:
    """The dashboard loads and connects to nothing but the product (its own origin, and the
    gateway's when that is another)."""
    connect = ["'self'"]
    if settings.public_events_url:
        connect += _origin_variants(settings.public_events_url)
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            f"connect-src {' '.join(connect)}",
            "object-src 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
            "form-action 'none'",
        ]
    )


@lru_cache
def _page(name: str) -> str:
    return (STATIC_DIR / name).read_text(encoding="utf-8")


def embedded_json(value: Any) -> str:
    # Inside <script type="application/json">: nothing in it may close the element.
    return json.dumps(value, separators=(",", ":")).replace("<", "\\u003c")


def graphiql_page() -> HTMLResponse:
    """GraphiQL, on this product's own copy of GraphiQL and React."""
    return HTMLResponse(_page("docs/graphiql.html"))


def web_router(settings: Settings, openapi_url: str) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    page = _page("dashboard/index.html").replace(
        CONFIG_PLACEHOLDER, embedded_json(dashboard_config(settings))
    )
    policy = content_security_policy(settings)

    @router.api_route("/", methods=["GET", "HEAD"], response_class=HTMLResponse)
    async def dashboard() -> HTMLResponse:
        return HTMLResponse(
            page,
            headers={
                "Content-Security-Policy": policy,
                "Cache-Control": "no-cache",
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "same-origin",
            },
        )

    @router.get("/docs", response_class=HTMLResponse)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title="DroneCast API: Swagger UI",
            swagger_js_url=f"{VENDOR}/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url=f"{VENDOR}/swagger-ui/swagger-ui.css",
            swagger_favicon_url=f"{VENDOR}/swagger-ui/favicon-32x32.png",
            # The default sends the spec's address to an online validator.
            swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": True},
        )

    @router.get("/redoc", response_class=HTMLResponse)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title="DroneCast API: ReDoc",
            redoc_js_url=f"{VENDOR}/redoc/redoc.standalone.js",
            redoc_favicon_url=f"{VENDOR}/swagger-ui/favicon-32x32.png",
            with_google_fonts=False,
        )

    return router


def install_web(app: FastAPI, settings: Settings) -> None:
    """The dashboard, the docs pages and `/static/` (compressed when the browser accepts it).
    The app must be built with `docs_url=None, redoc_url=None`: these replace FastAPI's
    CDN-loading pages."""
    app.include_router(web_router(settings, app.openapi_url or "/openapi.json"))
    app.mount(
        STATIC_PATH,
        GZipMiddleware(_Revalidated(directory=STATIC_DIR), minimum_size=1024),
        name="static",
    )
