"""Who is calling (bearer JWT), what they may do, and the per-client limits of the REST API."""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.auth import ANONYMOUS_ADMIN, Action, Principal, verify_token
from shared.errors import PayloadTooLarge, RateLimited, Unauthorized
from shared.limits import RateLimiter
from shared.settings import Settings

bearer = HTTPBearer(auto_error=False, description="`dronecast token --role ROLE --drones ...`")


def client_key(request: Request, principal: Principal) -> str:
    if principal is not ANONYMOUS_ADMIN:
        return f"sub:{principal.sub}"
    return f"ip:{request.client.host if request.client else 'unknown'}"


async def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    return principal_for(request, credentials.credentials if credentials else None)


async def principal_from_header_or_query(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """Also `?token=`: for URLs a browser loads by itself (an `<img src>`)."""
    token = credentials.credentials if credentials else request.query_params.get("token")
    return principal_for(request, token)


def principal_for(request: Request, token: str | None) -> Principal:
    settings: Settings = request.app.state.settings
    if not settings.auth_enabled:
        principal = ANONYMOUS_ADMIN
    elif not token:
        raise Unauthorized("a bearer token is required (Authorization: Bearer <token>)")
    else:
        principal = verify_token(settings, token)
    limiter: RateLimiter = request.app.state.rate_limiter
    if not limiter.allow(client_key(request, principal)):
        raise RateLimited(
            "too many requests; slow down", retry_after=math.ceil(limiter.retry_after())
        )
    return principal


def _requiring(action: Action) -> Callable[[Principal], Awaitable[Principal]]:
    async def dependency(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        principal.require(action)
        return principal

    return dependency


# The caller, if its role may do the action (403 otherwise; 401 without a valid token).
CanRead = Annotated[Principal, Depends(_requiring(Action.READ))]
CanManageDrones = Annotated[Principal, Depends(_requiring(Action.MANAGE_DRONES))]
CanRespond = Annotated[Principal, Depends(_requiring(Action.RESPOND))]
CanRaiseAlerts = Annotated[Principal, Depends(_requiring(Action.RAISE_ALERTS))]
CanManageTasks = Annotated[Principal, Depends(_requiring(Action.MANAGE_TASKS))]
CanActAsDrone = Annotated[Principal, Depends(_requiring(Action.ACT_AS_DRONE))]
CanSendTelemetry = Annotated[Principal, Depends(_requiring(Action.SEND_TELEMETRY))]
# Reading, with the token in the header or in `?token=`.
CanReadByUrl = Annotated[Principal, Depends(principal_from_header_or_query)]


class BodySizeLimit:
    """413 before reading more than `max_bytes` of a request body, declared or streamed."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        larger: tuple[re.Pattern[str], int] | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.larger = larger  # paths that take more (an image upload), and how much

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        if self.larger is not None and self.larger[0].fullmatch(scope.get("path", "")):
            limit = max(limit, self.larger[1])
        declared = dict(scope.get("headers", ())).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._refuse(send, limit)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._refuse(send, limit)

    async def _refuse(self, send: Send, limit: int) -> None:
        error = PayloadTooLarge(f"request body is larger than {limit} bytes")
        body = (
            b'{"error":"' + error.error.encode() + b'","detail":"' + error.detail.encode() + b'"}'
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _TooLarge(HTTPException):
    """Raised from `receive` while a streamed (chunked) body grows past the limit. An
    HTTPException, so FastAPI's body parsing lets it through as it is (it turns any other
    error into 400 "There was an error parsing the body") and the error handlers answer 413."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"request body is larger than {max_bytes} bytes")
