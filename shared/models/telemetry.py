"""The `telemetry` collection (seed 004's sensor data): one document per reading.

An anomaly alert is the flagged reading itself (`is_anomaly`, with `severity`, `message` and
`resolved`), not a second document: the reading, its verdict and the `telemetry.anomaly` event
in its outbox are one insert.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from beanie import Document
from pydantic import Field
from pymongo import ASCENDING, DESCENDING, IndexModel

from shared.models.alert import Severity
from shared.models.base import OutboxMixin, utcnow


def severity_for_z(z: float) -> Severity:
    """How far out a reading is, in standard deviations, as a severity."""
    if z >= 6.0:
        return Severity.CRITICAL
    if z >= 5.0:
        return Severity.HIGH
    if z >= 4.0:
        return Severity.MEDIUM
    return Severity.LOW


class TelemetryReading(OutboxMixin, Document):
    sensor_id: str
    sensor_type: str
    value: float
    unit: str | None = None
    location: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    timestamp: datetime  # when it was measured (the sender's, or when it arrived)
    drone_serial: str | None = None  # the drone it belongs to: scoping and event routing
    received_at: datetime = Field(default_factory=utcnow)
    is_anomaly: bool = False
    anomaly_score: float = 0.0
    # Only for anomalies.
    severity: Severity | None = None
    message: str | None = None
    resolved: bool = False
    resolved_at: datetime | None = None

    class Settings:
        name = "telemetry"
        use_revision = False
        # `_id` last in each sort key: the lists break timestamp ties by it, newest first.
        indexes = [
            # A sensor's history (anomaly detection) and the list filtered by sensor.
            IndexModel([("sensor_id", ASCENDING), ("timestamp", DESCENDING), ("_id", DESCENDING)]),
            # The anomaly alerts, open ones first.
            IndexModel(
                [("is_anomaly", ASCENDING), ("resolved", ASCENDING), ("timestamp", ASCENDING)]
            ),
            # A drone's readings (what a scoped token sees).
            IndexModel(
                [("drone_serial", ASCENDING), ("timestamp", DESCENDING), ("_id", DESCENDING)]
            ),
            # The unfiltered list, newest first; "active in the last 5 minutes".
            IndexModel([("timestamp", DESCENDING), ("_id", DESCENDING)]),
            IndexModel([("received_at", DESCENDING)]),
            IndexModel([("outbox.timestamp", ASCENDING)], sparse=True),
        ]

    def public(self) -> dict[str, Any]:
        """The reading as clients see it (seed 004's sensor data fields plus ours)."""
        from shared.events import format_timestamp

        return {
            "id": str(self.id),
            "sensor_id": self.sensor_id,
            "sensor_type": self.sensor_type,
            "value": self.value,
            "unit": self.unit,
            "location": self.location,
            "metadata": self.metadata,
            "timestamp": format_timestamp(self.timestamp),
            "drone_serial": self.drone_serial,
            "received_at": format_timestamp(self.received_at),
            "is_anomaly": self.is_anomaly,
            "anomaly_score": self.anomaly_score,
            "severity": self.severity.value if self.severity else None,
            "message": self.message,
            "resolved": self.resolved,
            "resolved_at": format_timestamp(self.resolved_at) if self.resolved_at else None,
        }

    def public_alert(self) -> dict[str, Any]:
        """The reading as an anomaly alert (seed 004's `anomalyAlerts` fields plus context)."""
        from shared.events import format_timestamp

        return {
            "id": str(self.id),
            "sensor_id": self.sensor_id,
            "severity": self.severity.value if self.severity else None,
            "message": self.message,
            "timestamp": format_timestamp(self.timestamp),
            "resolved": self.resolved,
            "resolved_at": format_timestamp(self.resolved_at) if self.resolved_at else None,
            "value": self.value,
            "unit": self.unit,
            "anomaly_score": self.anomaly_score,
            "sensor_type": self.sensor_type,
            "location": self.location,
            "drone_serial": self.drone_serial,
        }
