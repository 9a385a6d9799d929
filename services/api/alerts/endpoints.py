"""Alerts over REST (seed 000): `/api/v1/alerts…` and `/api/v1/stats`, and the seed's own
`/api/alerts…` and `/api/stats`, served by the same handlers."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from services.api.deps import BrokerDep, PageDep, RuntimeDep, SettingsDep
from services.api.devices.deps import DeviceHubDep
from services.api.security import CanRaiseAlerts, CanRead, CanReadByUrl, CanRespond
from shared.alerts.schemas import (
    AlertCreate,
    AlertFilters,
    AlertImageBody,
    AlertList,
    AlertOut,
    AlertResponseBody,
    Stats,
)
from shared.alerts.service import alert_service
from shared.drones.schemas import SERIAL_PATTERN
from shared.models.alert import AlertStatus, AlertType, Severity
from shared.schemas import IsoDatetime

_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such alert (or not one the token may see)"},
    409: {"description": "The alert is not in the state this needs"},
    422: {"description": "Invalid body"},
}


async def list_alerts(
    page: PageDep,
    principal: CanRead,
    status: AlertStatus | None = None,
    drone_id: Annotated[str | None, Query(pattern=SERIAL_PATTERN)] = None,
    alert_type: AlertType | None = None,
    severity: Severity | None = None,
    since: Annotated[IsoDatetime | None, Query(description="timestamp >= since (ISO 8601)")] = None,
    until: Annotated[IsoDatetime | None, Query(description="timestamp <= until (ISO 8601)")] = None,
) -> dict[str, Any]:
    """Alerts, newest first, filtered by status, drone, type, severity and time."""
    filters = AlertFilters(
        status=status,
        drone_id=drone_id,
        alert_type=alert_type,
        severity=severity,
        since=since,
        until=until,
    )
    alerts, total = await alert_service.find(principal, filters, page.limit, page.offset)
    return page.body("alerts", [alert.public() for alert in alerts], total)


async def create_alert(
    body: AlertCreate, broker: BrokerDep, principal: CanRaiseAlerts
) -> dict[str, Any]:
    """Store an alert as `pending` and tell every application (`alert_update`) and Socket.IO
    subscriber (`alert:event`, Redis `drone:{drone_id}:incident`)."""
    return (await alert_service.create(broker, principal, body, body.drone_id)).public()


async def get_alert(alert_id: str, principal: CanRead) -> dict[str, Any]:
    return (await alert_service.get(principal, alert_id)).public()


async def respond_to_alert(
    alert_id: str, body: AlertResponseBody, broker: BrokerDep, principal: CanRespond
) -> dict[str, Any]:
    """`pending -> responded`; the drone receives `{"type": "command", ...}` on whichever
    replica it is connected to, or when it next connects. 409 unless the alert is pending."""
    return (await alert_service.respond(broker, principal, alert_id, body)).public()


IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp")
# The paths whose bodies may be as large as a picture (MAX_IMAGE_BYTES), both prefixes.
IMAGE_UPLOAD_PATH = re.compile(r"/api(/v1)?/alerts/[^/]+/image")


async def attach_alert_image(
    alert_id: str,
    request: Request,
    broker: BrokerDep,
    settings: SettingsDep,
    principal: CanRaiseAlerts,
) -> dict[str, Any]:
    """`responded -> completed` with `image_received=1` and `image_url`. The body is the
    picture itself (`Content-Type: image/jpeg`, `image/png` or `image/webp`; the content
    decides which, and it is served at the returned `image_url`, `/uploads/...`), or JSON with
    `image_url` (a picture kept elsewhere) or `image_data` (base64). At most MAX_IMAGE_BYTES
    (413); anything but JPEG, PNG or WebP is a 415. 409 unless the alert is responded."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    data = await request.body()
    if media_type.startswith("image/") or media_type == "application/octet-stream":
        alert = await alert_service.upload_image(
            broker, principal, alert_id, data, settings.max_image_bytes
        )
    else:
        try:
            body = AlertImageBody.model_validate_json(data or b"null")
        except ValidationError as exc:
            raise RequestValidationError(exc.errors(include_url=False)) from exc
        alert = await alert_service.attach(
            broker, principal, alert_id, body, settings.max_image_bytes
        )
    return alert.public()


async def alert_image(filename: str, principal: CanReadByUrl) -> Response:
    """An alert's picture, as its `image_url` names it; for whoever may see the alert's drone
    (404 otherwise). The token may also be `?token=`, for an `<img src>`."""
    image = await alert_service.image(principal, filename)
    return Response(
        image.data,
        media_type=image.media_type,
        headers={
            "Cache-Control": "private, max-age=86400",
            "ETag": f'"{image.file_id}"',
            "X-Content-Type-Options": "nosniff",
        },
    )


async def system_stats(
    runtime: RuntimeDep, hub: DeviceHubDep, principal: CanRead
) -> dict[str, Any]:
    """Alerts by status, type and severity (of the drones the token may see); open device
    sockets across replicas; MongoDB and Redis status."""
    return await alert_service.stats(principal, runtime, hub)


_IMAGE_ERRORS: dict[int | str, dict[str, Any]] = {
    413: {"description": "Larger than MAX_IMAGE_BYTES"},
    415: {"description": "Not a JPEG, PNG or WebP picture"},
}
_IMAGE_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": AlertImageBody.model_json_schema()},
        **{kind: {"schema": {"type": "string", "format": "binary"}} for kind in IMAGE_TYPES},
    },
}


def _alert_router(prefix: str, tag: str, in_schema: bool) -> APIRouter:
    router = APIRouter(prefix=prefix, tags=[tag], include_in_schema=in_schema)
    router.add_api_route("/alerts", list_alerts, methods=["GET"], response_model=AlertList)
    router.add_api_route(
        "/alerts",
        create_alert,
        methods=["POST"],
        status_code=201,
        response_model=AlertOut,
        responses=_ERRORS,
    )
    router.add_api_route(
        "/alerts/{alert_id}",
        get_alert,
        methods=["GET"],
        response_model=AlertOut,
        responses=_ERRORS,
    )
    router.add_api_route(
        "/alerts/{alert_id}/response",
        respond_to_alert,
        methods=["PUT"],
        response_model=AlertOut,
        responses=_ERRORS,
    )
    router.add_api_route(
        "/alerts/{alert_id}/image",
        attach_alert_image,
        methods=["PUT"],
        response_model=AlertOut,
        responses={**_ERRORS, **_IMAGE_ERRORS},
        openapi_extra={"requestBody": _IMAGE_BODY},
    )
    router.add_api_route("/stats", system_stats, methods=["GET"], response_model=Stats)
    return router


router = _alert_router("/api/v1", "alerts", in_schema=True)
# Seed 000's paths, same handlers; left out of /docs so each operation is described once.
seed_router = _alert_router("/api", "alerts (seed 000 paths)", in_schema=False)

# Where stored alert images are served (the `image_url` of an alert whose picture was sent).
uploads_router = APIRouter(tags=["alerts"])
uploads_router.add_api_route(
    "/uploads/{filename}",
    alert_image,
    methods=["GET"],
    response_class=Response,
    responses={
        200: {"content": {kind: {} for kind in IMAGE_TYPES}, "description": "The picture"},
        404: {"description": "No such image (or not one the token may see)"},
    },
)
