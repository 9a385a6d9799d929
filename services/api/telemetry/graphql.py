"""Telemetry over GraphQL (seed 004): `POST /api/v1/graphql`, queries `sensorData` and
`anomalyAlerts`, and the same two as subscriptions over graphql-transport-ws.

The resolvers call the same `telemetry_service` as the REST lists, so filters, the token's
drone scope and the order (newest first) are the REST ones; only the shape differs (seed 004's
camelCase). A query needs what a REST read needs (`CanRead`): no token is an HTTP 401 JSON error
before any GraphQL runs. Bad arguments are GraphQL errors (`errors`, HTTP 200), never a 500.
There are no mutations. Subscriptions are fed by the bus (`feed.py`) under the same token
scope. Outside production, `GET` serves GraphiQL (a static
page: the queries it sends need a token like any other).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Annotated, Any, TypeVar, cast

import strawberry
from cross_web import HTTPException as GraphQLHTTPException
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from graphql import GraphQLError
from pydantic import BaseModel, Field, ValidationError
from pydantic.alias_generators import to_camel
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection
from strawberry.exceptions import ConnectionRejectionError
from strawberry.extensions import MaskErrors, MaxAliasesLimiter, MaxTokensLimiter, QueryDepthLimiter
from strawberry.fastapi import BaseContext, GraphQLRouter
from strawberry.scalars import JSON
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types import ExecutionContext
from strawberry.types.graphql import OperationType
from strawberry.types.unset import UNSET, UnsetType

from services.api.deps import DEFAULT_LIMIT, MAX_LIMIT, MAX_OFFSET
from services.api.security import bearer, current_principal
from services.api.telemetry.feed import TelemetryFeed, TooSlow
from services.api.web.endpoints import graphiql_page
from shared.auth import ANONYMOUS_ADMIN, Action, Principal, verify_token
from shared.drones.schemas import SERIAL_PATTERN
from shared.errors import DroneCastError
from shared.limits import RateLimiter
from shared.logging import get_logger
from shared.models import TelemetryAlert, TelemetryReading
from shared.models.alert import Severity
from shared.schemas import IsoDatetime
from shared.settings import Settings
from shared.telemetry.schemas import AlertFilters, ReadingFilters
from shared.telemetry.service import telemetry_service

log = get_logger(__name__)

PATH = "/api/v1/graphql"
MAX_DEPTH = 5
# Each alias is one more resolver run (up to 500 readings each); the seed's queries use none.
MAX_ALIASES = 10
# Bounds the parser's work (and recursion) well below the body-size limit; GraphiQL's
# introspection query is about 300 tokens.
MAX_TOKENS = 2000

# --- arguments: validated as the REST query parameters are ------------------------------------

SerialArg = Annotated[str, Field(pattern=SERIAL_PATTERN)]
LabelArg = Annotated[str, Field(min_length=1, max_length=200)]


class _Page(BaseModel):
    # As `PageDep` on REST.
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    offset: int = Field(0, ge=0, le=MAX_OFFSET)

    def values(self) -> dict[str, Any]:
        return self.model_dump(exclude={"limit", "offset"})


class _ReadingArgs(_Page):
    sensor_id: SerialArg | None = None
    sensor_type: LabelArg | None = None
    location: LabelArg | None = None
    drone_serial: SerialArg | None = None
    is_anomaly: bool | None = None
    since: IsoDatetime | None = None
    until: IsoDatetime | None = None


class _AlertArgs(_Page):
    severity: Severity | None = None
    resolved: bool | None = None
    sensor_id: SerialArg | None = None
    drone_serial: SerialArg | None = None
    since: IsoDatetime | None = None
    until: IsoDatetime | None = None


Args = TypeVar("Args", bound=_Page)


def _validated(model: type[Args], **values: Any) -> Args:
    """The arguments, or a GraphQL error naming each bad one as the client spelled it."""
    try:
        return model(**values)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(to_camel(str(part)) for part in error['loc'])}: {error['msg']}"
            for error in exc.errors()[:5]
        ]
        raise GraphQLError("; ".join(problems), extensions={"code": "BAD_USER_INPUT"}) from None


# --- types (seed 004's fields, plus ours) -----------------------------------------------------


@strawberry.type(description="A stored sensor reading, with its anomaly verdict.")
class SensorReading:
    id: strawberry.ID
    sensor_id: str
    sensor_type: str
    value: float
    unit: str | None
    location: str | None
    metadata: JSON
    timestamp: str = strawberry.field(description="ISO 8601, UTC, milliseconds")
    is_anomaly: bool
    anomaly_score: float = strawberry.field(
        description="The detector's strongest test relative to its threshold (1.0 at it)"
    )
    anomaly_kind: str | None = strawberry.field(description="jump, stuck, noise or drift")
    drone_serial: str | None

    @classmethod
    def of(cls, reading: TelemetryReading) -> SensorReading:
        return cls.from_public(reading.public())  # the REST body: same values, same formats

    @classmethod
    def from_public(cls, public: dict[str, Any]) -> SensorReading:
        return cls(
            id=strawberry.ID(public["id"]),
            sensor_id=public["sensor_id"],
            sensor_type=public["sensor_type"],
            value=public["value"],
            unit=public["unit"],
            location=public["location"],
            metadata=public["metadata"],
            timestamp=public["timestamp"],
            is_anomaly=public["is_anomaly"],
            anomaly_score=public["anomaly_score"],
            anomaly_kind=public["anomaly_kind"],
            drone_serial=public["drone_serial"],
        )


@strawberry.type(description="An anomaly alert: a flagged reading, or a sensor gone silent.")
class AnomalyAlert:
    id: strawberry.ID
    sensor_id: str
    sensor_type: str
    severity: str = strawberry.field(description="critical, high, medium or low")
    message: str
    timestamp: str = strawberry.field(description="ISO 8601, UTC, milliseconds")
    resolved: bool
    resolved_at: str | None
    value: float
    unit: str | None
    anomaly_score: float
    drone_serial: str | None
    kind: str = strawberry.field(description="jump, stuck, noise, drift or silence")

    @classmethod
    def of(cls, alert: TelemetryAlert) -> AnomalyAlert:
        return cls.from_public(alert.public_alert())

    @classmethod
    def from_public(cls, public: dict[str, Any]) -> AnomalyAlert:
        return cls(
            id=strawberry.ID(public["id"]),
            sensor_id=public["sensor_id"],
            sensor_type=public["sensor_type"],
            severity=public["severity"],
            message=public["message"],
            timestamp=public["timestamp"],
            resolved=public["resolved"],
            resolved_at=public["resolved_at"],
            value=public["value"],
            unit=public["unit"],
            anomaly_score=public["anomaly_score"],
            drone_serial=public["drone_serial"],
            kind=public["kind"],
        )


class GraphQLContext(BaseContext):
    """Who is asking. Over HTTP the bearer token says it before any GraphQL runs; over the
    WebSocket, `connection_init` does (`on_ws_connect`), and `principal` is set then."""

    def __init__(self, principal: Principal | None) -> None:
        super().__init__()
        self.principal = principal
        self.connection_params: dict[str, Any] | None = None

    @property
    def who(self) -> Principal:
        if self.principal is None:  # strawberry runs nothing before connection_ack
            raise GraphQLError("not authenticated", extensions={"code": "UNAUTHENTICATED"})
        return self.principal

    @property
    def connection(self) -> HTTPConnection:
        assert self.request is not None  # strawberry sets it before any resolver runs
        return self.request

    @property
    def feed(self) -> TelemetryFeed:
        feed: TelemetryFeed = self.connection.app.state.telemetry_feed
        return feed


Info = strawberry.Info[GraphQLContext, None]
Since = Annotated[str | None, strawberry.argument(description="timestamp >= since (ISO 8601)")]
Until = Annotated[str | None, strawberry.argument(description="timestamp <= until (ISO 8601)")]
Limit = Annotated[int, strawberry.argument(description="1 to 500")]


@strawberry.type
class Query:
    @strawberry.field(description="Readings, newest first, of the drones the token may see.")
    async def sensor_data(
        self,
        info: Info,
        sensor_id: str | None = None,
        sensor_type: str | None = None,
        location: str | None = None,
        drone_serial: str | None = None,
        is_anomaly: bool | None = None,
        since: Since = None,
        until: Until = None,
        limit: Limit = 50,
        offset: int = 0,
    ) -> list[SensorReading]:
        args = _validated(
            _ReadingArgs,
            sensor_id=sensor_id,
            sensor_type=sensor_type,
            location=location,
            drone_serial=drone_serial,
            is_anomaly=is_anomaly,
            since=since,
            until=until,
            limit=limit,
            offset=offset,
        )
        readings, _ = await telemetry_service.find(
            info.context.who, ReadingFilters(**args.values()), args.limit, args.offset
        )
        return [SensorReading.of(reading) for reading in readings]

    @strawberry.field(description="Anomaly alerts, newest first, of the drones the token may see.")
    async def anomaly_alerts(
        self,
        info: Info,
        severity: Annotated[
            str | None, strawberry.argument(description="critical, high, medium or low")
        ] = None,
        resolved: bool | None = None,
        sensor_id: str | None = None,
        drone_serial: str | None = None,
        since: Since = None,
        until: Until = None,
        limit: Limit = 50,
        offset: int = 0,
    ) -> list[AnomalyAlert]:
        args = _validated(
            _AlertArgs,
            severity=severity,
            resolved=resolved,
            sensor_id=sensor_id,
            drone_serial=drone_serial,
            since=since,
            until=until,
            limit=limit,
            offset=offset,
        )
        alerts, _ = await telemetry_service.find_alerts(
            info.context.who, AlertFilters(**args.values()), args.limit, args.offset
        )
        return [AnomalyAlert.of(alert) for alert in alerts]


class _LiveReadingArgs(BaseModel):
    sensor_id: SerialArg | None = None
    sensor_type: LabelArg | None = None
    drone_serial: SerialArg | None = None
    is_anomaly: bool | None = None


class _LiveAlertArgs(BaseModel):
    severity: Severity | None = None
    sensor_id: SerialArg | None = None
    drone_serial: SerialArg | None = None


def _live_args(model: type[BaseModel], **values: Any) -> Any:
    try:
        return model(**values)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(to_camel(str(part)) for part in error['loc'])}: {error['msg']}"
            for error in exc.errors()[:5]
        ]
        raise GraphQLError("; ".join(problems), extensions={"code": "BAD_USER_INPUT"}) from None


def _matches(item: dict[str, Any], principal: Principal, wanted: dict[str, Any]) -> bool:
    """In the caller's scope, and equal to each filter it gave."""
    if principal.drones is not None and item.get("drone_serial") not in principal.drones:
        return False
    return all(value is None or item.get(field) == value for field, value in wanted.items())


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="Each reading as it is judged, of the drones the token may see."
    )
    async def sensor_data(
        self,
        info: Info,
        sensor_id: str | None = None,
        sensor_type: str | None = None,
        drone_serial: str | None = None,
        is_anomaly: bool | None = None,
    ) -> AsyncGenerator[SensorReading, None]:
        principal = info.context.who
        args = _live_args(
            _LiveReadingArgs,
            sensor_id=sensor_id,
            sensor_type=sensor_type,
            drone_serial=drone_serial,
            is_anomaly=is_anomaly,
        )
        wanted = args.model_dump()
        try:
            async for reading in info.context.feed.readings(
                lambda item: _matches(item, principal, wanted)
            ):
                yield SensorReading.from_public(reading)
        except TooSlow as exc:
            raise GraphQLError(str(exc), extensions={"code": "SLOW_CONSUMER"}) from None

    @strawberry.subscription(
        description="Each anomaly alert as it is raised (or resolved), of the drones the token "
        "may see."
    )
    async def anomaly_alerts(
        self,
        info: Info,
        severity: Annotated[
            str | None, strawberry.argument(description="critical, high, medium or low")
        ] = None,
        sensor_id: str | None = None,
        drone_serial: str | None = None,
    ) -> AsyncGenerator[AnomalyAlert, None]:
        principal = info.context.who
        args = _live_args(
            _LiveAlertArgs, severity=severity, sensor_id=sensor_id, drone_serial=drone_serial
        )
        wanted = args.model_dump(mode="json")
        try:
            async for alert in info.context.feed.alerts(
                lambda item: _matches(item, principal, wanted)
            ):
                yield AnomalyAlert.from_public(alert)
        except TooSlow as exc:
            raise GraphQLError(str(exc), extensions={"code": "SLOW_CONSUMER"}) from None


