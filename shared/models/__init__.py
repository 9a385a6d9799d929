from shared.models.alert import Alert
from shared.models.drone import Drone
from shared.models.presence import DevicePresence

DOCUMENT_MODELS: list[type] = [Drone, Alert, DevicePresence]

__all__ = ["DOCUMENT_MODELS", "Alert", "DevicePresence", "Drone"]
