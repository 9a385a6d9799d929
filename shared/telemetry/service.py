"""Telemetry (seed 004): take readings onto the bus, list them, list and resolve alerts, count.

`ingest` is the api's half: it checks the whole batch, gives each reading its id, and appends
it to its partition's stream in one step, so a 2xx means the batch is durable, and a batch is
taken or refused whole. The other half, judging and storing, is `pipeline.PartitionProcessor`,
run by the consumers (`services/worker/telemetry.py`).

A reading's id comes from its sensor and its timestamp, so a reading sent twice (a client that
retries) is stored once. A reading without a timestamp is stamped on arrival and gets a fresh
id: there is nothing to recognise a repeat of it by.
"""

from __future__ import annotations

import hashlib
import struct
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from beanie import PydanticObjectId

from shared.auth import Action, Principal
from shared.broker import Broker
from shared.channels import telemetry_active, telemetry_partition, telemetry_stream
from shared.errors import Conflict, Forbidden, NotFound
from shared.events import EventName, PendingEvent, format_timestamp
from shared.logging import get_logger
from shared.models import TelemetryAlert, TelemetryReading
from shared.models.alert import Severity
from shared.models.base import utcnow
from shared.outbox import drain, outbox_entries
from shared.settings import Settings
from shared.telemetry import metrics
from shared.telemetry.repository import TelemetryRepository, telemetry_repository
from shared.telemetry.schemas import AlertFilters, ReadingFilters, ReadingIn

log = get_logger(__name__)

ACTIVE_WINDOW = timedelta(minutes=5)
_EPOCH = datetime(1970, 1, 1)