# --- schema and router ------------------------------------------------------------------------


def _unexpected(error: GraphQLError) -> bool:
    """A bug or an outage, not the client's mistake: masked in the response, logged here."""
    original = error.original_error
    return original is not None and not isinstance(original, GraphQLError | DroneCastError)


class _Schema(strawberry.Schema):
    async def execute(self, query: str | None, **kwargs: Any) -> Any:  # type: ignore[override]
        # Over HTTP (what `execute` serves) only queries: subscriptions go over the WebSocket,
        # and strawberry's multipart subscriptions over POST are not offered (a 400 says so).
        allowed: set[OperationType] = set(
            kwargs.pop("allowed_operation_types", None) or (OperationType.QUERY,)
        )
        allowed.discard(OperationType.SUBSCRIPTION)
        return await super().execute(query, allowed_operation_types=allowed, **kwargs)

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # strawberry logs every error with a traceback; the client's own mistakes are not ours.
        for error in errors:
            if _unexpected(error):
                log.error(
                    "graphql_error",
                    error=type(error.original_error).__name__,
                    detail=str(error.original_error),
                    path=error.path,
                )


schema = _Schema(
    query=Query,
    subscription=Subscription,
    # Factories: strawberry builds a fresh extension per request.
    extensions=[
        lambda: QueryDepthLimiter(max_depth=MAX_DEPTH),
        lambda: MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        lambda: MaskErrors(should_mask_error=_unexpected),
    ],
)


