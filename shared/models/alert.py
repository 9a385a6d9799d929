"""The `alerts` collection (seed 000's schema, snake_case), plus `severity` and the command that
an application's response leaves for the drone.

The command lives in the alert itself, so the response and the command it creates are one
single-document write: a command can only exist for a responded alert, and never without it.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from beanie import Document
from pydantic import BaseModel, Field
from pymongo import ASCENDING, DESCENDING, IndexModel

from shared.models.base import OutboxMixin, utcnow


class AlertType(StrEnum):
    INTRUSION = "intrusion"
    FIRE = "fire"
    ACCIDENT = "accident"
    SECURITY_BREACH = "security_breach"
    ENVIRONMENTAL = "environmental"
    OTHER = "other"


class AlertStatus(StrEnum):
    PENDING = "pending"
    RESPONDED = "responded"
    COMPLETED = "completed"


class Severity(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class CommandState(StrEnum):
    PENDING = "pending"  # waiting for the drone's socket, on whichever replica it connects to
    DELIVERED = "delivered"  # claimed by one connection and written to its socket


def severity_for_score(score: float) -> Severity:
    if score >= 0.9:
        return Severity.CRITICAL
    if score >= 0.7:
        return Severity.HIGH
    if score >= 0.4:
        return Severity.MEDIUM
    return Severity.LOW


class Location(BaseModel):
    lat: float
    lng: float


class Alert(OutboxMixin, Document):
    alert_id: str
    alert_type: AlertType
    score: float
    image_url: str | None = None
    location: Location
    drone_id: str
    timestamp: datetime
    response: int = 0
    image_received: int = 0
    actions: list[str] = Field(default_factory=list)
    status: AlertStatus = AlertStatus.PENDING
    description: str | None = None
    severity: Severity
    # Server-kept, not part of the public schema.
    created_at: datetime = Field(default_factory=utcnow)
    responded_at: datetime | None = None
    completed_at: datetime | None = None
    command_state: CommandState | None = None
    command_session: str | None = None  # the drone connection that received the command
    command_delivered_at: datetime | None = None

    class Settings:
        name = "alerts"
        use_revision = False
        indexes = [
            IndexModel([("alert_id", ASCENDING)], unique=True),
            IndexModel([("drone_id", ASCENDING), ("timestamp", DESCENDING)]),
            IndexModel([("status", ASCENDING), ("timestamp", DESCENDING)]),
            IndexModel([("alert_type", ASCENDING)]),
            IndexModel([("severity", ASCENDING)]),
            IndexModel([("timestamp", DESCENDING)]),
            IndexModel(
                [("drone_id", ASCENDING), ("command_state", ASCENDING), ("responded_at", ASCENDING)]
            ),
            IndexModel([("outbox.timestamp", ASCENDING)], sparse=True),
        ]

    def public(self) -> dict[str, Any]:
        """The alert as clients see it: seed 000's fields plus `severity`."""
        from shared.events import format_timestamp

        return {
            "alert_id": self.alert_id,
            "alert_type": self.alert_type.value,
            "score": self.score,
            "image_url": self.image_url,
            "location": {"lat": self.location.lat, "lng": self.location.lng},
            "drone_id": self.drone_id,
            "timestamp": format_timestamp(self.timestamp),
            "response": self.response,
            "image_received": self.image_received,
            "actions": list(self.actions),
            "status": self.status.value,
            "description": self.description,
            "severity": self.severity.value,
        }
