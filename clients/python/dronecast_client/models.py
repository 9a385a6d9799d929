"""Typed views of what DroneCast sends: REST resources, live events, device messages.

Every model keeps fields it does not know (`extra="allow"`), so a newer server never breaks an
older client. Drones use the API's camelCase on the wire and snake_case in Python.
"""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import AliasChoices, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

T = TypeVar("T")


class Model(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


# --- REST resources ---------------------------------------------------------------------------


class Drone(Model):
    model_config = ConfigDict(extra="allow", populate_by_name=True, alias_generator=to_camel)

    id: str
    device_serial_number: str
    device_name: str | None = None
    device_category: str | None = None
    stream_is_on: bool = False
    ai_detection_enabled: bool = False
    detection_classes: list[int] = Field(default_factory=list)
    online: bool = False
    last_seen_at: str | None = None
    created_at: str | None = None
    updated_at: str | None = None

    @property
    def serial(self) -> str:
        return self.device_serial_number


class Location(Model):
    lat: float
    lng: float


class Alert(Model):
    alert_id: str
    alert_type: str
    score: float
    image_url: str | None = None
    location: Location
    drone_id: str
    timestamp: str
    response: int = 0
    image_received: int = 0
    actions: list[str] = Field(default_factory=list)
    status: str
    description: str | None = None
    severity: str | None = None


class Task(Model):
    task_id: str
    app_id: str
    drone_id: str
    task_type: str
    input_data: dict[str, Any] = Field(default_factory=dict)
    status: str
    priority: int = 3
    created_at: str | None = None
    updated_at: str | None = None
    error_message: str | None = None
    attempts: int = 0
    deadline_at: str | None = None
    dispatched_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None

    @property
    def final(self) -> bool:
        return self.status in FINAL_TASK_STATUSES


FINAL_TASK_STATUSES = frozenset({"completed", "failed", "cancelled"})


class TaskResult(Model):
    result_id: str
    task_id: str
    drone_id: str
    app_id: str | None = None
    result_data: dict[str, Any] = Field(default_factory=dict)
    processing_time: float | None = None
    success: bool = True
    error_message: str | None = None
    timestamp: str | None = None
    late: bool = False


class AcceptedReading(Model):
    """What `send_readings` answers for each reading: it is durable, and its verdict (stored
    reading, anomaly alert, `telemetry.anomaly` event) follows within moments."""

    id: str
    sensor_id: str
    drone_serial: str | None = None
    timestamp: str
    received_at: str | None = None
    status: str = "accepted"


class Reading(Model):
    """A sensor reading as stored (with the server's verdict)."""

    id: str
    sensor_id: str
    sensor_type: str
    value: float
    unit: str | None = None
    location: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    timestamp: str
    drone_serial: str | None = None
    is_anomaly: bool = False
    anomaly_score: float = 0.0
    anomaly_kind: str | None = None
    severity: str | None = None
    message: str | None = None
    resolved: bool = False


class AnomalyAlert(Model):
    id: str
    sensor_id: str
    severity: str
    message: str
    timestamp: str
    resolved: bool = False
    value: float | None = None
    unit: str | None = None
    anomaly_score: float | None = None
    sensor_type: str | None = None
    drone_serial: str | None = None


class Page(Model, Generic[T]):
    """One page of a list: `items`, and `total` matching the filters."""

    items: list[T]
    count: int
    total: int | None = None
    limit: int | None = None
    offset: int | None = None


# --- live events (Socket.IO) ------------------------------------------------------------------


class Event(Model):
    """One event envelope. `id` orders every event of the system; resume from the last one."""

    id: str
    event: str
    serial: str | None = None
    timestamp: str
    data: dict[str, Any] = Field(default_factory=dict)
    channel: str = Field("drone:event", exclude=True, description="the Socket.IO event name")

    @property
    def full(self) -> dict[str, Any] | None:
        """The resource as it now is (drone, alert), when the event carries it."""
        full = self.data.get("full")
        return full if isinstance(full, dict) else None

    @property
    def changes(self) -> dict[str, dict[str, Any]]:
        """Field -> {"old", "new"} for an update."""
        changes = self.data.get("changes")
        return changes if isinstance(changes, dict) else {}


class DroneEvent(Event):
    """`drone:event`: drone.created|updated|deleted|stream.status|..., online, offline."""


class AlertEvent(Event):
    """`alert:event`: alert.created|responded|completed and telemetry.anomaly."""


class TaskEvent(Event):
    """`task:event`: task.created|dispatched|status|completed|failed."""


class SystemEvent(Event):
    """`system:event`: system.broadcast."""


EVENT_TYPES: dict[str, type[Event]] = {
    "drone:event": DroneEvent,
    "alert:event": AlertEvent,
    "task:event": TaskEvent,
    "system:event": SystemEvent,
}


class Snapshot(Model):
    """A drone's current state, sent first when subscribing with `snapshot=True`."""

    serial: str
    event_id: str | None = Field(None, validation_alias=AliasChoices("eventId", "event_id"))
    state: dict[str, Any] | None = None


class EventsLost(Model):
    """Some events could not be delivered (outside the replay window, or the bus lost them):
    reload the state you keep over REST."""

    detail: str
    after: str | None = Field(None, description="the last event id received before the gap")


class SlowConsumer(Model):
    """The server cut this client off because it read too slowly. The client reconnects and
    resumes by itself; this says it happened."""

    detail: str


class Resumed(Model):
    """After a reconnect: subscriptions are back, and `replayed` missed events follow."""

    replayed: int = 0
    after: str | None = None


class ServerNotice(Model):
    """Any other `error` the server sent on the event stream."""

    error: str
    detail: str = ""


StreamItem = Event | Snapshot | EventsLost | SlowConsumer | Resumed | ServerNotice


# --- device sockets ---------------------------------------------------------------------------


class DeviceMessage(Model):
    type: str


class Command(DeviceMessage):
    """To a drone, after an application responded to its alert."""

    type: Literal["command"] = "command"
    alert_id: str
    actions: list[str] = Field(default_factory=list)
    timestamp: str | None = None


class ProcessingTask(DeviceMessage):
    """To a drone: a task dispatched to it."""

    type: Literal["processing_task"] = "processing_task"
    task_id: str
    task_data: dict[str, Any] = Field(default_factory=dict)
    timestamp: str | None = None

    @property
    def task_type(self) -> str:
        return str(self.task_data.get("task_type", ""))

    @property
    def input_data(self) -> dict[str, Any]:
        data = self.task_data.get("input_data")
        return data if isinstance(data, dict) else {}


class TaskCancelled(DeviceMessage):
    type: Literal["task_cancelled"] = "task_cancelled"
    task_id: str
    reason: str | None = None
    timestamp: str | None = None


class AlertUpdate(DeviceMessage):
    """To applications: an alert was created, responded to, or completed."""

    type: Literal["alert_update"] = "alert_update"
    id: str | None = None
    event: str
    data: Alert


class TaskStatusUpdate(DeviceMessage):
    """To the task's application."""

    type: Literal["task_status_update"] = "task_status_update"
    task_id: str
    status: str
    drone_id: str | None = None
    additional_data: dict[str, Any] = Field(default_factory=dict)
    timestamp: str | None = None


class ProcessingResultReceived(DeviceMessage):
    """To the task's application: the drone's result."""

    type: Literal["processing_result_received"] = "processing_result_received"
    result_id: str
    task_id: str
    result_data: dict[str, Any] = Field(default_factory=dict)
    drone_id: str | None = None
    app_id: str | None = None
    success: bool = True
    error_message: str | None = None
    processing_time: float | None = None
    timestamp: str | None = None
    late: bool = False


class DeviceError(DeviceMessage):
    """An `error` the server sent without being asked (e.g. `EventsLost`)."""

    type: Literal["error"] = "error"
    error: str
    detail: str = ""
    message_type: str | None = None


class Ack(DeviceMessage):
    type: Literal["ack"] = "ack"
    for_: str = Field(alias="for")


class TaskAccepted(Model):
    """An application's `processing_task` was stored: its id and the deadline that applies."""

    task_id: str
    status: str = "pending"
    deadline_at: str | None = None
    task: Task | None = None


class UnknownMessage(DeviceMessage):
    """A message type this client does not know (a newer server)."""


_DEVICE_TYPES: dict[str, type[DeviceMessage]] = {
    "command": Command,
    "processing_task": ProcessingTask,
    "task_cancelled": TaskCancelled,
    "alert_update": AlertUpdate,
    "task_status_update": TaskStatusUpdate,
    "processing_result_received": ProcessingResultReceived,
    "error": DeviceError,
    "ack": Ack,
}


def parse_device_message(raw: dict[str, Any]) -> DeviceMessage:
    cls = _DEVICE_TYPES.get(str(raw.get("type")), UnknownMessage)
    return cls.model_validate(raw)
