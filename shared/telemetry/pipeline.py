"""Judge, store and publish one partition's readings: the consumer's half of telemetry.

A `PartitionProcessor` holds the detector state of every sensor in its partition. `handle`
takes a batch of stream entries in order, judges each reading on its own timestamp, notices
sensors gone silent (against the newest timestamp of their drone), stores readings and alerts
(idempotent by id), publishes each new alert's `telemetry.anomaly` through its outbox, and
returns the changed states for the consumer to checkpoint together with its acknowledgement.

Restored from that checkpoint, a processor that redoes a batch reaches the same verdicts and
ids, so a batch redone after a crash stores nothing twice and publishes nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from bson import ObjectId

from shared.broker import Broker
from shared.broker.streams import StreamEntry
from shared.logging import get_logger
from shared.models import TelemetryAlert
from shared.outbox import drain, outbox_entries
from shared.telemetry import metrics
from shared.telemetry.detector import AnomalyKind, Detector, SensorState, Verdict
from shared.telemetry.repository import TelemetryRepository
from shared.telemetry.service import anomaly_event, from_millis, sensor_key, stable_id

log = get_logger(__name__)

_SILENCE_CHECK_SECONDS = 1.0
_WATERMARK = "@w:"  # checkpoint fields of drone watermarks: "@w:<serial>"
_VERDICT = ("is_anomaly", "anomaly_score", "anomaly_kind", "severity", "message")


@dataclass(slots=True)
class _Sensor:
    state: SensorState
    about: dict[str, Any]  # sensor_id, sensor_type, unit, location, drone_serial


@dataclass(slots=True)
class Outcome:
    """What one batch did."""

    readings: int = 0
    stored: int = 0
    alerts: list[dict[str, Any]] = field(default_factory=list)
    states: dict[str, bytes] = field(default_factory=dict)  # to checkpoint
    active: dict[str, float] = field(default_factory=dict)  # sensor key -> received (epoch s)
    judged: bytes = b""  # the readings with their verdicts, for live subscribers


class PartitionProcessor:
    def __init__(
        self, broker: Broker, repository: TelemetryRepository, detector: Detector | None = None
    ) -> None:
        self.broker = broker
        self.repository = repository
        self.detector = detector or Detector()
        self.sensors: dict[str, _Sensor] = {}
        self.watermarks: dict[str, float] = {}  # drone serial ("" none) -> newest timestamp
        self._checked: dict[str, float] = {}  # drone -> watermark at its last silence check
        self._drones: dict[str, set[str]] = {}  # drone -> its sensor keys
        self._received: list[float] = []
        self._last_received: tuple[int, Any] = (-1, None)

    # --- checkpoint ------------------------------------------------------------------------

    def restore(self, checkpoint: dict[str, bytes]) -> None:
        for key, raw in checkpoint.items():
            decoded = orjson.loads(raw)
            if key.startswith(_WATERMARK):
                self.watermarks[key[len(_WATERMARK) :]] = float(decoded)
                continue
            sensor = _Sensor(SensorState.from_dict(decoded["state"]), decoded["about"])
            self.sensors[key] = sensor
            self._drones.setdefault(sensor.about["drone_serial"] or "", set()).add(key)

    def _encode(self, keys: set[str], drones: set[str]) -> dict[str, bytes]:
        # orjson writes the dataclasses as {"state": {...}, "about": {...}}.
        out = {key: orjson.dumps(self.sensors[key]) for key in keys}
        for drone in drones:
            out[_WATERMARK + drone] = orjson.dumps(self.watermarks[drone])
        return out

    # --- one batch -------------------------------------------------------------------------

    async def handle(self, entries: list[StreamEntry]) -> Outcome:
        outcome = Outcome()
        readings: list[dict[str, Any]] = []
        alerts: list[dict[str, Any]] = []
        touched: set[str] = set()
        drones: set[str] = set()
        self._received = []
        self._in_batch: dict[str, dict[str, Any]] = {}
        judged: list[dict[str, Any]] = []
        for entry in entries:
            for record in orjson.loads(entry.payload):
                readings.append(self._judge(record, alerts, touched, drones))
                self._received.append(record["rt"] / 1000)
                judged.append(record)
        for drone in drones:
            alerts.extend(self._silences(drone, touched))
        outcome.readings = len(readings)
        outcome.stored = await self.repository.store_readings(readings)
        if alerts:
            await self.repository.store_alerts(alerts)
            for alert in alerts:
                # Publishing is idempotent by the event's uid, so a redone batch re-sends
                # nothing; the outbox relay covers a crash between the insert and here.
                await drain(self.broker, TelemetryAlert, alert["_id"], alert["outbox"])
                metrics.ANOMALIES.labels(alert["severity"]).inc()
                log.info(
                    "telemetry_anomaly",
                    sensor_id=alert["sensor_id"],
                    drone_serial=alert["drone_serial"],
                    kind=alert["kind"],
                    severity=alert["severity"],
                    anomaly_score=alert["anomaly_score"],
                )
        outcome.alerts = alerts
        for record, document in zip(judged, readings, strict=True):
            for name in _VERDICT:
                record[name] = document[name]
        outcome.judged = orjson.dumps(judged)
        outcome.states = self._encode(touched, drones)
        outcome.active = {
            sensor_key(reading["drone_serial"], reading["sensor_id"]): received
            for reading, received in zip(readings, self._received, strict=True)
        }
        return outcome

    def _judge(
        self,
        record: dict[str, Any],
        alerts: list[dict[str, Any]],
        touched: set[str],
        drones: set[str],
    ) -> dict[str, Any]:
        drone = record["drone_serial"] or ""
        key = sensor_key(record["drone_serial"], record["sensor_id"])
        sensor = self.sensors.get(key)
        previous_id = sensor.about.get("last_id") if sensor is not None else None
        about = {
            "sensor_id": record["sensor_id"],
            "sensor_type": record["sensor_type"],
            "unit": record["unit"],
            "location": record["location"],
            "drone_serial": record["drone_serial"],
            "last_id": record["id"],  # the reading a confirmed jump of the next one refers to
        }
        if sensor is None:
            sensor = self.sensors[key] = _Sensor(SensorState(), about)
            self._drones.setdefault(drone, set()).add(key)
        else:
            sensor.about = about
        seconds = record["t"] / 1000
        verdict = self.detector.observe(sensor.state, seconds, record["value"])
        touched.add(key)
        if seconds > self.watermarks.get(drone, float("-inf")):
            self.watermarks[drone] = seconds
        drones.add(drone)
        document = {
            "_id": ObjectId(record["id"]),
            "sensor_id": record["sensor_id"],
            "sensor_type": record["sensor_type"],
            "value": record["value"],
            "unit": record["unit"],
            "location": record["location"],
            "metadata": record["metadata"],
            "timestamp": from_millis(record["t"]),
            "drone_serial": record["drone_serial"],
            "received_at": self._received_at(record["rt"]),
            "is_anomaly": verdict.is_anomaly,
            "anomaly_score": verdict.score,
            "anomaly_kind": verdict.kind.value if verdict.kind else None,
            "severity": verdict.severity.value if verdict.severity else None,
            "message": verdict.message,
        }
        if verdict.previous is not None and previous_id is not None:
            # The anomaly is the previous reading: flag it if it is still in hand (this batch),
            # and raise the alert under its id, value and time.
            at, value = verdict.previous
            earlier = self._in_batch.get(key)
            if earlier is not None and earlier["_id"] == ObjectId(previous_id):
                for name in _VERDICT:
                    earlier[name] = document[name]
            for name, normal in (("is_anomaly", False), ("anomaly_score", 0.0)):
                document[name] = normal
            for name in ("anomaly_kind", "severity", "message"):
                document[name] = None
            if verdict.alert:
                moment = from_millis(round(at * 1000))
                alerts.append(self._alert(ObjectId(previous_id), about, value, moment, verdict))
        elif verdict.alert:
            alerts.append(
                self._alert(document["_id"], about, record["value"], document["timestamp"], verdict)
            )
        self._in_batch[key] = document
        return document

    def _received_at(self, millis: int) -> Any:
        """A batch's readings mostly share their arrival time: converted once."""
        if millis != self._last_received[0]:
            self._last_received = (millis, from_millis(millis))
        return self._last_received[1]

    def _silences(self, drone: str, touched: set[str]) -> list[dict[str, Any]]:
        """Sensors of `drone` with no reading for several of their intervals, in event time:
        checked when the drone's newest timestamp moved on by a second or more."""
        now = self.watermarks[drone]
        if now - self._checked.get(drone, float("-inf")) < _SILENCE_CHECK_SECONDS:
            return []
        self._checked[drone] = now
        alerts = []
        for key in self._drones.get(drone, ()):
            sensor = self.sensors[key]
            verdict = self.detector.silence(sensor.state, now)
            if not verdict.alert:
                continue
            touched.add(key)
            alert_id = stable_id(int(now), key, "silence", repr(sensor.state.last_ts))
            alerts.append(
                self._alert(
                    alert_id,
                    sensor.about,
                    sensor.state.last_value,
                    from_millis(int(now * 1000)),
                    verdict,
                )
            )
        return alerts

    def _alert(
        self,
        alert_id: ObjectId,
        about: dict[str, Any],
        value: float,
        moment: Any,
        verdict: Verdict,
    ) -> dict[str, Any]:
        kind = verdict.kind or AnomalyKind.JUMP
        alert = TelemetryAlert(
            id=alert_id,
            sensor_id=about["sensor_id"],
            sensor_type=about["sensor_type"],
            drone_serial=about["drone_serial"],
            location=about["location"],
            unit=about["unit"],
            value=value,
            timestamp=moment,
            kind=kind.value,
            anomaly_score=verdict.score,
            severity=verdict.severity,
            message=f"{about['sensor_type']}: {verdict.message}",
        )
        alert.outbox = outbox_entries([anomaly_event(alert, uid=f"telemetry-{alert_id}")])
        document = alert.model_dump(by_alias=True, mode="python")
        document["_id"] = alert_id
        document["severity"] = alert.severity.value
        return document
