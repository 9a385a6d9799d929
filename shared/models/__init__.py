from shared.models.alert import Alert
from shared.models.drone import Drone
from shared.models.image import ImageChunk, ImageFile
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
    ImageFile,
    ImageChunk,
]

__all__ = [
    "DOCUMENT_MODELS",
    "Alert",
    "DevicePresence",
    "Drone",
    "ImageChunk",
    "ImageFile",
    "ProcessingResult",
    "ProcessingTask",
    "RoutingLease",
    "TelemetryReading",
]
