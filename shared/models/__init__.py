from shared.models.alert import Alert
from shared.models.drone import Drone
from shared.models.presence import DevicePresence
from shared.models.task import ProcessingResult, ProcessingTask, RoutingLease
from shared.models.telemetry import TelemetryReading

DOCUMENT_MODELS: list[type] = [
    Drone,
    Alert,
    DevicePresence,
    ProcessingTask,
    ProcessingResult,
    RoutingLease,
    TelemetryReading,
]

__all__ = [
    "DOCUMENT_MODELS",
    "Alert",
    "DevicePresence",
    "Drone",
    "ProcessingResult",
    "ProcessingTask",
    "RoutingLease",
    "TelemetryReading",
]
