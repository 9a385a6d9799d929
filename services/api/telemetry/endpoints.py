"""Telemetry over REST (seed 004): `/api/v1/sensors/…` and `/api/v1/monitoring/…`.

Seed 004 serves these under `/api/v1` only, so there are no other paths. Its GraphQL endpoint,
`/api/v1/graphql`, is `graphql.py`, over the same service.
"""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, Query, Response
from fastapi.responses import JSONResponse

from services.api.deps import BrokerDep, PageDep, RuntimeDep, SettingsDep
from services.api.security import CanRead, CanRespond, CanSendTelemetry
from shared.drones.schemas import SERIAL_PATTERN
from shared.models.alert import Severity
from shared.probes import prometheus_exposition, readiness
from shared.schemas import IsoDatetime
from shared.telemetry.schemas import (
    AcceptedReading,
    AlertFilters,
    AnomalyAlertList,
    AnomalyAlertOut,
    MonitoringStats,
    ReadingFilters,
    ReadingList,
    ReadingOrBatch,
)
from shared.telemetry.service import telemetry_service

_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such anomaly alert (or not one the token may see)"},
    409: {"description": "Already resolved"},
    422: {"description": "Invalid body"},
}

SensorIdQuery = Annotated[str | None, Query(pattern=SERIAL_PATTERN)]
DroneQuery = Annotated[str | None, Query(pattern=SERIAL_PATTERN)]
LabelQuery = Annotated[str | None, Query(min_length=1, max_length=200)]
Since = Annotated[IsoDatetime | None, Query(description="timestamp >= since (ISO 8601)")]
Until = Annotated[IsoDatetime | None, Query(description="timestamp <= until (ISO 8601)")]


async def send_sensor_data(
    body: Annotated[
        ReadingOrBatch,
        Body(description="One reading, or a list of up to 500 stored in order"),
    ],
    broker: BrokerDep,
    settings: SettingsDep,
    principal: CanSendTelemetry,
) -> Any:
    """Take readings onto the bus: a 202 means the whole batch is durable (or none of it is
    taken). Each is then judged on its own timestamp and stored; an anomaly is published as
    `telemetry.anomaly` (Socket.IO `alert:event`). A list is answered with a list."""
    bodies = body if isinstance(body, list) else [body]
    accepted = await telemetry_service.ingest(broker, settings, principal, bodies)
    # Written directly: the service built exactly the documented shape, and checking 500 of
    # them against the response model again would cost more than taking them did.
    return Response(
        orjson.dumps(accepted if isinstance(body, list) else accepted[0]),
        status_code=202,
        media_type="application/json",
    )


async def list_sensor_data(
    page: PageDep,
    principal: CanRead,
    sensor_id: SensorIdQuery = None,
    sensor_type: LabelQuery = None,
    location: LabelQuery = None,
    drone_serial: DroneQuery = None,
    is_anomaly: bool | None = None,
    since: Since = None,
    until: Until = None,
) -> dict[str, Any]:
    """Readings, newest first, filtered by sensor, type, location, drone, verdict and time."""
    filters = ReadingFilters(
        sensor_id=sensor_id,
        sensor_type=sensor_type,
        location=location,
        drone_serial=drone_serial,
        is_anomaly=is_anomaly,
        since=since,
        until=until,
    )
    readings, total = await telemetry_service.find(principal, filters, page.limit, page.offset)
    return page.body("readings", [reading.public() for reading in readings], total)


async def list_anomaly_alerts(
    page: PageDep,
    principal: CanRead,
    severity: Severity | None = None,
    resolved: bool | None = None,
    sensor_id: SensorIdQuery = None,
    drone_serial: DroneQuery = None,
    since: Since = None,
    until: Until = None,
) -> dict[str, Any]:
    """Anomaly alerts (a flagged reading, or a sensor gone silent), newest first."""
    filters = AlertFilters(
        severity=severity,
        resolved=resolved,
        sensor_id=sensor_id,
        drone_serial=drone_serial,
        since=since,
        until=until,
    )
    alerts, total = await telemetry_service.find_alerts(principal, filters, page.limit, page.offset)
    return page.body("alerts", [alert.public_alert() for alert in alerts], total)


async def resolve_anomaly_alert(
    alert_id: str, broker: BrokerDep, principal: CanRespond
) -> dict[str, Any]:
    """Mark the alert resolved (once: 409 after that) and publish `telemetry.anomaly` with its
    new state."""
    return (await telemetry_service.resolve(broker, principal, alert_id)).public_alert()


async def monitoring_stats(
    broker: BrokerDep, settings: SettingsDep, principal: CanRead
) -> dict[str, Any]:
    """Readings, anomalies and active sensors, of the drones the token may see."""
    return await telemetry_service.stats(broker, settings, principal)


async def monitoring_health(runtime: RuntimeDep, _: CanRead) -> JSONResponse:
    """What `/ready` checks, per component (503 when one fails)."""
    body, ok = await readiness(runtime, "api")
    body["components"] = {
        name: {"status": "ok" if up else "unavailable"} for name, up in body["checks"].items()
    }
    body["authEnabled"] = runtime.settings.auth_enabled
    body["warnings"] = runtime.warnings
    return JSONResponse(body, status_code=200 if ok else 503)


async def monitoring_metrics(broker: BrokerDep, settings: SettingsDep, _: CanRead) -> Response:
    """The Prometheus exposition of `/metrics`, `sensor_data_total` and the other sensor
    metrics included."""
    return await prometheus_exposition(
        [partial(telemetry_service.refresh_active_sensors, broker, settings)]
    )


router = APIRouter(prefix="/api/v1", tags=["telemetry"])
router.add_api_route(
    "/sensors/data",
    send_sensor_data,
    methods=["POST"],
    status_code=202,
    response_model=AcceptedReading | list[AcceptedReading],
    responses=_ERRORS,
)
router.add_api_route("/sensors/data", list_sensor_data, methods=["GET"], response_model=ReadingList)
router.add_api_route(
    "/sensors/alerts", list_anomaly_alerts, methods=["GET"], response_model=AnomalyAlertList
)
router.add_api_route(
    "/sensors/alerts/{alert_id}/resolve",
    resolve_anomaly_alert,
    methods=["PUT"],
    response_model=AnomalyAlertOut,
    responses=_ERRORS,
)
router.add_api_route(
    "/monitoring/stats", monitoring_stats, methods=["GET"], response_model=MonitoringStats
)
router.add_api_route(
    "/monitoring/health",
    monitoring_health,
    methods=["GET"],
    responses={503: {"description": "MongoDB or Redis does not answer, or draining"}},
)
router.add_api_route(
    "/monitoring/metrics",
    monitoring_metrics,
    methods=["GET"],
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
