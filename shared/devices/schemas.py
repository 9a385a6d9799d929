"""Device WebSocket messages (seed 000 formats; SPEC §4 for what the seed leaves open).

Drone -> server: `alert`, `image`, `ping`, `pong`.
Application -> server: `response`, `ping`, `pong`.
Server -> device: `connection_established`, `ack`, `command`, `alert_update`, `ping`, `pong`,
`error`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from shared.alerts.schemas import (
    AlertId,
    AlertResponseBody,
    DroneAlertData,
    ImageFields,
    UtcDatetime,
)
from shared.events import format_timestamp, iso_now
from shared.models import Alert


class AlertFrame(BaseModel):
    """`{"type": "alert", "data": {alert_type, score, location, drone_id, description}}`"""

    model_config = ConfigDict(extra="forbid")
    type: Literal["alert"]
    data: DroneAlertData


class ResponseFrame(BaseModel):
    """`{"type": "response", "alert_id": "...", "data": {"actions": [...], "response": 1}}`"""

    model_config = ConfigDict(extra="forbid")
    type: Literal["response"]
    alert_id: AlertId
    data: AlertResponseBody


class ImageData(ImageFields):
    alert_id: AlertId
    timestamp: UtcDatetime | None = None  # seed 000's drone sends it; not stored


class ImageFrame(BaseModel):
    """`{"type": "image", "data": {"alert_id": "...", "image_url": "..."}}`, or with
    `image_data` (base64) instead of `image_url`."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["image"]
    data: ImageData


def describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors()[:5]:
        where = ".".join(str(part) for part in item.get("loc", ()))
        parts.append(f"{where}: {item['msg']}" if where else str(item["msg"]))
    return "; ".join(parts)


def error_message(error: str, detail: str, message_type: str | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "error", "error": error, "detail": detail}
    if message_type is not None:
        message["message_type"] = message_type
    return message


def ack_message(for_type: str, alert: Alert) -> dict[str, Any]:
    return {"type": "ack", "for": for_type, "alert_id": alert.alert_id, "data": alert.public()}


def command_message(alert: Alert) -> dict[str, Any]:
    """What a drone receives after an application responded to its alert."""
    return {
        "type": "command",
        "alert_id": alert.alert_id,
        "actions": list(alert.actions),
        "timestamp": format_timestamp(alert.responded_at or alert.timestamp),
    }


def ping_message() -> dict[str, Any]:
    return {"type": "ping", "timestamp": iso_now()}


def pong_message() -> dict[str, Any]:
    return {"type": "pong", "timestamp": iso_now()}


def welcome_message(
    kind: str, device_id: str, session: str, ping_interval: float, heartbeat_timeout: float
) -> dict[str, Any]:
    return {
        "type": "connection_established",
        "client_type": kind,
        "client_id": device_id,
        "session": session,
        "ping_interval": ping_interval,
        "heartbeat_timeout": heartbeat_timeout,
        "timestamp": iso_now(),
    }
