"""The worker's metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

TASKS = Gauge("dronecast_tasks", "Processing tasks by state", ["status"])
DISPATCHES = Counter("dronecast_task_dispatches_total", "Tasks leased to a drone")
TIMEOUTS = Counter("dronecast_task_timeouts_total", "Task timeouts", ["kind"])
RETRIES = Counter("dronecast_task_retries_total", "Unacknowledged tasks put back in the queue")
ROUTING_SECONDS = Histogram(
    "dronecast_task_routing_seconds",
    "Time to route one drone (lease, claim, publish)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)

TELEMETRY_PROCESSED = Counter(
    "dronecast_telemetry_processed_total", "Sensor readings judged by this worker's consumers"
)
TELEMETRY_STORED = Counter(
    "dronecast_telemetry_stored_total", "Sensor readings stored (a reading redone is stored once)"
)
TELEMETRY_REDELIVERED = Counter(
    "dronecast_telemetry_redelivered_total",
    "Stream entries taken over from a consumer that stopped before acknowledging them",
)
TELEMETRY_PARTITIONS = Gauge(
    "dronecast_telemetry_partitions_owned", "Telemetry partitions this worker consumes"
)
