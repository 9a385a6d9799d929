"""Telemetry over REST (seed 004): a sensor sends readings, DroneCast takes them onto the bus
(202: durable), judges each on its own timestamp, stores them, publishes anomalies as
`telemetry.anomaly`, and lists, resolves and counts them. What a user sees: the seed's paths
and fields, clear 4xx for bad input with nothing taken, and seed 004's Prometheus metric names.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.dev import create_dev_app
from shared.models import TelemetryAlert, TelemetryReading
from tests.conftest import make_settings
from tests.fixtures.auth import SECRET, bearer
from tests.fixtures.events import EventRecorder, record_all
from tests.fixtures.servers import serve
from tests.fixtures.sio import RecordingClient
from tests.fixtures.telemetry import (
    ALERTS,
    DATA,
    product_client,
    recent,
    series,
    settle,
    stamp,
    steady,
)

# Seed 004's "Sensor Data Format", exactly.
SEED_READING = {
    "sensor_id": "sensor_001",
    "sensor_type": "temperature",
    "value": 23.5,
    "unit": "celsius",
    "location": "building_a_floor_1",
    "metadata": {"building": "A", "floor": 1, "room": "server_room"},
}
READING_FIELDS = {
    "id", "sensor_id", "sensor_type", "value", "unit", "location", "metadata", "timestamp",
    "drone_serial", "received_at", "is_anomaly", "anomaly_score", "anomaly_kind", "severity",
    "message",
}  # fmt: skip
ACCEPTED_FIELDS = {"id", "sensor_id", "drone_serial", "timestamp", "received_at", "status"}
ALERT_FIELDS = {
    "id", "sensor_id", "severity", "message", "timestamp", "resolved", "resolved_at", "value",
    "unit", "anomaly_score", "sensor_type", "location", "drone_serial", "kind",
}  # fmt: skip


@pytest.fixture
async def tele() -> AsyncIterator[httpx.AsyncClient]:
    async for client in product_client(make_settings()):
        yield client


@pytest.fixture
async def secured_tele() -> AsyncIterator[httpx.AsyncClient]:
    async for client in product_client(make_settings(auth_enabled=True, secret_key=SECRET)):
        yield client


@pytest.fixture
async def events(tele: httpx.AsyncClient) -> EventRecorder:
    return await record_all(tele.app.state.broker)  # type: ignore[attr-defined]


async def send(client: httpx.AsyncClient, body: Any, **kwargs: Any) -> Any:
    """POST, expect 202, and wait until the consumers judged and stored it."""
    response = await client.post(DATA, json=body, **kwargs)
    assert response.status_code == 202, response.text
    await settle(client)
    return response.json()


async def spiked(
    client: httpx.AsyncClient,
    sensor: str = "temp_1",
    value: float = 45.0,
    headers: dict[str, str] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """40 readings at rest, one far off, one at rest again; returns the far one as stored."""
    values = [*steady(40), value, steady(41)[-1]]
    accepted = await send(client, series(values, sensor, **fields), headers=headers)
    params = {"sensor_id": sensor, "limit": 2}
    response = await client.get(DATA, params=params, headers=headers)
    stored = response.json()["readings"][1]
    assert stored["id"] == accepted[-2]["id"]
    return stored


# --- ingestion ---------------------------------------------------------------------------------


async def test_the_seed_reading_is_taken_then_stored_with_its_verdict(
    tele: httpx.AsyncClient, events: EventRecorder
) -> None:
    accepted = await send(tele, SEED_READING)
    assert set(accepted) == ACCEPTED_FIELDS and accepted["status"] == "accepted"
    assert accepted["sensor_id"] == "sensor_001" and accepted["timestamp"].endswith("Z")
    [stored] = (await tele.get(DATA)).json()["readings"]
    assert set(stored) == READING_FIELDS
    assert {key: stored[key] for key in SEED_READING} == SEED_READING
    assert stored["id"] == accepted["id"] and stored["timestamp"] == accepted["timestamp"]
    assert stored["is_anomaly"] is False and stored["anomaly_score"] == 0.0
    assert stored["severity"] is None and stored["drone_serial"] is None
    assert events.events == []  # a normal reading publishes nothing


async def test_a_batch_is_answered_in_order_and_listed_newest_first(
    tele: httpx.AsyncClient,
) -> None:
    accepted = await send(tele, series([0.0, 1.0, 2.0, 3.0, 4.0], "s1"))
    assert [item["sensor_id"] for item in accepted] == ["s1"] * 5
    listed = (await tele.get(DATA, params={"sensor_id": "s1"})).json()["readings"]
    assert [item["value"] for item in listed] == [4.0, 3.0, 2.0, 1.0, 0.0]
    assert [item["id"] for item in listed] == [item["id"] for item in accepted][::-1]


async def test_a_reading_sent_twice_is_stored_once(tele: httpx.AsyncClient) -> None:
    body = series([1.0, 2.0, 3.0], "s1", drone_serial="SN1")
    first = await send(tele, body)
    again = await send(tele, body)  # a client that retried after a timeout
    assert [item["id"] for item in again] == [item["id"] for item in first]
    assert (await tele.get(DATA)).json()["total"] == 3


async def test_readings_without_timestamps_get_the_time_they_arrived(
    tele: httpx.AsyncClient,
) -> None:
    body = [{"sensor_id": "s1", "sensor_type": "t", "value": float(n)} for n in range(3)]
    accepted = await send(tele, body)
    assert len({item["id"] for item in accepted}) == 3
    assert len({item["timestamp"] for item in accepted}) == 1
    assert (await tele.get(DATA)).json()["total"] == 3


BAD_READINGS: list[tuple[str, str]] = [
    ("NaN value", '{"sensor_id": "s1", "sensor_type": "t", "value": NaN}'),
    ("infinite value", '{"sensor_id": "s1", "sensor_type": "t", "value": Infinity}'),
    ("overflowing value", '{"sensor_id": "s1", "sensor_type": "t", "value": 1e400}'),
    ("huge integer", '{"sensor_id": "s1", "sensor_type": "t", "value": ' + "9" * 400 + "}"),
    ("string value", '{"sensor_id": "s1", "sensor_type": "t", "value": "23.5"}'),
    ("boolean value", '{"sensor_id": "s1", "sensor_type": "t", "value": true}'),
    ("no value", '{"sensor_id": "s1", "sensor_type": "t"}'),
    ("no sensor_type", '{"sensor_id": "s1", "value": 1}'),
    ("sensor_id with a space", '{"sensor_id": "s 1", "sensor_type": "t", "value": 1}'),
    ("sensor_id too long", '{"sensor_id": "' + "s" * 65 + '", "sensor_type": "t", "value": 1}'),
    ("sensor_id operator", '{"sensor_id": {"$ne": null}, "sensor_type": "t", "value": 1}'),
    ("metadata not an object", '{"sensor_id": "s1", "sensor_type": "t", "value": 1, "metadata": []}'),
    ("metadata $ key", '{"sensor_id": "s1", "sensor_type": "t", "value": 1, "metadata": {"$where": 1}}'),
    ("metadata 9 levels", '{"sensor_id": "s1", "sensor_type": "t", "value": 1, "metadata": '
     + '{"a": ' * 9 + "1" + "}" * 9 + "}"),
    ("metadata over 8 KB", '{"sensor_id": "s1", "sensor_type": "t", "value": 1, "metadata": {"a": "'
     + "x" * 8200 + '"}}'),
    ("server-kept field", '{"sensor_id": "s1", "sensor_type": "t", "value": 1, "is_anomaly": true}'),
    ("unknown field", '{"sensor_id": "s1", "sensor_type": "t", "value": 1, "colour": "red"}'),
    ("reserved drone", '{"sensor_id": "s1", "sensor_type": "t", "value": 1, "drone_serial": "all"}'),
    ("unix timestamp", '{"sensor_id": "s1", "sensor_type": "t", "value": 1, "timestamp": 1700000000}'),
    ("empty batch", "[]"),
    ("one bad reading in a batch", '[{"sensor_id": "s1", "sensor_type": "t", "value": 1}, '
     '{"sensor_id": "s1", "sensor_type": "t", "value": "x"}]'),
    ("not a reading", '"23.5"'),
]  # fmt: skip


@pytest.mark.parametrize(
    "body", [body for _, body in BAD_READINGS], ids=[i for i, _ in BAD_READINGS]
)
async def test_bad_readings_are_a_422_and_take_nothing(tele: httpx.AsyncClient, body: str) -> None:
    response = await tele.post(DATA, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "ValidationError"
    assert await tele.app.state.worker.telemetry.backlog() == 0  # type: ignore[attr-defined]
    await settle(tele)
    assert await TelemetryReading.count() == 0


async def test_a_batch_over_500_is_a_422_that_says_so(tele: httpx.AsyncClient) -> None:
    response = await tele.post(DATA, json=series([1.0] * 501))
    assert response.status_code == 422
    assert "at most 500" in response.json()["detail"]
    await settle(tele)
    assert await TelemetryReading.count() == 0


async def test_deeply_nested_json_is_refused_without_a_500(tele: httpx.AsyncClient) -> None:
    body = '{"sensor_id": "s1", "sensor_type": "t", "value": 1, "metadata": '
    body += '{"a": ' * 5000 + "1" + "}" * 5000 + "}"
    response = await tele.post(DATA, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code in (400, 422), response.text
    await settle(tele)
    assert await TelemetryReading.count() == 0


# --- detection ---------------------------------------------------------------------------------


async def test_a_spike_after_readings_at_rest_is_an_anomaly_and_an_alert(
    tele: httpx.AsyncClient,
) -> None:
    flagged = await spiked(tele, drone_serial="SN1")
    assert flagged["is_anomaly"] is True and flagged["anomaly_kind"] == "jump"
    assert flagged["anomaly_score"] >= 1.0
    assert flagged["severity"] in {"low", "medium", "high", "critical"}
    assert "noise scales" in flagged["message"]
    [alert] = (await tele.get(ALERTS)).json()["alerts"]
    assert set(alert) == ALERT_FIELDS
    assert (alert["id"], alert["kind"], alert["value"]) == (flagged["id"], "jump", 45.0)
    assert alert["severity"] == flagged["severity"] and alert["resolved"] is False


async def test_severity_follows_how_far_the_spike_is(tele: httpx.AsyncClient) -> None:
    small = await spiked(tele, "a", 24.0)
    large = await spiked(tele, "b", 120.0)
    assert small["is_anomaly"] and large["is_anomaly"]
    assert large["anomaly_score"] > small["anomaly_score"]
    order = ["low", "medium", "high", "critical"]
    assert order.index(large["severity"]) > order.index(small["severity"])
    assert large["severity"] == "critical"


async def test_readings_at_rest_raise_nothing(tele: httpx.AsyncClient) -> None:
    await send(tele, series(steady(120)))
    assert (await tele.get(ALERTS)).json()["total"] == 0
    assert (await tele.get(DATA, params={"is_anomaly": "true"})).json()["total"] == 0


async def test_a_stuck_sensor_raises_one_alert(tele: httpx.AsyncClient) -> None:
    await send(tele, series([*steady(40), *[20.11] * 30], drone_serial="SN1"))
    [alert] = (await tele.get(ALERTS)).json()["alerts"]
    assert alert["kind"] == "stuck" and "identical readings" in alert["message"]


async def test_a_sensor_that_goes_silent_is_an_alert_on_event_time(
    tele: httpx.AsyncClient,
) -> None:
    start = recent()
    quiet = series(steady(60), "pressure", start, drone_serial="SN1")
    busy = series(steady(90), "temp", start, drone_serial="SN1")  # 30 s longer
    await send(tele, [*quiet, *busy])
    [alert] = (await tele.get(ALERTS)).json()["alerts"]
    assert (alert["sensor_id"], alert["kind"]) == ("pressure", "silence")
    assert "no reading for" in alert["message"]
    # Noticed on the drone's own clock: a few intervals after the last reading, not at once.
    assert stamp(start) < alert["timestamp"] <= busy[-1]["timestamp"]


async def test_a_backfill_gets_the_verdicts_live_data_gets(tele: httpx.AsyncClient) -> None:
    body = series([*steady(40), 45.0, *steady(10)], "live", drone_serial="SN1")
    old = series(
        [*steady(40), 45.0, *steady(10)], "old", start=recent(3 * 24 * 3600), drone_serial="SN2"
    )
    await send(tele, body)
    for n in range(0, len(old), 7):  # in pieces, as a recorder uploads it later
        await send(tele, old[n : n + 7])
    alerts = (await tele.get(ALERTS)).json()["alerts"]
    assert sorted((a["sensor_id"], a["kind"], a["anomaly_score"]) for a in alerts) == sorted(
        [("live", "jump", alerts[0]["anomaly_score"]), ("old", "jump", alerts[0]["anomaly_score"])]
    )


# --- events ------------------------------------------------------------------------------------


async def test_an_anomaly_publishes_telemetry_anomaly_on_its_drone(
    tele: httpx.AsyncClient, events: EventRecorder
) -> None:
    flagged = await spiked(tele, drone_serial="SN1")
    [event] = await events.wait_for(1)
    assert event["event"] == "telemetry.anomaly" and event["serial"] == "SN1"
    assert events.channels == ["drone:SN1:telemetry"]
    assert set(event["data"]) == ALERT_FIELDS
    assert event["data"]["id"] == flagged["id"] and event["data"]["resolved"] is False
    alert = await TelemetryAlert.get(flagged["id"])
    assert alert is not None and alert.outbox == []  # published, then pulled


async def test_an_anomaly_of_no_drone_goes_on_the_fleet_wide_channel(
    tele: httpx.AsyncClient, events: EventRecorder
) -> None:
    await spiked(tele)
    [event] = await events.wait_for(1)
    assert event["serial"] is None
    assert events.channels == ["drone:all:telemetry"]


# --- lists -------------------------------------------------------------------------------------


async def test_filters_and_pages(tele: httpx.AsyncClient) -> None:
    start = recent(4 * 3600)

    def at(hours: int, value: float, sensor: str, **fields: Any) -> dict[str, Any]:
        return series([value], sensor, start + timedelta(hours=hours), **fields)[0]

    await send(
        tele,
        [
            at(0, 1.0, "a", location="roof"),
            at(1, 2.0, "a", location="hall"),
            {**at(2, 3.0, "b", drone_serial="SN1"), "sensor_type": "humidity"},
            at(3, 4.0, "c", drone_serial="SN2"),
        ],
    )

    async def values(**params: Any) -> list[float]:
        response = await tele.get(DATA, params=params)
        assert response.status_code == 200, response.text
        return [item["value"] for item in response.json()["readings"]]

    assert await values() == [4.0, 3.0, 2.0, 1.0]
    assert await values(sensor_id="a") == [2.0, 1.0]
    assert await values(sensor_type="humidity") == [3.0]
    assert await values(location="roof") == [1.0]
    assert await values(drone_serial="SN2") == [4.0]
    assert await values(is_anomaly="false") == [4.0, 3.0, 2.0, 1.0]
    assert await values(is_anomaly="true") == []
    window = {"since": at(1, 0, "x")["timestamp"], "until": at(2, 0, "x")["timestamp"]}
    assert await values(**window) == [3.0, 2.0]
    assert await values(limit=2, offset=1) == [3.0, 2.0]
    page = (await tele.get(DATA, params={"limit": 1})).json()
    assert (page["count"], page["total"], page["limit"], page["offset"]) == (1, 4, 1, 0)


@pytest.mark.parametrize(
    "params",
    [{"limit": 501}, {"limit": 0}, {"offset": -1}, {"since": "yesterday"}, {"sensor_id": "a b"},
     {"is_anomaly": "maybe"}],
)  # fmt: skip
async def test_bad_list_parameters_are_a_422(
    tele: httpx.AsyncClient, params: dict[str, Any]
) -> None:
    response = await tele.get(DATA, params=params)
    assert response.status_code == 422
    assert response.json()["error"] == "ValidationError"


async def test_alerts_list_with_filters(tele: httpx.AsyncClient) -> None:
    await spiked(tele, "x", 24.0, drone_serial="SN1")
    await spiked(tele, "y", 120.0)
    listed = (await tele.get(ALERTS)).json()
    assert listed["total"] == 2
    severities = {alert["sensor_id"]: alert["severity"] for alert in listed["alerts"]}

    async def sensors(**params: Any) -> list[str]:
        response = await tele.get(ALERTS, params=params)
        assert response.status_code == 200, response.text
        return sorted(alert["sensor_id"] for alert in response.json()["alerts"])

    assert await sensors(severity=severities["y"]) == ["y"]
    assert await sensors(drone_serial="SN1") == ["x"]
    assert await sensors(sensor_id="y") == ["y"]
    assert await sensors(resolved="true") == []
    assert await sensors(until="2000-01-01T00:00:00Z") == []
    assert (await tele.get(ALERTS, params={"severity": "urgent"})).status_code == 422


async def test_resolve_once_then_409_and_the_change_is_published(
    tele: httpx.AsyncClient, events: EventRecorder
) -> None:
    alert_id = (await spiked(tele, drone_serial="SN1"))["id"]
    resolved = await tele.put(f"{ALERTS}/{alert_id}/resolve")
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["resolved"] is True and resolved.json()["resolved_at"].endswith("Z")
    again = await tele.put(f"{ALERTS}/{alert_id}/resolve")
    assert again.status_code == 409 and again.json()["error"] == "Conflict"
    created, update = await events.wait_for(2)
    assert (created["data"]["resolved"], update["data"]["resolved"]) == (False, True)
    assert update["event"] == "telemetry.anomaly" and update["data"]["id"] == alert_id
    listed = (await tele.get(ALERTS, params={"resolved": "true"})).json()["alerts"]
    assert [a["id"] for a in listed] == [alert_id]
    assert (await tele.get(ALERTS, params={"resolved": "false"})).json()["total"] == 0


@pytest.mark.parametrize("alert_id", ["6b049c6a69e8370909f4a38a", "not-an-id", "normal"])
async def test_resolving_what_is_not_an_alert_is_a_404(
    tele: httpx.AsyncClient, alert_id: str
) -> None:
    if alert_id == "normal":
        alert_id = (await send(tele, series([1.0])))[0]["id"]
    response = await tele.put(f"{ALERTS}/{alert_id}/resolve")
    assert response.status_code == 404
    assert response.json()["error"] == "NotFound"


# --- stats, health and metrics -----------------------------------------------------------------


async def test_stats_count_readings_alerts_and_active_sensors(tele: httpx.AsyncClient) -> None:
    await spiked(tele, "x")
    critical = await spiked(tele, "z", 500.0)
    await send(tele, series([1.0], "y"))
    await tele.put(f"{ALERTS}/{critical['id']}/resolve")
    stats = (await tele.get("/api/v1/monitoring/stats")).json()
    assert stats["sensor_data_total"] == 85
    assert (stats["anomalies_detected_total"], stats["unresolved_anomalies"]) == (2, 1)
    assert stats["active_sensors_count"] == 3
    assert stats["anomalies_by_severity"]["critical"] >= 1
    assert stats["unresolved_by_severity"]["critical"] == (
        stats["anomalies_by_severity"]["critical"] - 1
    )


async def test_monitoring_health_reports_each_component(tele: httpx.AsyncClient) -> None:
    response = await tele.get("/api/v1/monitoring/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["components"] == {"mongodb": {"status": "ok"}, "redis": {"status": "ok"}}
    assert body["checks"] == (await tele.get("/ready")).json()["checks"]


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


async def test_seed_metrics_count_what_was_received(tele: httpx.AsyncClient) -> None:
    async def scrape(path: str = "/api/v1/monitoring/metrics") -> dict[Any, float]:
        response = await tele.get(path)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        return samples(response.text)

    before = await scrape()
    flagged = await spiked(tele, "x")
    await send(tele, series([1.0], "y"))
    after = await scrape()

    def grew(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert grew("sensor_data_total") == 43
    assert grew("anomalies_detected_total", severity=flagged["severity"]) == 1
    assert grew("data_processing_seconds_count") == 2  # two POSTs
    assert after[("active_sensors_count", ())] == 2
    plain = await scrape("/metrics")
    assert plain[("sensor_data_total", ())] == after[("sensor_data_total", ())]
    assert plain[("active_sensors_count", ())] == 2


# --- who may do what ---------------------------------------------------------------------------


async def test_a_drone_sends_only_for_itself_and_must_say_so(
    secured_tele: httpx.AsyncClient,
) -> None:
    drone = bearer("drone", ["SN1"])
    mine = await secured_tele.post(DATA, json=series([1.0], drone_serial="SN1"), headers=drone)
    assert mine.status_code == 202
    theirs = await secured_tele.post(DATA, json=series([1.0], drone_serial="SN2"), headers=drone)
    assert theirs.status_code == 404
    unnamed = await secured_tele.post(DATA, json=series([1.0], "other"), headers=drone)
    assert unnamed.status_code == 403 and "drone_serial" in unnamed.json()["detail"]
    mixed = [*series([2.0], "a", drone_serial="SN1"), *series([2.0], "b", drone_serial="SN2")]
    assert (await secured_tele.post(DATA, json=mixed, headers=drone)).status_code == 404
    await settle(secured_tele)
    assert await TelemetryReading.count() == 1  # only the first, allowed one


@pytest.mark.parametrize("role", ["viewer", "detector", "operator", "application"])
async def test_other_roles_may_not_send(secured_tele: httpx.AsyncClient, role: str) -> None:
    response = await secured_tele.post(
        DATA, json=series([1.0], drone_serial="SN1"), headers=bearer(role)
    )
    assert response.status_code == 403


async def test_a_scoped_token_sees_only_its_drones_readings_and_alerts(
    secured_tele: httpx.AsyncClient,
) -> None:
    admin = bearer("admin")
    await spiked(secured_tele, "a", drone_serial="SN1", headers=admin)
    theirs = await spiked(secured_tele, "b", drone_serial="SN2", headers=admin)
    await send(secured_tele, series([5.0], "c"), headers=admin)  # on no drone
    detector = bearer("detector", ["SN1"])
    readings = (await secured_tele.get(DATA, headers=detector)).json()
    assert readings["total"] == 42
    assert {item["drone_serial"] for item in readings["readings"]} == {"SN1"}
    other = await secured_tele.get(DATA, params={"drone_serial": "SN2"}, headers=detector)
    assert other.json()["total"] == 0
    alerts = (await secured_tele.get(ALERTS, headers=detector)).json()
    assert [alert["drone_serial"] for alert in alerts["alerts"]] == ["SN1"]
    stats = (await secured_tele.get("/api/v1/monitoring/stats", headers=detector)).json()
    assert (stats["sensor_data_total"], stats["anomalies_detected_total"]) == (42, 1)
    assert stats["active_sensors_count"] == 1
    everything = (await secured_tele.get("/api/v1/monitoring/stats", headers=admin)).json()
    assert everything["sensor_data_total"] == 85
    application = bearer("application", ["SN1"])
    response = await secured_tele.put(f"{ALERTS}/{theirs['id']}/resolve", headers=application)
    assert response.status_code == 404  # another drone's alert does not exist for it


# --- end to end --------------------------------------------------------------------------------


async def test_a_socketio_subscriber_of_the_drone_receives_the_anomaly_as_alert_event() -> None:
    app = create_dev_app(make_settings())
    async with serve(app) as url, httpx.AsyncClient(base_url=url) as http:
        client = await RecordingClient(url).connect()
        try:
            assert (await client.subscribe(droneSerial="SN1"))["ok"] is True
            for drone, sensor in (("SN1", "t1"), ("SN2", "t2")):
                body = series([*steady(40), 45.0], sensor, drone_serial=drone)
                assert (await http.post(DATA, json=body)).status_code == 202
            [event] = await client.wait_for(1, "alert:event")
            assert event["event"] == "telemetry.anomaly" and event["serial"] == "SN1"
            assert event["data"]["value"] == 45.0 and event["data"]["kind"] == "jump"
            assert client.events("drone:event") == []
        finally:
            await client.close()
