from shared.models.drone import Drone

DOCUMENT_MODELS: list[type] = [Drone]

__all__ = ["DOCUMENT_MODELS", "Drone"]
