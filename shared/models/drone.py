"""The `drones` collection (seed 001/002 field names, camelCase)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from beanie import Document
from pydantic import Field
from pymongo import ASCENDING, IndexModel

from shared.models.base import OutboxMixin, utcnow


class Drone(OutboxMixin, Document):
    deviceSerialNumber: str
    deviceName: str | None = None
    deviceCategory: str | None = None
    streamIsOn: bool = False
    aiDetectionEnabled: bool = False
    detectionClasses: list[int] = Field(default_factory=list)
    online: bool = False
    lastSeenAt: datetime | None = None
    createdAt: datetime = Field(default_factory=utcnow)
    updatedAt: datetime = Field(default_factory=utcnow)

    class Settings:
        name = "drones"
        use_revision = False
        indexes = [
            IndexModel([("deviceSerialNumber", ASCENDING)], unique=True),
            IndexModel([("createdAt", ASCENDING)]),
            IndexModel([("outbox.timestamp", ASCENDING)], sparse=True),
        ]

    def public(self) -> dict[str, Any]:
        """The drone as clients see it: REST bodies, `data.full`, snapshots."""
        from shared.events import format_timestamp

        return {
            "id": str(self.id),
            "deviceSerialNumber": self.deviceSerialNumber,
            "deviceName": self.deviceName,
            "deviceCategory": self.deviceCategory,
            "streamIsOn": self.streamIsOn,
            "aiDetectionEnabled": self.aiDetectionEnabled,
            "detectionClasses": list(self.detectionClasses),
            "online": self.online,
            "lastSeenAt": format_timestamp(self.lastSeenAt) if self.lastSeenAt else None,
            "createdAt": format_timestamp(self.createdAt),
            "updatedAt": format_timestamp(self.updatedAt),
        }
