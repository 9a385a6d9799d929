from shared.models.alert import Alert
from shared.models.base import OutboxMixin
from shared.models.drone import Drone
from shared.models.image import ImageChunk, ImageFile
from shared.models.presence import DevicePresence
from shared.models.task import ProcessingResult, ProcessingTask, RoutingLease
from shared.models.telemetry import TelemetryAlert, TelemetryReading

DOCUMENT_MODELS: list[type] = [
    Drone,
    Alert,
    DevicePresence,
    ProcessingTask,
    ProcessingResult,
    RoutingLease,
    TelemetryReading,
    TelemetryAlert,
    ImageFile,
    ImageChunk,
]
# The models whose documents carry an outbox: what the outbox relay looks through. Not the
# readings, which publish nothing and are many.
OUTBOX_MODELS: list[type] = [model for model in DOCUMENT_MODELS if issubclass(model, OutboxMixin)]

__all__ = [
    "DOCUMENT_MODELS",
    "OUTBOX_MODELS",
    "Alert",
    "DevicePresence",
    "Drone",
    "ImageChunk",
    "ImageFile",
    "ProcessingResult",
    "ProcessingTask",
    "RoutingLease",
    "TelemetryAlert",
    "TelemetryReading",
]
