"""What the server does with each message a device sends. Every outcome is a reply: an `ack`,
a `pong`, or an `error` that leaves the socket open and the data unchanged."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from pydantic import ValidationError

from services.api.alerts.schemas import AlertImageBody
from services.api.alerts.service import alert_service
from services.api.devices.connection import Connection, DeviceKind
from services.api.devices.schemas import (
    AlertFrame,
    ImageFrame,
    ResponseFrame,
    ack_message,
    describe,
    error_message,
    pong_message,
)
from shared.broker import Broker
from shared.errors import DroneCastError, Forbidden

Reply = dict[str, Any] | None
Handler = Callable[[Broker, Connection, dict[str, Any]], Awaitable[Reply]]


async def on_alert(broker: Broker, connection: Connection, raw: dict[str, Any]) -> Reply:
    frame = AlertFrame.model_validate(raw)
    claimed = frame.data.drone_id
    if claimed is not None and claimed != connection.device_id:
        raise Forbidden(
            f"drone '{connection.device_id}' may not raise alerts for drone '{claimed}'"
        )
    alert = await alert_service.create(
        broker, connection.principal, frame.data, connection.device_id
    )
    return ack_message("alert", alert)


async def on_image(broker: Broker, connection: Connection, raw: dict[str, Any]) -> Reply:
    frame = ImageFrame.model_validate(raw)
    alert = await alert_service.attach_image(
        broker,
        connection.principal,
        frame.data.alert_id,
        AlertImageBody(image_url=frame.data.image_url),
        as_drone=connection.device_id,
    )
    return ack_message("image", alert)


async def on_response(broker: Broker, connection: Connection, raw: dict[str, Any]) -> Reply:
    frame = ResponseFrame.model_validate(raw)
    alert = await alert_service.respond(broker, connection.principal, frame.alert_id, frame.data)
    return ack_message("response", alert)


async def on_ping(broker: Broker, connection: Connection, raw: dict[str, Any]) -> Reply:
    return pong_message()


async def on_pong(broker: Broker, connection: Connection, raw: dict[str, Any]) -> Reply:
    connection.heartbeat_tracked = True  # it answers pings: silence now means half-open
    return None


HANDLERS: dict[DeviceKind, dict[str, Handler]] = {
    DeviceKind.DRONE: {"alert": on_alert, "image": on_image, "ping": on_ping, "pong": on_pong},
    DeviceKind.APPLICATION: {"response": on_response, "ping": on_ping, "pong": on_pong},
}


async def handle_frame(broker: Broker, connection: Connection, text: str) -> Reply:
    try:
        raw = orjson.loads(text)
    except orjson.JSONDecodeError:
        return error_message("BadRequest", "the frame is not valid JSON")
    if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
        return error_message("BadRequest", 'a message is a JSON object with a string "type"')
    message_type: str = raw["type"]
    handlers = HANDLERS[connection.kind]
    handler = handlers.get(message_type)
    if handler is None:
        return error_message(
            "UnknownMessageType",
            f"'{message_type[:50]}' is not a message a {connection.kind.value} may send "
            f"(expected one of: {', '.join(sorted(handlers))})",
        )
    try:
        return await handler(broker, connection, raw)
    except ValidationError as exc:
        return error_message("ValidationError", describe(exc), message_type)
    except DroneCastError as exc:
        return error_message(exc.error, exc.detail, message_type)
