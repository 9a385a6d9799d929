"""What the server does with each message a device sends. Every outcome is a reply: an `ack`,
a `pong`, or an `error` that leaves the socket open and the data unchanged."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from pydantic import ValidationError

from services.api.devices.connection import Connection, DeviceKind
from shared.alerts.service import alert_service
from shared.broker import Broker
from shared.devices.schemas import (
    AlertFrame,
    ImageFrame,
    ResponseFrame,
    ack_message,
    describe,
    error_message,
    pong_message,
)
from shared.errors import DroneCastError, Forbidden, InvalidInput
from shared.tasks.schemas import ResultReport, StatusReport, TaskCreate
from shared.tasks.service import task_service

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
    alert = await alert_service.attach(
        broker,
        connection.principal,
        frame.data.alert_id,
        frame.data,
        connection.settings.max_image_bytes,
        as_drone=connection.device_id,
    )
    return ack_message("image", alert)


async def on_response(broker: Broker, connection: Connection, raw: dict[str, Any]) -> Reply:
    frame = ResponseFrame.model_validate(raw)
    alert = await alert_service.respond(broker, connection.principal, frame.alert_id, frame.data)
    return ack_message("response", alert)


def _data(raw: dict[str, Any]) -> dict[str, Any]:
    data = raw.get("data")
    if not isinstance(data, dict):
        raise InvalidInput('"data" must be an object')
    return data


async def on_task_status(broker: Broker, connection: Connection, raw: dict[str, Any]) -> Reply:
    task = await task_service.report_status(
        broker, connection.device_id, StatusReport.model_validate(_data(raw))
    )
    return {
        "type": "ack",
        "for": "task_status_update",
        "task_id": task.task_id,
        "status": task.status.value,
    }


async def on_processing_result(
    broker: Broker, connection: Connection, raw: dict[str, Any]
) -> Reply:
    result, task = await task_service.report_result(
        broker, connection.device_id, ResultReport.model_validate(_data(raw))
    )
    return {
        "type": "ack",
        "for": "processing_result",
        "task_id": task.task_id,
        "result_id": str(result.id),
        "status": task.status.value,
        "late": result.late,
    }


async def on_processing_task(broker: Broker, connection: Connection, raw: dict[str, Any]) -> Reply:
    """An application creates a task; task_status_update and processing_result_received
    follow. The `ack` (with `task_id` and the `deadline_at` that applies) goes to clients that
    speak DroneCast's additions (`?welcome=1`): seed 003's application reads the first message
    after its task as the result, so it gets none."""
    data = dict(_data(raw))
    data.setdefault("app_id", connection.device_id)
    if data["app_id"] != connection.device_id:
        raise Forbidden(f"application '{connection.device_id}' may not create tasks as another")
    task = await task_service.create(
        broker,
        connection.principal,
        TaskCreate.model_validate(data),
        connection.settings.task_default_deadline_seconds,
    )
    if not connection.extended:
        return None
    public = task.public()
    return {
        "type": "ack",
        "for": "processing_task",
        "task_id": task.task_id,
        "status": public["status"],
        "deadline_at": public["deadline_at"],
        "task": public,
    }


async def on_ping(broker: Broker, connection: Connection, raw: dict[str, Any]) -> Reply:
    connection.extended = True
    return pong_message()


async def on_pong(broker: Broker, connection: Connection, raw: dict[str, Any]) -> Reply:
    connection.heartbeat_tracked = True  # it answers pings: silence now means half-open
    return None


HANDLERS: dict[DeviceKind, dict[str, Handler]] = {
    DeviceKind.DRONE: {
        "alert": on_alert,
        "image": on_image,
        "task_status_update": on_task_status,
        "processing_result": on_processing_result,
        "ping": on_ping,
        "pong": on_pong,
    },
    DeviceKind.APPLICATION: {
        "response": on_response,
        "processing_task": on_processing_task,
        "ping": on_ping,
        "pong": on_pong,
    },
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