def to_millis(moment: datetime) -> int:
    """Naive UTC (as stored) to epoch milliseconds."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    since = moment - _EPOCH
    # Whole numbers, as `since // timedelta(milliseconds=1)` gives, in a quarter of its time
    # (the api converts every reading of a POST).
    return (since.days * 86_400 + since.seconds) * 1000 + since.microseconds // 1000


def from_millis(millis: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=millis)


def iso_millis(millis: int) -> str:
    """Epoch milliseconds as the API writes times: ISO 8601, UTC, milliseconds, "Z"."""
    return from_millis(millis).isoformat(timespec="milliseconds") + "Z"


def stable_id(seconds: int, *parts: str) -> PydanticObjectId:
    """An ObjectId made of a time (its first 4 bytes, as ObjectIds are) and a digest of
    `parts`: the same parts always give the same id."""
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).digest()
    return PydanticObjectId(struct.pack(">I", max(0, min(seconds, 0xFFFFFFFF))) + digest)


def sensor_key(drone_serial: str | None, sensor_id: str) -> str:
    """Detector state is per sensor of a drone: two drones may name a sensor alike."""
    return f"{drone_serial or ''}/{sensor_id}"


def scoped(principal: Principal, query: dict[str, Any]) -> dict[str, Any]:
    """Narrow a query to the drones the caller may see (a scoped token sees nothing that
    names no drone)."""
    if principal.drones is None:
        return query
    wanted = query.get("drone_serial")
    if wanted is not None:
        return query if wanted in principal.drones else {**query, "drone_serial": {"$in": []}}
    return {**query, "drone_serial": {"$in": sorted(principal.drones)}}


def _visible(principal: Principal, drone_serial: str | None) -> bool:
    if principal.drones is None:
        return True
    return drone_serial is not None and drone_serial in principal.drones


def anomaly_event(alert: TelemetryAlert, uid: str | None = None) -> PendingEvent:
    """`telemetry.anomaly` on `drone:{serial}:telemetry` (Socket.IO `alert:event`), or on
    `drone:all:telemetry` for a sensor on no drone; `data` is the alert."""
    if uid is None:
        return PendingEvent(EventName.TELEMETRY_ANOMALY, alert.drone_serial, alert.public_alert())
    return PendingEvent(
        EventName.TELEMETRY_ANOMALY, alert.drone_serial, alert.public_alert(), uid=uid
    )


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
    ) -> list[dict[str, Any]]:
        """Append `bodies` to their partitions' streams, all or none; returns, in the order
        given, each reading's id, sensor, drone, timestamp and received_at."""
        for body in bodies:  # all or nothing: refuse before anything is appended
            self._authorize_sender(principal, body)
        started = time.perf_counter()
        now = utcnow()
        received = to_millis(now)
        received_at = format_timestamp(now)
        partitions: dict[int, list[dict[str, Any]]] = {}
        accepted: list[dict[str, Any]] = []
        stamps: dict[int, str] = {}  # a batch's readings mostly share a few timestamps
        for body in bodies:
            if body.timestamp is not None:
                millis = to_millis(body.timestamp)  # naive UTC; MongoDB keeps milliseconds
                key = sensor_key(body.drone_serial, body.sensor_id)
                reading_id = str(stable_id(millis // 1000, key, str(millis)))
            else:
                millis, reading_id = received, str(PydanticObjectId())
            partition = telemetry_partition(
                body.drone_serial or body.sensor_id, settings.telemetry_partitions
            )
            partitions.setdefault(partition, []).append(
                {
                    "id": reading_id,
                    "sensor_id": body.sensor_id,
                    "sensor_type": body.sensor_type,
                    "value": body.value,
                    "unit": body.unit,
                    "location": body.location,
                    "metadata": body.metadata,
                    "t": millis,
                    "drone_serial": body.drone_serial,
                    "rt": received,
                }
            )
            stamp = stamps.get(millis)
            if stamp is None:
                stamp = stamps[millis] = iso_millis(millis)
            accepted.append(
                {
                    "id": reading_id,
                    "sensor_id": body.sensor_id,
                    "drone_serial": body.drone_serial,
                    "timestamp": stamp,
                    "received_at": received_at,
                    "status": "accepted",
                }
            )
        await broker.streams.append(
            [(telemetry_stream(p), orjson.dumps(records)) for p, records in partitions.items()]
        )
        metrics.SENSOR_DATA.inc(len(bodies))
        metrics.PROCESSING.observe(time.perf_counter() - started)
        return accepted

    async def find(
        self, principal: Principal, filters: ReadingFilters, limit: int, offset: int
    ) -> tuple[list[TelemetryReading], int]:
        return await self.repository.find_readings(
            scoped(principal, filters.query()), limit, offset
        )

    async def find_alerts(
        self, principal: Principal, filters: AlertFilters, limit: int, offset: int
    ) -> tuple[list[TelemetryAlert], int]:
        return await self.repository.find_alerts(scoped(principal, filters.query()), limit, offset)

    async def resolve(self, broker: Broker, principal: Principal, alert_id: str) -> TelemetryAlert:
        """`resolved: false -> true`, once: 409 when it already is, 404 when it is not an
        alert the caller may see."""
        alert = await self.repository.get_alert(alert_id)
        if alert is None or not _visible(principal, alert.drone_serial):
            raise NotFound(f"no anomaly alert with id '{alert_id}'")
        if alert.resolved:
            raise Conflict(f"anomaly alert '{alert_id}' is already resolved")
        changes = {"resolved": True, "resolved_at": utcnow()}
        event = anomaly_event(alert.model_copy(update=changes))
        written = await self.repository.resolve(alert, changes, outbox_entries([event]))
        if written is None:  # resolved by someone else since we read it
            raise Conflict(f"anomaly alert '{alert_id}' is already resolved")
        await drain(broker, TelemetryAlert, written.id, written.outbox)
        log.info("telemetry_anomaly_resolved", alert_id=alert_id, sensor_id=written.sensor_id)
        return written

    async def active_sensors(
        self, broker: Broker, settings: Settings, drones: frozenset[str] | None = None
    ) -> int:
        """Sensors with a reading received in the last 5 minutes, of `drones` (None: all),
        from the consumers' sets of active sensors: no scan of the readings."""
        since = time.time() - ACTIVE_WINDOW.total_seconds()
        keys = [telemetry_active(p) for p in range(settings.telemetry_partitions)]
        members = set(await broker.streams.active_since(keys, since))
        if drones is None:
            return len(members)
        return sum(1 for member in members if member.partition("/")[0] in drones)

    async def stats(
        self, broker: Broker, settings: Settings, principal: Principal
    ) -> dict[str, Any]:
        """Counts over what the caller may see (everything for an unscoped token)."""
        scope = scoped(principal, {})
        total = await self.repository.count(scope)
        counts = await self.repository.alert_counts(scope)
        active = await self.active_sensors(broker, settings, principal.drones)
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

    async def refresh_active_sensors(self, broker: Broker, settings: Settings) -> None:
        """Sets the `active_sensors_count` gauge (fleet-wide) before a Prometheus scrape."""
        metrics.ACTIVE_SENSORS.set(await self.active_sensors(broker, settings))


telemetry_service = TelemetryService(telemetry_repository)
