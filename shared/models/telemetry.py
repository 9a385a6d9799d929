"""Telemetry documents: `telemetry` (seed 004's sensor data, one document per reading) and
`telemetryAlerts` (the anomaly alerts).

A reading is written once, by the consumer that judged it, with its verdict. An alert is its
own small document with the `telemetry.anomaly` event in its outbox: the alert of a flagged
reading has the reading's id; a silent sensor's alert has no reading. Readings expire after
`TELEMETRY_RETENTION` (a TTL index on `timestamp`, made at start-up from the setting).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from beanie import Document
from pydantic import Field
from pymongo import ASCENDING, DESCENDING, IndexModel

from shared.models.alert import Severity
from shared.models.base import OutboxMixin, utcnow

RETENTION_INDEX = "timestamp_ttl"


class TelemetryReading(Document):
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
    anomaly_kind: str | None = None
    severity: Severity | None = None
    message: str | None = None

    class Settings:
        name = "telemetry"
        use_revision = False
        # `_id` last in each sort key: the lists break timestamp ties by it, newest first. Each
        # list query is an equality on at most one of these prefixes plus a `timestamp` range.
        indexes = [
            # A sensor's history and the list filtered by sensor.
            IndexModel([("sensor_id", ASCENDING), ("timestamp", DESCENDING), ("_id", DESCENDING)]),
            # A drone's readings (what a scoped token sees).
            IndexModel(
                [("drone_serial", ASCENDING), ("timestamp", DESCENDING), ("_id", DESCENDING)]
            ),
            # The flagged readings (`is_anomaly=true`).
            IndexModel([("is_anomaly", ASCENDING), ("timestamp", DESCENDING), ("_id", DESCENDING)]),
            # The unfiltered list, newest first (the TTL index on `timestamp` is made at start).
            IndexModel([("timestamp", DESCENDING), ("_id", DESCENDING)]),
            # "Active in the last 5 minutes".
            IndexModel([("received_at", DESCENDING), ("sensor_id", ASCENDING)]),
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
            "anomaly_kind": self.anomaly_kind,
            "severity": self.severity.value if self.severity else None,
            "message": self.message,
        }


class TelemetryAlert(OutboxMixin, Document):
    """An anomaly alert: a flagged reading (same id) or a silent sensor (`kind` "silence")."""

    sensor_id: str
    sensor_type: str
    drone_serial: str | None = None
    location: str | None = None
    unit: str | None = None
    value: float  # the reading's, or the last one before the silence
    timestamp: datetime  # the reading's, or when the silence was noticed (event time)
    kind: str
    anomaly_score: float
    severity: Severity
    message: str
    resolved: bool = False
    resolved_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)

    class Settings:
        name = "telemetryAlerts"
        use_revision = False
        indexes = [
            IndexModel(
                [("resolved", ASCENDING), ("severity", ASCENDING), ("timestamp", DESCENDING)]
            ),
            IndexModel(
                [("drone_serial", ASCENDING), ("timestamp", DESCENDING), ("_id", DESCENDING)]
            ),
            IndexModel([("sensor_id", ASCENDING), ("timestamp", DESCENDING), ("_id", DESCENDING)]),
            IndexModel([("timestamp", DESCENDING), ("_id", DESCENDING)]),
            IndexModel([("outbox.timestamp", ASCENDING)], sparse=True),
        ]

    def public_alert(self) -> dict[str, Any]:
        """Seed 004's `anomalyAlerts` fields plus context."""
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
            "kind": self.kind,
        }