async def graphql_context(connection: HTTPConnection) -> GraphQLContext:
    """Over HTTP, what a REST read needs (a token with `read`: 401/403 before any GraphQL);
    a WebSocket says who it is in `connection_init` (`_Router.on_ws_connect`)."""
    if connection.scope["type"] == "websocket":
        return GraphQLContext(None)
    request = cast(Request, connection)
    principal = await current_principal(request, await bearer(request))
    principal.require(Action.READ)
    return GraphQLContext(principal)


def _ws_token(context: GraphQLContext) -> str | None:
    """The token of a subscription connection: in `connection_init`'s payload
    (`{"Authorization": "Bearer <token>"}` or `{"token": "<token>"}`), else the handshake's
    Authorization header or `?token=`."""
    params = context.connection_params or {}
    for key in ("Authorization", "authorization"):
        value = params.get(key)
        if isinstance(value, str) and value.lower().startswith("bearer "):
            return value[7:].strip()
    if isinstance(params.get("token"), str):
        return str(params["token"])
    header = context.connection.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return context.connection.query_params.get("token")


class _Router(GraphQLRouter[GraphQLContext, None]):
    async def on_ws_connect(self, context: GraphQLContext) -> UnsetType | dict[str, object] | None:
        """Authenticate a subscription connection as REST authenticates a request, and hold
        it to the connection limit per client; a refusal closes it with 4403 (the protocol's
        Forbidden)."""
        settings: Settings = context.connection.app.state.settings
        try:
            if not settings.auth_enabled:
                principal = ANONYMOUS_ADMIN
            else:
                token = _ws_token(context)
                if token is None:
                    raise ConnectionRejectionError({"error": "Unauthorized"})
                principal = verify_token(settings, token)
            principal.require(Action.READ)
        except DroneCastError as exc:
            raise ConnectionRejectionError({"error": type(exc).__name__}) from None
        limiter: RateLimiter = context.connection.app.state.rate_limiter
        if not limiter.allow(f"sub:{principal.sub}" if principal is not ANONYMOUS_ADMIN else "ws"):
            raise ConnectionRejectionError({"error": "RateLimited"})
        context.principal = principal
        return UNSET

    def decode_json(self, data: str | bytes) -> object:
        # strawberry fails (a 500) on a body that is not UTF-8, too deeply nested to decode, or
        # not an object.
        try:
            body = super().decode_json(data)
        except UnicodeDecodeError:
            raise GraphQLHTTPException(400, "request body is not UTF-8") from None
        except RecursionError:
            raise GraphQLHTTPException(400, "request body is nested too deeply") from None
        if not isinstance(body, dict):
            raise GraphQLHTTPException(400, 'the body must be a JSON object with a "query"')
        wrong = [
            name
            for name, kind in (("query", str), ("variables", dict), ("operationName", str))
            if body.get(name) is not None and not isinstance(body[name], kind)
        ]
        if wrong:
            raise GraphQLHTTPException(400, f"wrong type: {', '.join(wrong)}")
        return body

    async def run(self, *args: Any, **kwargs: Any) -> Any:
        # strawberry answers its own HTTP-level refusals (no query, not JSON) in plain text;
        # the API's are `{"error", "detail"}`, so hand them to its error handler.
        try:
            return await super().run(*args, **kwargs)
        except GraphQLHTTPException as exc:
            raise HTTPException(exc.status_code, exc.reason) from None


