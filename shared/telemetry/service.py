"""Telemetry (seed 004): store readings, flag anomalies, list them, resolve them, count them.

Each reading is judged against the sensor's previous `TELEMETRY_HISTORY_SIZE` readings as
stored in MongoDB (`detection.judge`), so any replica gives the same verdict. An anomaly is the
reading itself, flagged, with its `telemetry.anomaly` event in the same insert (outbox); normal
readings publish nothing. Resolving compare-and-sets `resolved: false -> true` and publishes
`telemetry.anomaly` again with the alert's new state.
"""

from __future__ import annotations

import time
from collections import deque
from datetime import timedelta
from typing import Any

from beanie import PydanticObjectId

from shared.auth import Action, Principal
from shared.broker import Broker
from shared.errors import Conflict, Forbidden, NotFound
from shared.events import EventName, PendingEvent
from shared.logging import get_logger
from shared.models import TelemetryReading
from shared.models.alert import Severity
from shared.models.base import utcnow
from shared.outbox import drain, outbox_entries
from shared.settings import Settings
from shared.telemetry import metrics
from shared.telemetry.detection import judge
from shared.telemetry.repository import TelemetryRepository, telemetry_repository
from shared.telemetry.schemas import ReadingFilters, ReadingIn

log = get_logger(__name__)

ACTIVE_WINDOW = timedelta(minutes=5)


def scoped(principal: Principal, query: dict[str, Any]) -> dict[str, Any]:
    """Narrow a query to the readings of the drones the caller may see (a scoped token sees
    no reading that names no drone)."""
    if principal.drones is None:
        return query
    wanted = query.get("drone_serial")
    if wanted is not None:
        return query if wanted in principal.drones else {**query, "drone_serial": {"$in": []}}
    return {**query, "drone_serial": {"$in": sorted(principal.drones)}}


def _visible(principal: Principal, reading: TelemetryReading) -> bool:
    if principal.drones is None:
        return True
    return reading.drone_serial is not None and reading.drone_serial in principal.drones


def anomaly_event(reading: TelemetryReading) -> PendingEvent:
    """`telemetry.anomaly` on `drone:{serial}:telemetry` (Socket.IO `alert:event`), or on
    `drone:all:telemetry` for a sensor on no drone; `data` is the alert."""
    return PendingEvent(EventName.TELEMETRY_ANOMALY, reading.drone_serial, reading.public_alert())


