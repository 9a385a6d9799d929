"""Request and response bodies for alerts (seed 000 field names, snake_case).

Bodies refuse fields they do not know (422), server-kept ones included, like every body of the
API. They accept every field seed 000's own clients send: a `timestamp` on each message, and
`alert_id`, `response: 1` and `image_received: 1` in the response and image bodies.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.drones.schemas import Serial, not_nullable
from shared.errors import InvalidInput
from shared.models.alert import AlertStatus, AlertType, Severity
from shared.schemas import UtcDatetime, time_window

AlertId = Annotated[str, Field(min_length=1, max_length=100, description="Server-made alert id")]
Score = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False, strict=True)]
Action = Annotated[str, Field(min_length=1, max_length=200)]
ImageUrl = Annotated[str, Field(min_length=1, max_length=2048)]
Text = Annotated[str, Field(max_length=2000)]


class LocationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lat: float = Field(ge=-90.0, le=90.0, allow_inf_nan=False, strict=True)
    lng: float = Field(ge=-180.0, le=180.0, allow_inf_nan=False, strict=True)


class AlertFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    alert_type: AlertType
    score: Score
    location: LocationIn
    description: Text | None = None
    image_url: ImageUrl | None = None
    severity: Severity | None = Field(
        None, description="critical|high|medium|low; derived from score when absent"
    )
    timestamp: UtcDatetime | None = Field(None, description="When it was seen; default: now")


class AlertCreate(AlertFields):
    """`POST /api/alerts`: a new alert, as its drone would raise it."""

    drone_id: Serial


class DroneAlertData(AlertFields):
    """`data` of a drone's `alert` message; `drone_id`, when given, must be the socket's own."""

    drone_id: Serial | None = None


class AlertResponseBody(BaseModel):
    """`PUT /api/alerts/{alert_id}/response`, and `data` of an application's `response`."""

    model_config = ConfigDict(extra="forbid")

    actions: list[Action] = Field(max_length=100)
    response: Literal[1] = Field(1, description="1: responded (the only value there is)")
    alert_id: AlertId | None = Field(None, description="May be sent; the path decides which alert")
    timestamp: UtcDatetime | None = Field(None, description="May be sent; not stored")


class ImageFields(BaseModel):
    """An image given by URL (kept as is), or as its bytes in base64 (stored, and served at
    `/uploads/...`): exactly one of the two."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"oneOf": [{"required": ["image_url"]}, {"required": ["image_data"]}]},
    )

    # May be left out, never null: the schema says so, and the validator refuses a null.
    image_url: ImageUrl | None = Field(
        None, description="Where the picture already is", json_schema_extra=not_nullable
    )
    image_data: str | None = Field(
        None,
        min_length=8,
        pattern=r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$",
        description="The picture itself, base64: JPEG, PNG or WebP (judged by its content), "
        "at most MAX_IMAGE_BYTES",
        json_schema_extra=not_nullable,
    )
    content_type: str | None = Field(
        None, max_length=100, description="Optional; the content decides the type"
    )

    @model_validator(mode="after")
    def _one_image(self) -> ImageFields:
        sent = {"image_url", "image_data"} & self.model_fields_set
        if len(sent) != 1:
            raise ValueError("give either image_url or image_data (base64), not both")
        if getattr(self, sent.pop()) is None:
            raise ValueError("the image may not be null")
        return self

    def image_bytes(self) -> bytes | None:
        """The decoded `image_data` (None when the image is a URL)."""
        if self.image_data is None:
            return None
        try:
            return base64.b64decode(self.image_data, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidInput("image_data is not valid base64") from exc


class AlertImageBody(ImageFields):
    """`PUT /api/alerts/{alert_id}/image` as JSON (the image's bytes can also be the body)."""

    image_received: Literal[1] = 1
    alert_id: AlertId | None = Field(None, description="May be sent; the path decides which alert")
    timestamp: UtcDatetime | None = Field(None, description="May be sent; not stored")


class LocationOut(BaseModel):
    lat: float
    lng: float


class AlertOut(BaseModel):
    alert_id: str
    alert_type: AlertType
    score: float
    image_url: str | None
    location: LocationOut
    drone_id: str
    timestamp: str
    response: int
    image_received: int
    actions: list[str]
    status: AlertStatus
    description: str | None
    severity: Severity


class AlertList(BaseModel):
    alerts: list[AlertOut]
    count: int = Field(description="Alerts in this page")
    total: int = Field(description="Alerts matching the filters")
    limit: int
    offset: int


class AlertFilters(BaseModel):
    status: AlertStatus | None = None
    drone_id: str | None = None
    alert_type: AlertType | None = None
    severity: Severity | None = None
    since: datetime | None = None
    until: datetime | None = None

    def query(self) -> dict[str, Any]:
        query: dict[str, Any] = {}
        for field in ("status", "drone_id", "alert_type", "severity"):
            value = getattr(self, field)
            if value is not None:
                query[field] = str(value)
        window = time_window(self.since, self.until)
        if window:
            query["timestamp"] = window
        return query


class Counts(BaseModel):
    total: int
    by_status: dict[str, int]
    by_type: dict[str, int]
    by_severity: dict[str, int]
    commands_pending: int


class ConnectionCounts(BaseModel):
    drones_online: int | None = Field(description="Drones online across every replica (presence)")
    drones: int = Field(description="Drone sockets open across every replica")
    applications: int = Field(description="Application sockets open across every replica")
    this_replica: dict[str, int]


class Stats(BaseModel):
    alerts: Counts | None = Field(description="null when MongoDB does not answer")
    connections: ConnectionCounts | None
    storage: dict[str, str] = Field(description="mongodb / redis: ok | unavailable")
