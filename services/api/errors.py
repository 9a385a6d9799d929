"""Renders every error as `{"error": "<Type>", "detail": "..."}` with the right status."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pymongo.errors import ConnectionFailure
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.broker import BrokerUnavailable
from shared.errors import DroneCastError
from shared.logging import get_logger

log = get_logger(__name__)

_HTTP_ERROR_NAMES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    413: "PayloadTooLarge",
    415: "UnsupportedMediaType",
    429: "RateLimited",
}


def _describe(errors: list[dict[str, Any]]) -> str:
    parts = []
    for error in errors[:5]:
        where = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        parts.append(f"{where}: {error.get('msg')}" if where else str(error.get("msg")))
    return "; ".join(parts)


def _safe_errors(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"loc": list(error.get("loc", ())), "msg": error.get("msg"), "type": error.get("type")}
        for error in errors[:20]
    ]


def _is_json(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


def _about_the_body(errors: list[dict[str, Any]]) -> bool:
    return any(tuple(error.get("loc", ()))[:1] == ("body",) for error in errors)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DroneCastError)
    async def dronecast_error(_: Request, exc: DroneCastError) -> JSONResponse:
        headers = {}
        if exc.status_code == 401:
            headers["WWW-Authenticate"] = "Bearer"
        if "retry_after" in exc.extra:
            headers["Retry-After"] = str(exc.extra["retry_after"])
        return JSONResponse(exc.to_dict(), status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        content_type = request.headers.get("content-type")
        if content_type and not _is_json(content_type) and _about_the_body(errors):
            # FastAPI reads a body it was not told is JSON as bytes, and then says only that
            # it is not an object: say what is wrong.
            return JSONResponse(
                {
                    "error": "UnsupportedMediaType",
                    "detail": f"the body must be JSON (Content-Type: application/json), "
                    f"not {content_type[:80]}",
                },
                status_code=415,
            )
        if any(error.get("type") == "json_invalid" for error in errors):
            return JSONResponse(
                {"error": "BadRequest", "detail": "request body is not valid JSON"},
                status_code=400,
            )
        return JSONResponse(
            {
                "error": "ValidationError",
                "detail": _describe(errors),
                "errors": _safe_errors(errors),
            },
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        name = _HTTP_ERROR_NAMES.get(exc.status_code, "HTTPError")
        return JSONResponse(
            {"error": name, "detail": str(exc.detail)},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    # MongoDB or Redis out of reach (a restart, a failover): nothing was done, so the client
    # may send the same request again. Not a 500: the request was fine.
    @app.exception_handler(BrokerUnavailable)
    @app.exception_handler(RedisConnectionError)
    @app.exception_handler(RedisTimeoutError)
    @app.exception_handler(ConnectionFailure)
    async def dependency_unavailable(request: Request, exc: Exception) -> JSONResponse:
        store = "MongoDB" if isinstance(exc, ConnectionFailure) else "Redis"
        log.warning("dependency_unavailable", path=request.url.path, store=store, error=str(exc))
        return JSONResponse(
            {
                "error": "ServiceUnavailable",
                "detail": f"{store} cannot be reached right now; send the request again",
            },
            status_code=503,
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled_error", path=request.url.path, error=type(exc).__name__)
        return JSONResponse(
            {"error": "InternalError", "detail": "an unexpected error occurred"}, status_code=500
        )