class TelemetryService:
    def __init__(self, repository: TelemetryRepository) -> None:
        self.repository = repository

    def _authorize_sender(self, principal: Principal, body: ReadingIn) -> None:
        if body.drone_serial is None:
            if principal.drones is not None:
                raise Forbidden("a token limited to drones must name the reading's drone_serial")
            principal.require(Action.SEND_TELEMETRY)
        else:
            principal.require(Action.SEND_TELEMETRY, body.drone_serial)

    async def ingest(
        self,
        broker: Broker,
        settings: Settings,
        principal: Principal,
        bodies: list[ReadingIn],
    ) -> list[TelemetryReading]:
        """Judge and store `bodies` in the order given, each against the history before it
        (earlier readings of the same batch included); publish what is anomalous."""
        for body in bodies:  # all or nothing: refuse before anything is stored
            self._authorize_sender(principal, body)
        started = time.perf_counter()
        size = settings.telemetry_history_size
        now = utcnow()
        histories: dict[str, deque[float]] = {}
        readings: list[TelemetryReading] = []
        for body in bodies:
            history = histories.get(body.sensor_id)
            if history is None:
                newest_first = await self.repository.recent_values(body.sensor_id, size)
                history = histories[body.sensor_id] = deque(reversed(newest_first), maxlen=size)
            verdict = judge(
                body.value,
                list(history),
                settings.telemetry_min_samples,
                settings.telemetry_anomaly_z,
                body.sensor_type,
                body.unit,
            )
            history.append(body.value)
            reading = TelemetryReading(
                id=PydanticObjectId(),
                sensor_id=body.sensor_id,
                sensor_type=body.sensor_type,
                value=body.value,
                unit=body.unit,
                location=body.location,
                metadata=body.metadata,
                timestamp=body.timestamp or now,
                drone_serial=body.drone_serial,
                received_at=now,
                is_anomaly=verdict.is_anomaly,
                anomaly_score=verdict.score,
                severity=verdict.severity,
                message=verdict.message,
            )
            if verdict.is_anomaly:
                reading.outbox = outbox_entries([anomaly_event(reading)])
            readings.append(reading)
        await self.repository.insert_many(readings)
        for reading in readings:
            if reading.outbox:
                await drain(broker, TelemetryReading, reading.id, reading.outbox)
                reading.outbox = []
                metrics.ANOMALIES.labels(str(reading.severity)).inc()
                log.info(
                    "telemetry_anomaly",
                    sensor_id=reading.sensor_id,
                    drone_serial=reading.drone_serial,
                    severity=str(reading.severity),
                    anomaly_score=reading.anomaly_score,
                )
        metrics.SENSOR_DATA.inc(len(readings))
        metrics.PROCESSING.observe(time.perf_counter() - started)
        return readings

    async def find(
        self, principal: Principal, filters: ReadingFilters, limit: int, offset: int
    ) -> tuple[list[TelemetryReading], int]:
        return await self.repository.find_page(scoped(principal, filters.query()), limit, offset)

    async def find_alerts(
        self, principal: Principal, filters: ReadingFilters, limit: int, offset: int
    ) -> tuple[list[TelemetryReading], int]:
        query = {**filters.query(), "is_anomaly": True}
        return await self.repository.find_page(scoped(principal, query), limit, offset)

    async def resolve(
        self, broker: Broker, principal: Principal, reading_id: str
    ) -> TelemetryReading:
        """`resolved: false -> true`, once: 409 when it already is, 404 when it is not an
        anomaly the caller may see."""
        reading = await self.repository.get(reading_id)
        if reading is None or not reading.is_anomaly or not _visible(principal, reading):
            raise NotFound(f"no anomaly alert with id '{reading_id}'")
        if reading.resolved:
            raise Conflict(f"anomaly alert '{reading_id}' is already resolved")
        changes = {"resolved": True, "resolved_at": utcnow()}
        event = anomaly_event(reading.model_copy(update=changes))
        written = await self.repository.resolve(reading, changes, outbox_entries([event]))
        if written is None:  # resolved by someone else since we read it
            raise Conflict(f"anomaly alert '{reading_id}' is already resolved")
        await drain(broker, TelemetryReading, written.id, written.outbox)
        log.info("telemetry_anomaly_resolved", reading_id=reading_id, sensor_id=written.sensor_id)
        return written

    async def stats(self, principal: Principal) -> dict[str, Any]:
        """Counts over the readings the caller may see (every one for an unscoped token)."""
        scope = scoped(principal, {})
        total = await self.repository.count(scope)
        counts = await self.repository.anomaly_counts(scope)
        active = await self.repository.active_sensors(scope, utcnow() - ACTIVE_WINDOW)
        if principal.drones is None:
            metrics.ACTIVE_SENSORS.set(active)
        by_severity = {
            severity.value: counts.get((severity.value, False), 0)
            + counts.get((severity.value, True), 0)
            for severity in Severity
        }
        unresolved = {
            severity.value: counts.get((severity.value, False), 0) for severity in Severity
        }
        return {
            "sensor_data_total": total,
            "anomalies_detected_total": sum(by_severity.values()),
            "unresolved_anomalies": sum(unresolved.values()),
            "active_sensors_count": active,
            "anomalies_by_severity": by_severity,
            "unresolved_by_severity": unresolved,
        }

    async def refresh_active_sensors(self) -> None:
        """Sets the `active_sensors_count` gauge (fleet-wide) before a Prometheus scrape."""
        active = await self.repository.active_sensors({}, utcnow() - ACTIVE_WINDOW)
        metrics.ACTIVE_SENSORS.set(active)


telemetry_service = TelemetryService(telemetry_repository)
