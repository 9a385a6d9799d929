"""DroneCast's Python client: REST, live events, drone and application sockets.

Every client comes in two forms with the same methods: `AsyncX` for asyncio code, `X` for
plain blocking code (it runs the async one on a loop of its own in a thread).

- `AsyncClient` / `Client`: the REST API (drones, alerts, processing tasks, telemetry).
- `AsyncEventsClient` / `EventsClient`: live events over Socket.IO, resumed after reconnects.
- `AsyncDroneClient` / `DroneClient`, `AsyncApplicationClient` / `ApplicationClient`: the
  device sockets.
- `dronecast_client.simulator`: a simulated fleet built on the above (`dronecast simulate`).
"""

from dronecast_client.devices import (
    ApplicationClient,
    AsyncApplicationClient,
    AsyncDroneClient,
    DroneClient,
)
from dronecast_client.errors import (
    APIError,
    BadRequest,
    ClientClosed,
    Conflict,
    ConnectionLost,
    DroneCastError,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServerError,
    ServiceUnavailable,
    TransportError,
    Unauthorized,
    UnsupportedMediaType,
    ValidationError,
)
from dronecast_client.events import AsyncEventsClient, EventsClient
from dronecast_client.models import (
    AcceptedReading,
    Alert,
    AlertEvent,
    AlertUpdate,
    AnomalyAlert,
    Command,
    DeviceError,
    DeviceMessage,
    Drone,
    DroneEvent,
    Event,
    EventsLost,
    Page,
    ProcessingResultReceived,
    ProcessingTask,
    Reading,
    Resumed,
    ServerNotice,
    SlowConsumer,
    Snapshot,
    SystemEvent,
    Task,
    TaskAccepted,
    TaskCancelled,
    TaskEvent,
    TaskResult,
    TaskStatusUpdate,
)
from dronecast_client.rest import AsyncClient, Client

__version__ = "0.1.0"

__all__ = [
    "APIError",
    "AcceptedReading",
    "Alert",
    "AlertEvent",
    "AlertUpdate",
    "AnomalyAlert",
    "ApplicationClient",
    "AsyncApplicationClient",
    "AsyncClient",
    "AsyncDroneClient",
    "AsyncEventsClient",
    "BadRequest",
    "Client",
    "ClientClosed",
    "Command",
    "Conflict",
    "ConnectionLost",
    "DeviceError",
    "DeviceMessage",
    "Drone",
    "DroneCastError",
    "DroneClient",
    "DroneEvent",
    "Event",
    "EventsClient",
    "EventsLost",
    "Forbidden",
    "NotFound",
    "Page",
    "PayloadTooLarge",
    "ProcessingResultReceived",
    "ProcessingTask",
    "RateLimited",
    "Reading",
    "Resumed",
    "ServerError",
    "ServerNotice",
    "ServiceUnavailable",
    "SlowConsumer",
    "Snapshot",
    "SystemEvent",
    "Task",
    "TaskAccepted",
    "TaskCancelled",
    "TaskEvent",
    "TaskResult",
    "TaskStatusUpdate",
    "TransportError",
    "Unauthorized",
    "UnsupportedMediaType",
    "ValidationError",
]
