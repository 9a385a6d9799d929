"""Telemetry over REST (seed 004): a sensor sends readings, DroneCast stores them, flags the ones
far from the sensor's recent history, publishes those as `telemetry.anomaly`, and lists,
resolves and counts them. What a user sees: the seed's paths and fields, clear 4xx for bad
input with nothing stored, and seed 004's Prometheus metric names."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.dev import create_dev_app
from shared.models import TelemetryReading
from tests.conftest import make_settings
from tests.fixtures.auth import bearer
from tests.fixtures.events import EventRecorder, record_all
from tests.fixtures.servers import serve
from tests.fixtures.sio import RecordingClient

DATA = "/api/v1/sensors/data"
ALERTS = "/api/v1/sensors/alerts"

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
    "drone_serial", "received_at", "is_anomaly", "anomaly_score", "severity", "message",
    "resolved", "resolved_at",
}  # fmt: skip
ALERT_FIELDS = {
    "id", "sensor_id", "severity", "message", "timestamp", "resolved", "resolved_at", "value",
    "unit", "anomaly_score", "sensor_type", "location", "drone_serial",
}  # fmt: skip


def reading(value: float, sensor_id: str = "temp_1", **fields: Any) -> dict[str, Any]:
    return {"sensor_id": sensor_id, "sensor_type": "temperature", "value": value,
            "unit": "celsius", **fields}  # fmt: skip


def steady(count: int, sensor_id: str = "temp_1", **fields: Any) -> list[dict[str, Any]]:
    """`count` readings alternating 19.5 / 20.5: mean 20, standard deviation 0.5."""
    return [reading(20.0 + (0.5 if n % 2 else -0.5), sensor_id, **fields) for n in range(count)]


async def send(client: httpx.AsyncClient, body: Any, **kwargs: Any) -> Any:
    response = await client.post(DATA, json=body, **kwargs)
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture
async def events(api_client: httpx.AsyncClient) -> EventRecorder:
    return await record_all(api_client.app.state.broker)  # type: ignore[attr-defined]


# --- ingestion ---------------------------------------------------------------------------------


async def test_the_seed_reading_is_stored_and_answered_with_its_verdict(
    api_client: httpx.AsyncClient, events: EventRecorder
) -> None:
    stored = await send(api_client, SEED_READING)
    assert set(stored) == READING_FIELDS
    assert {key: stored[key] for key in SEED_READING} == SEED_READING
    assert stored["is_anomaly"] is False and stored["anomaly_score"] == 0.0
    assert stored["severity"] is None and stored["drone_serial"] is None
    assert stored["timestamp"].endswith("Z")
    document = await TelemetryReading.get(stored["id"])
    assert document is not None and document.public() == stored
    listed = (await api_client.get(DATA)).json()
    assert listed["readings"] == [stored]
    assert events.events == []  # a normal reading publishes nothing


async def test_a_batch_is_stored_in_order_and_answered_as_a_list(
    api_client: httpx.AsyncClient,
) -> None:
    body = [reading(float(n), "s1", timestamp=f"2026-01-01T00:00:0{n}Z") for n in range(5)]
    stored = await send(api_client, body)
    assert [item["value"] for item in stored] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert stored[2]["timestamp"] == "2026-01-01T00:00:02.000Z"
    listed = (await api_client.get(DATA, params={"sensor_id": "s1"})).json()
    assert [item["id"] for item in listed["readings"]] == [item["id"] for item in stored][::-1]


async def test_a_batch_without_timestamps_lists_newest_last_sent_first(
    api_client: httpx.AsyncClient,
) -> None:
    stored = await send(api_client, [reading(float(n)) for n in range(3)])
    listed = (await api_client.get(DATA)).json()["readings"]
    assert [item["value"] for item in listed] == [2.0, 1.0, 0.0]
    assert len({item["timestamp"] for item in stored}) == 1  # server time, one request


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
async def test_bad_readings_are_a_422_and_store_nothing(
    api_client: httpx.AsyncClient, body: str
) -> None:
    response = await api_client.post(
        DATA, content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "ValidationError"
    assert await TelemetryReading.count() == 0


async def test_a_batch_over_500_is_a_422_that_says_so(api_client: httpx.AsyncClient) -> None:
    response = await api_client.post(DATA, json=[reading(1.0)] * 501)
    assert response.status_code == 422
    assert "at most 500" in response.json()["detail"]
    assert await TelemetryReading.count() == 0


async def test_deeply_nested_json_is_refused_without_a_500(api_client: httpx.AsyncClient) -> None:
    body = '{"sensor_id": "s1", "sensor_type": "t", "value": 1, "metadata": '
    body += '{"a": ' * 5000 + "1" + "}" * 5000 + "}"
    response = await api_client.post(
        DATA, content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code in (400, 422), response.text
    assert await TelemetryReading.count() == 0


# --- detection ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spike", "severity"),
    [(21.6, "low"), (22.1, "medium"), (22.6, "high"), (23.1, "critical"), (16.9, "critical")],
)
async def test_a_spike_after_steady_readings_is_an_anomaly_of_its_severity(
    api_client: httpx.AsyncClient, spike: float, severity: str
) -> None:
    await send(api_client, steady(30))
    flagged = await send(api_client, reading(spike))
    z = abs(spike - 20.0) / 0.5
    assert flagged["is_anomaly"] is True
    assert flagged["anomaly_score"] == pytest.approx(z, abs=1e-3)
    assert flagged["severity"] == severity
    assert flagged["resolved"] is False
    assert flagged["message"] == (
        f"temperature {spike:g} celsius is {z:.1f}\u03c3 from the mean of the last 30 readings (20)"
    )


async def test_a_reading_within_three_sigma_is_normal_with_its_score(
    api_client: httpx.AsyncClient,
) -> None:
    await send(api_client, steady(30))
    normal = await send(api_client, reading(21.4))
    assert normal["is_anomaly"] is False
    assert normal["anomaly_score"] == pytest.approx(2.8)
    assert normal["severity"] is None and normal["message"] is None


async def test_fewer_than_min_samples_gives_no_verdict(api_client: httpx.AsyncClient) -> None:
    await send(api_client, steady(19))
    first = await send(api_client, reading(100.0))
    assert (first["is_anomaly"], first["anomaly_score"]) == (False, 0.0)
    # Now there are 20 readings in the history (the 100.0 among them), so the next one is judged.
    second = await send(api_client, reading(1000.0))
    assert second["is_anomaly"] is True


async def test_a_sensor_is_judged_only_against_its_own_history(
    api_client: httpx.AsyncClient,
) -> None:
    await send(api_client, steady(30, "temp_1"))
    other = await send(api_client, reading(500.0, "temp_2"))
    assert (other["is_anomaly"], other["anomaly_score"]) == (False, 0.0)


async def test_a_spike_inside_a_batch_is_judged_against_the_readings_before_it(
    api_client: httpx.AsyncClient,
) -> None:
    stored = await send(api_client, [*steady(30), reading(23.1), *steady(2)])
    assert [item["is_anomaly"] for item in stored] == [False] * 30 + [True, False, False]
    assert stored[30]["severity"] == "critical"


async def test_history_is_the_last_n_readings(api_client: httpx.AsyncClient) -> None:
    """TELEMETRY_HISTORY_SIZE=100: a level shift 100 readings ago no longer counts."""
    await send(api_client, [reading(1000.0) for _ in range(50)] + steady(100))
    flagged = await send(api_client, reading(22.6))
    assert flagged["severity"] == "high"
    assert "of the last 100 readings" in flagged["message"]


async def test_constant_readings_never_flag(api_client: httpx.AsyncClient) -> None:
    await send(api_client, [reading(20.0) for _ in range(30)])
    same = await send(api_client, reading(25.0))
    assert (same["is_anomaly"], same["anomaly_score"]) == (False, 0.0)


# --- events ------------------------------------------------------------------------------------


async def test_an_anomaly_publishes_telemetry_anomaly_on_its_drone(
    api_client: httpx.AsyncClient, events: EventRecorder
) -> None:
    await send(api_client, steady(30, drone_serial="SN1"))
    flagged = await send(api_client, reading(23.1, drone_serial="SN1"))
    [event] = await events.wait_for(1)
    assert event["event"] == "telemetry.anomaly"
    assert event["serial"] == "SN1"
    assert events.channels == ["drone:SN1:telemetry"]
    assert set(event["data"]) == ALERT_FIELDS
    assert event["data"]["id"] == flagged["id"]
    assert event["data"]["severity"] == "critical" and event["data"]["resolved"] is False
    document = await TelemetryReading.get(flagged["id"])
    assert document is not None and document.outbox == []  # published, then pulled


async def test_an_anomaly_of_no_drone_goes_on_the_fleet_wide_channel(
    api_client: httpx.AsyncClient, events: EventRecorder
) -> None:
    await send(api_client, [*steady(30), reading(23.1)])
    [event] = await events.wait_for(1)
    assert event["serial"] is None
    assert events.channels == ["drone:all:telemetry"]


# --- lists -------------------------------------------------------------------------------------


async def test_filters_and_pages(api_client: httpx.AsyncClient) -> None:
    await send(
        api_client,
        [
            reading(1.0, "a", location="roof", timestamp="2026-01-01T00:00:00Z"),
            reading(2.0, "a", location="hall", timestamp="2026-01-02T00:00:00Z"),
            {**reading(3.0, "b", drone_serial="SN1"), "sensor_type": "humidity",
             "timestamp": "2026-01-03T00:00:00Z"},
            reading(4.0, "c", drone_serial="SN2", timestamp="2026-01-04T00:00:00Z"),
        ],
    )  # fmt: skip

    async def values(**params: Any) -> list[float]:
        response = await api_client.get(DATA, params=params)
        assert response.status_code == 200, response.text
        return [item["value"] for item in response.json()["readings"]]

    assert await values() == [4.0, 3.0, 2.0, 1.0]
    assert await values(sensor_id="a") == [2.0, 1.0]
    assert await values(sensor_type="humidity") == [3.0]
    assert await values(location="roof") == [1.0]
    assert await values(drone_serial="SN2") == [4.0]
    assert await values(is_anomaly="false") == [4.0, 3.0, 2.0, 1.0]
    assert await values(is_anomaly="true") == []
    assert await values(since="2026-01-02T00:00:00Z", until="2026-01-03T00:00:00Z") == [3.0, 2.0]
    assert await values(limit=2, offset=1) == [3.0, 2.0]
    page = (await api_client.get(DATA, params={"limit": 1})).json()
    assert (page["count"], page["total"], page["limit"], page["offset"]) == (1, 4, 1, 0)


@pytest.mark.parametrize(
    "params",
    [{"limit": 501}, {"limit": 0}, {"offset": -1}, {"since": "yesterday"}, {"sensor_id": "a b"},
     {"is_anomaly": "maybe"}],
)  # fmt: skip
async def test_bad_list_parameters_are_a_422(
    api_client: httpx.AsyncClient, params: dict[str, Any]
) -> None:
    response = await api_client.get(DATA, params=params)
    assert response.status_code == 422
    assert response.json()["error"] == "ValidationError"


async def test_alerts_list_the_anomalies_with_filters(api_client: httpx.AsyncClient) -> None:
    await send(
        api_client, [*steady(30, "x", drone_serial="SN1"), reading(22.6, "x", drone_serial="SN1")]
    )
    await send(api_client, [*steady(30, "y"), reading(23.1, "y")])
    listed = (await api_client.get(ALERTS)).json()
    assert listed["total"] == 2
    assert [alert["sensor_id"] for alert in listed["alerts"]] == ["y", "x"]
    assert all(set(alert) == ALERT_FIELDS for alert in listed["alerts"])

    async def sensors(**params: Any) -> list[str]:
        response = await api_client.get(ALERTS, params=params)
        assert response.status_code == 200, response.text
        return [alert["sensor_id"] for alert in response.json()["alerts"]]

    assert await sensors(severity="high") == ["x"]
    assert await sensors(severity="critical") == ["y"]
    assert await sensors(drone_serial="SN1") == ["x"]
    assert await sensors(sensor_id="y") == ["y"]
    assert await sensors(resolved="true") == []
    assert await sensors(until="2000-01-01T00:00:00Z") == []
    assert (await api_client.get(ALERTS, params={"severity": "urgent"})).status_code == 422


async def test_resolve_once_then_409_and_the_change_is_published(
    api_client: httpx.AsyncClient, events: EventRecorder
) -> None:
    stored = await send(
        api_client, [*steady(30, drone_serial="SN1"), reading(23.1, drone_serial="SN1")]
    )
    alert_id = stored[-1]["id"]
    resolved = await api_client.put(f"{ALERTS}/{alert_id}/resolve")
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["resolved"] is True and resolved.json()["resolved_at"].endswith("Z")
    again = await api_client.put(f"{ALERTS}/{alert_id}/resolve")
    assert again.status_code == 409 and again.json()["error"] == "Conflict"
    created, update = await events.wait_for(2)
    assert (created["data"]["resolved"], update["data"]["resolved"]) == (False, True)
    assert update["event"] == "telemetry.anomaly" and update["data"]["id"] == alert_id
    assert [
        a["id"]
        for a in (await api_client.get(ALERTS, params={"resolved": "true"})).json()["alerts"]
    ] == [alert_id]
    assert (await api_client.get(ALERTS, params={"resolved": "false"})).json()["total"] == 0


@pytest.mark.parametrize("alert_id", ["6b049c6a69e8370909f4a38a", "not-an-id", "normal"])
async def test_resolving_what_is_not_an_anomaly_is_a_404(
    api_client: httpx.AsyncClient, alert_id: str
) -> None:
    if alert_id == "normal":
        alert_id = (await send(api_client, reading(1.0)))["id"]
    response = await api_client.put(f"{ALERTS}/{alert_id}/resolve")
    assert response.status_code == 404
    assert response.json()["error"] == "NotFound"


# --- stats, health and metrics -----------------------------------------------------------------


async def test_stats_count_readings_anomalies_and_active_sensors(
    api_client: httpx.AsyncClient,
) -> None:
    await send(api_client, [*steady(30, "x"), reading(22.6, "x")])
    critical = await send(api_client, [*steady(30, "z"), reading(23.1, "z")])
    await send(api_client, reading(1.0, "y"))
    await api_client.put(f"{ALERTS}/{critical[-1]['id']}/resolve")
    stats = (await api_client.get("/api/v1/monitoring/stats")).json()
    assert stats == {
        "sensor_data_total": 63,
        "anomalies_detected_total": 2,
        "unresolved_anomalies": 1,
        "active_sensors_count": 3,
        "anomalies_by_severity": {"critical": 1, "high": 1, "medium": 0, "low": 0},
        "unresolved_by_severity": {"critical": 0, "high": 1, "medium": 0, "low": 0},
    }


async def test_monitoring_health_reports_each_component(api_client: httpx.AsyncClient) -> None:
    response = await api_client.get("/api/v1/monitoring/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["components"] == {"mongodb": {"status": "ok"}, "redis": {"status": "ok"}}
    assert body["checks"] == (await api_client.get("/ready")).json()["checks"]


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


async def test_seed_metrics_count_what_was_received(api_client: httpx.AsyncClient) -> None:
    async def scrape(path: str = "/api/v1/monitoring/metrics") -> dict[Any, float]:
        response = await api_client.get(path)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        return samples(response.text)

    before = await scrape()
    await send(api_client, [*steady(30, "x"), reading(22.6, "x")])
    await send(api_client, reading(1.0, "y"))
    after = await scrape()

    def grew(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert grew("sensor_data_total") == 32
    assert grew("anomalies_detected_total", severity="high") == 1
    assert grew("anomalies_detected_total", severity="critical") == 0
    assert grew("data_processing_seconds_count") == 2  # two POSTs
    assert after[("active_sensors_count", ())] == 2
    plain = await scrape("/metrics")
    assert plain[("sensor_data_total", ())] == after[("sensor_data_total", ())]
    assert plain[("active_sensors_count", ())] == 2


# --- who may do what ---------------------------------------------------------------------------


async def test_a_drone_sends_only_for_itself_and_must_say_so(secured: httpx.AsyncClient) -> None:
    drone = bearer("drone", ["SN1"])
    mine = await secured.post(DATA, json=reading(1.0, drone_serial="SN1"), headers=drone)
    assert mine.status_code == 201
    theirs = await secured.post(DATA, json=reading(1.0, drone_serial="SN2"), headers=drone)
    assert theirs.status_code == 404
    unnamed = await secured.post(DATA, json=reading(1.0), headers=drone)
    assert unnamed.status_code == 403 and "drone_serial" in unnamed.json()["detail"]
    mixed = [reading(1.0, drone_serial="SN1"), reading(1.0, drone_serial="SN2")]
    assert (await secured.post(DATA, json=mixed, headers=drone)).status_code == 404
    assert await TelemetryReading.count() == 1  # only the first, allowed one


@pytest.mark.parametrize("role", ["viewer", "detector", "operator", "application"])
async def test_other_roles_may_not_send(secured: httpx.AsyncClient, role: str) -> None:
    response = await secured.post(DATA, json=reading(1.0, drone_serial="SN1"), headers=bearer(role))
    assert response.status_code == 403


async def test_a_scoped_token_sees_only_its_drones_readings_and_alerts(
    secured: httpx.AsyncClient,
) -> None:
    admin = bearer("admin")
    await send(
        secured,
        [*steady(30, "a", drone_serial="SN1"), reading(23.1, "a", drone_serial="SN1")],
        headers=admin,
    )
    theirs = await send(
        secured,
        [*steady(30, "b", drone_serial="SN2"), reading(23.1, "b", drone_serial="SN2")],
        headers=admin,
    )
    await send(secured, reading(5.0, "c"), headers=admin)  # on no drone
    detector = bearer("detector", ["SN1"])
    readings = (await secured.get(DATA, headers=detector)).json()
    assert readings["total"] == 31
    assert {item["drone_serial"] for item in readings["readings"]} == {"SN1"}
    assert (await secured.get(DATA, params={"drone_serial": "SN2"}, headers=detector)).json()[
        "total"
    ] == 0
    alerts = (await secured.get(ALERTS, headers=detector)).json()
    assert [alert["drone_serial"] for alert in alerts["alerts"]] == ["SN1"]
    stats = (await secured.get("/api/v1/monitoring/stats", headers=detector)).json()
    assert (stats["sensor_data_total"], stats["anomalies_detected_total"]) == (31, 1)
    assert stats["active_sensors_count"] == 1
    everything = (await secured.get("/api/v1/monitoring/stats", headers=admin)).json()
    assert everything["sensor_data_total"] == 63
    application = bearer("application", ["SN1"])
    response = await secured.put(f"{ALERTS}/{theirs[-1]['id']}/resolve", headers=application)
    assert response.status_code == 404  # another drone's alert does not exist for it


# --- end to end --------------------------------------------------------------------------------


async def test_a_socketio_subscriber_of_the_drone_receives_the_anomaly_as_alert_event() -> None:
    app = create_dev_app(make_settings())
    async with serve(app) as url, httpx.AsyncClient(base_url=url) as http:
        client = await RecordingClient(url).connect()
        try:
            assert (await client.subscribe(droneSerial="SN1"))["ok"] is True
            await send(http, [*steady(30, drone_serial="SN1"), reading(22.6, drone_serial="SN1")])
            await send(
                http,
                [
                    *steady(30, "other", drone_serial="SN2"),
                    reading(50.0, "other", drone_serial="SN2"),
                ],
            )
            [event] = await client.wait_for(1, "alert:event")
            assert event["event"] == "telemetry.anomaly" and event["serial"] == "SN1"
            assert event["data"]["severity"] == "high"
            assert event["data"]["value"] == 22.6
            assert client.events("drone:event") == []
        finally:
            await client.close()
