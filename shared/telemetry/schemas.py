"""Request and response bodies for telemetry (seed 004's "Sensor Data Format", snake_case).

A reading is seed 004's body exactly (`sensor_id`, `sensor_type`, `value`, `unit`, `location`,
`metadata`) plus an optional `timestamp` and `drone_serial`. Like every body of the API it
refuses unknown and server-kept fields (422). `value` must be a finite number, and `metadata` a
JSON object of at most 8 KB (serialized) and 8 levels that MongoDB stores as given.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Discriminator, Field, Tag

from shared.drones.schemas import SERIAL_PATTERN, Serial
from shared.models.alert import Severity
from shared.schemas import JsonObject, UtcDatetime, time_window

MAX_BATCH = 500
MAX_METADATA_BYTES = 8 * 1024
MAX_METADATA_DEPTH = 8

SensorId = Annotated[str, Field(pattern=SERIAL_PATTERN, description="1-64 of [A-Za-z0-9_.-]")]
Label = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\x00]*$")]
Unit = Annotated[str, Field(max_length=64, pattern=r"^[^\x00]*$")]
Place = Annotated[str, Field(max_length=200, pattern=r"^[^\x00]*$")]
Reading = Annotated[float, Field(allow_inf_nan=False, strict=True, ge=-1e308, le=1e308)]


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(child) for child in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(child) for child in value), default=0)
    return 0


def _small(metadata: dict[str, Any]) -> dict[str, Any]:
    if not metadata:  # most readings carry none: nothing to measure
        return metadata
    if _depth(metadata) > MAX_METADATA_DEPTH:
        raise ValueError(f"nested deeper than {MAX_METADATA_DEPTH} levels")
    if len(orjson.dumps(metadata)) > MAX_METADATA_BYTES:
        raise ValueError(f"larger than {MAX_METADATA_BYTES} bytes as JSON")
    return metadata


Metadata = Annotated[JsonObject, AfterValidator(_small)]


class ReadingIn(BaseModel):
    """One sensor reading: `sensor_id`, `sensor_type`, `value`, `unit`, `location`, `metadata`,
    and optionally `timestamp` and `drone_serial`."""

    model_config = ConfigDict(extra="forbid")

    sensor_id: SensorId
    sensor_type: Label = Field(description="e.g. temperature, humidity, battery")
    value: Reading = Field(description="A finite number")
    unit: Unit | None = Field(None, description="e.g. celsius")
    location: Place | None = Field(None, description="e.g. building_a_floor_1")
    metadata: Metadata = Field(
        default_factory=dict,
        description=f"Any JSON object up to {MAX_METADATA_BYTES} bytes and "
        f"{MAX_METADATA_DEPTH} levels; 64-bit integers, no `$` keys",
    )
    timestamp: UtcDatetime | None = Field(None, description="When it was measured; default: now")
    drone_serial: Serial | None = Field(
        None, description="The drone it belongs to; required with a drone's token"
    )


ReadingBatch = Annotated[list[ReadingIn], Field(min_length=1, max_length=MAX_BATCH)]


def _one_or_batch(value: Any) -> str:
    return "batch" if isinstance(value, list) else "reading"


# One reading or a list of them; an error names only the shape that was sent
# (`reading.value: ...`, `batch.3.value: ...`).
ReadingOrBatch = Annotated[
    Annotated[ReadingIn, Tag("reading")] | Annotated[ReadingBatch, Tag("batch")],
    Discriminator(_one_or_batch),
]


class ReadingOut(BaseModel):
    id: str
    sensor_id: str
    sensor_type: str
    value: float
    unit: str | None
    location: str | None
    metadata: dict[str, Any]
    timestamp: str
    drone_serial: str | None
    received_at: str
    is_anomaly: bool = Field(description="Inside an anomaly the detector found")
    anomaly_score: float = Field(
        description="The detector's strongest test relative to its threshold (1.0 at it)"
    )
    anomaly_kind: str | None = Field(description="jump, stuck, noise or drift; anomalies only")
    severity: Severity | None = Field(description="Anomalies only")
    message: str | None = Field(description="Anomalies only")


class AcceptedReading(BaseModel):
    """A reading as taken onto the bus: durable, judged and stored shortly after."""

    id: str = Field(description="From sensor and timestamp when the reading has a timestamp")
    sensor_id: str
    drone_serial: str | None
    timestamp: str
    received_at: str
    status: str = Field(description='"accepted"')


class ReadingList(BaseModel):
    readings: list[ReadingOut]
    count: int = Field(description="Readings in this page")
    total: int = Field(description="Readings matching the filters")
    limit: int
    offset: int


class AnomalyAlertOut(BaseModel):
    id: str
    sensor_id: str
    severity: Severity
    message: str
    timestamp: str
    resolved: bool
    resolved_at: str | None
    value: float
    unit: str | None
    anomaly_score: float
    sensor_type: str
    location: str | None
    drone_serial: str | None
    kind: str = Field(description="jump, stuck, noise, drift or silence")


class AnomalyAlertList(BaseModel):
    alerts: list[AnomalyAlertOut]
    count: int = Field(description="Alerts in this page")
    total: int = Field(description="Alerts matching the filters")
    limit: int
    offset: int


class MonitoringStats(BaseModel):
    sensor_data_total: int = Field(description="Readings stored (and not expired)")
    anomalies_detected_total: int
    unresolved_anomalies: int
    active_sensors_count: int = Field(description="Sensors with a reading in the last 5 minutes")
    anomalies_by_severity: dict[str, int]
    unresolved_by_severity: dict[str, int]


class ReadingFilters(BaseModel):
    sensor_id: str | None = None
    sensor_type: str | None = None
    location: str | None = None
    drone_serial: str | None = None
    is_anomaly: bool | None = None
    since: datetime | None = None
    until: datetime | None = None

    def query(self) -> dict[str, Any]:
        query: dict[str, Any] = {
            field: getattr(self, field)
            for field in ("sensor_id", "sensor_type", "location", "drone_serial", "is_anomaly")
            if getattr(self, field) is not None
        }
        window = time_window(self.since, self.until)
        if window:
            query["timestamp"] = window
        return query


class AlertFilters(BaseModel):
    severity: Severity | None = None
    resolved: bool | None = None
    sensor_id: str | None = None
    drone_serial: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def query(self) -> dict[str, Any]:
        query: dict[str, Any] = {
            field: getattr(self, field)
            for field in ("resolved", "sensor_id", "drone_serial")
            if getattr(self, field) is not None
        }
        if self.severity is not None:
            query["severity"] = self.severity.value
        window = time_window(self.since, self.until)
        if window:
            query["timestamp"] = window
        return query
