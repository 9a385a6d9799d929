"""Seed 004's Prometheus metrics, under seed 004's own names: they are public API, so they are
the one exception to the `dronecast_*` prefix. Labels are bounded (severity: four values)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

SENSOR_DATA = Counter("sensor_data_total", "Sensor readings received and stored")
ANOMALIES = Counter("anomalies_detected_total", "Anomalous readings detected", ["severity"])
PROCESSING = Histogram(
    "data_processing_seconds",
    "Time to take one POST /api/v1/sensors/data onto the bus (checks and append), a batch as one",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
ACTIVE_SENSORS = Gauge(
    "active_sensors_count",
    "Sensors with a reading in the last 5 minutes, fleet-wide (read from MongoDB at scrape)",
)