REQUEST_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["query"],
                "properties": {
                    "query": {"type": "string", "minLength": 1},
                    "variables": {"type": ["object", "null"]},
                    "operationName": {"type": ["string", "null"]},
                },
            }
        }
    },
}


async def graphiql() -> HTMLResponse:
    """GraphiQL: a static page; the queries it sends need a token like any other."""
    return graphiql_page()


def graphql_router(settings: Settings) -> APIRouter:
    """`POST /api/v1/graphql`, and GraphiQL on `GET` outside production."""
    router = _Router(
        schema,
        path=PATH,
        graphql_ide=None,
        allow_queries_via_get=False,
        context_getter=graphql_context,
        tags=["telemetry"],
        subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
    )
    # Queries go by POST only, subscriptions over the WebSocket: drop strawberry's GET route.
    router.routes = [
        route
        for route in router.routes
        if not isinstance(route, APIRoute) or route.methods == {"POST"}
    ]
    for route in router.routes:
        if isinstance(route, APIRoute):
            route.summary = "Run a GraphQL query (sensorData, anomalyAlerts)"
            route.openapi_extra = {"requestBody": REQUEST_BODY}  # strawberry reads the body
    if settings.environment != "production":
        router.add_api_route(
            PATH, graphiql, methods=["GET"], response_class=HTMLResponse, summary="GraphiQL"
        )
    return router
