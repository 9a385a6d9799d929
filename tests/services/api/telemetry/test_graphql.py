"""Telemetry over GraphQL (seed 004): `POST /api/v1/graphql` with `sensorData` and
`anomalyAlerts`, as the seed's queries are written. Readings go in over REST; what GraphQL
answers is what the REST lists answer (same filters, scope and order), in camelCase."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from services.api.main import create_app
from tests.conftest import drop_database, make_settings
from tests.fixtures.auth import SECRET, bearer
from tests.fixtures.telemetry import DATA, product_client, recent, series, settle, steady

GRAPHQL = "/api/v1/graphql"

# Seed 004's example queries, exactly.
SEED_SENSOR_DATA = """
query {
  sensorData(sensorId: "sensor_001", limit: 10) {
    id
    sensorId
    value
    timestamp
    isAnomaly
    anomalyScore
  }
}
"""
SEED_ANOMALY_ALERTS = """
query {
  anomalyAlerts(severity: "high", resolved: false) {
    id
    sensorId
    severity
    message
    timestamp
  }
}
"""
READING_FIELDS = (
    "id sensorId sensorType value unit location metadata timestamp isAnomaly anomalyScore "
    "anomalyKind droneSerial"
)
ALERT_FIELDS = (
    "id sensorId sensorType severity message timestamp resolved resolvedAt value unit "
    "anomalyScore droneSerial kind"
)


@pytest.fixture
async def tele() -> AsyncIterator[httpx.AsyncClient]:
    async for client in product_client(make_settings()):
        yield client


@pytest.fixture
async def secured() -> AsyncIterator[httpx.AsyncClient]:
    async for client in product_client(make_settings(auth_enabled=True, secret_key=SECRET)):
        yield client


async def send(client: httpx.AsyncClient, body: Any, **kwargs: Any) -> Any:
    response = await client.post(DATA, json=body, **kwargs)
    assert response.status_code == 202, response.text
    await settle(client)
    return response.json()


async def spiked(client: httpx.AsyncClient, sensor: str, value: float, **fields: Any) -> dict:
    """40 readings at rest, one far off, one at rest; the far one as REST lists it."""
    await send(client, series([*steady(40), value, steady(41)[-1]], sensor, **fields))
    response = await client.get(DATA, params={"sensor_id": sensor, "limit": 2})
    stored: dict[str, Any] = response.json()["readings"][1]
    assert stored["value"] == value and stored["is_anomaly"] is True
    return stored


async def graphql(
    client: httpx.AsyncClient, query: str, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """The response body of a query that reached GraphQL (HTTP 200)."""
    response = await client.post(GRAPHQL, json={"query": query}, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def data(
    client: httpx.AsyncClient, query: str, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    body = await graphql(client, query, headers)
    assert "errors" not in body, body
    result: dict[str, Any] = body["data"]
    return result


async def error_messages(client: httpx.AsyncClient, query: str) -> list[str]:
    body = await graphql(client, query)
    assert body.get("errors"), body
    return [error["message"] for error in body["errors"]]


# --- the seed's queries ------------------------------------------------------------------------


async def test_the_seed_sensor_data_query_answers_the_readings_newest_first(
    tele: httpx.AsyncClient,
) -> None:
    spike = await spiked(tele, "sensor_001", 45.0)
    await send(tele, series([5.0], "other"))
    readings = (await data(tele, SEED_SENSOR_DATA))["sensorData"]
    rest = (await tele.get(DATA, params={"sensor_id": "sensor_001", "limit": 10})).json()
    assert len(readings) == 10
    assert [item["id"] for item in readings] == [item["id"] for item in rest["readings"]]
    assert readings[1] == {
        "id": spike["id"],
        "sensorId": "sensor_001",
        "value": 45.0,
        "timestamp": spike["timestamp"],
        "isAnomaly": True,
        "anomalyScore": spike["anomaly_score"],
    }


async def test_the_seed_anomaly_alerts_query_answers_the_open_alerts_of_a_severity(
    tele: httpx.AsyncClient,
) -> None:
    high = await spiked(tele, "x", 30.0)  # about three thresholds out
    await spiked(tele, "y", 500.0)  # critical
    assert high["severity"] == "high", high
    alerts = (await data(tele, SEED_ANOMALY_ALERTS))["anomalyAlerts"]
    assert [(a["id"], a["sensorId"], a["severity"]) for a in alerts] == [(high["id"], "x", "high")]
    assert alerts[0]["timestamp"] == high["timestamp"] and "noise scales" in alerts[0]["message"]
    resolved = await tele.put(f"/api/v1/sensors/alerts/{high['id']}/resolve")
    assert resolved.status_code == 200
    assert (await data(tele, SEED_ANOMALY_ALERTS))["anomalyAlerts"] == []


async def test_every_field_is_the_rest_value_in_camel_case(tele: httpx.AsyncClient) -> None:
    rest = await spiked(
        tele, "s1", 500.0, drone_serial="SN1", location="roof", metadata={"a": [1, {"b": 2}]}
    )
    answer = await data(
        tele,
        f"{{ sensorData(limit: 2) {{ {READING_FIELDS} }} anomalyAlerts {{ {ALERT_FIELDS} }} }}",
    )
    assert answer["sensorData"][1] == {
        "id": rest["id"],
        "sensorId": "s1",
        "sensorType": "temperature",
        "value": 500.0,
        "unit": "celsius",
        "location": "roof",
        "metadata": {"a": [1, {"b": 2}]},
        "timestamp": rest["timestamp"],
        "isAnomaly": True,
        "anomalyScore": rest["anomaly_score"],
        "anomalyKind": "jump",
        "droneSerial": "SN1",
    }
    alert = (await tele.get("/api/v1/sensors/alerts")).json()["alerts"][0]
    assert answer["anomalyAlerts"] == [
        {
            "id": rest["id"],
            "sensorId": "s1",
            "sensorType": "temperature",
            "severity": "critical",
            "message": alert["message"],
            "timestamp": rest["timestamp"],
            "resolved": False,
            "resolvedAt": None,
            "value": 500.0,
            "unit": "celsius",
            "anomalyScore": alert["anomaly_score"],
            "droneSerial": "SN1",
            "kind": "jump",
        }
    ]


# --- filters and pages -------------------------------------------------------------------------


async def test_sensor_data_filters_and_pages_as_rest(tele: httpx.AsyncClient) -> None:
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

    async def values(arguments: str = "") -> list[float]:
        query = f"{{ sensorData{f'({arguments})' if arguments else ''} {{ value }} }}"
        return [item["value"] for item in (await data(tele, query))["sensorData"]]

    assert await values() == [4.0, 3.0, 2.0, 1.0]
    assert await values('sensorId: "a"') == [2.0, 1.0]
    assert await values('sensorType: "humidity"') == [3.0]
    assert await values('location: "roof"') == [1.0]
    assert await values('droneSerial: "SN2"') == [4.0]
    assert await values("isAnomaly: true") == []
    assert await values("isAnomaly: false") == [4.0, 3.0, 2.0, 1.0]
    since, until = at(1, 0, "x")["timestamp"], at(2, 0, "x")["timestamp"]
    assert await values(f'since: "{since}", until: "{until}"') == [3.0, 2.0]
    assert await values("limit: 2, offset: 1") == [3.0, 2.0]


async def test_anomaly_alerts_filter_by_severity_drone_sensor_and_time(
    tele: httpx.AsyncClient,
) -> None:
    await spiked(tele, "x", 24.0, start=recent(900), drone_serial="SN1")
    await spiked(tele, "y", 500.0, start=recent(600))

    async def sensors(arguments: str = "") -> list[str]:
        query = f"{{ anomalyAlerts{f'({arguments})' if arguments else ''} {{ sensorId }} }}"
        return [item["sensorId"] for item in (await data(tele, query))["anomalyAlerts"]]

    assert await sensors() == ["y", "x"]
    assert await sensors('severity: "critical"') == ["y"]
    assert await sensors('droneSerial: "SN1"') == ["x"]
    assert await sensors('sensorId: "y"') == ["y"]
    assert await sensors("resolved: true") == []
    assert await sensors('until: "2000-01-01T00:00:00Z"') == []
    assert await sensors("limit: 1, offset: 1") == ["x"]


# --- bad arguments and documents ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("{ sensorData(limit: 0) { id } }", "limit: Input should be greater than or equal to 1"),
        ("{ sensorData(limit: 501) { id } }", "limit: Input should be less than or equal to 500"),
        ("{ anomalyAlerts(offset: -1) { id } }", "offset: Input should be greater than or equal"),
        ('{ sensorData(sensorId: "a b") { id } }', "sensorId: String should match pattern"),
        ('{ anomalyAlerts(droneSerial: "") { id } }', "droneSerial: String should match pattern"),
        ('{ anomalyAlerts(severity: "urgent") { id } }', "severity: Input should be 'critical'"),
        ('{ sensorData(since: "yesterday") { id } }', "since: Value error, must be an ISO 8601"),
        ('{ sensorData(limit: "ten") { id } }', "Int cannot represent non-integer value"),
        ("{ sensorData(colour: 1) { id } }", "Unknown argument 'colour'"),
        ("{ sensorData { password } }", "Cannot query field 'password'"),
        ("{ sensorData { id ", "Syntax Error"),
        ("mutation { resolve }", "mutation operation is not supported"),
    ],
)
async def test_bad_queries_are_graphql_errors_not_500s(
    tele: httpx.AsyncClient, query: str, says: str
) -> None:
    await send(tele, series([1.0]))
    body = await graphql(tele, query)
    assert body.get("data") is None
    messages = [error["message"] for error in body["errors"]]
    assert any(says in message for message in messages), messages


async def test_a_query_nested_deeper_than_five_is_refused(tele: httpx.AsyncClient) -> None:
    messages = await error_messages(
        tele, "{ sensorData { a { b { c { d { e { f { g } } } } } } } }"
    )
    assert "'anonymous' exceeds maximum operation depth of 5" in messages


async def test_a_document_nested_too_deeply_to_parse_is_refused(
    tele: httpx.AsyncClient,
) -> None:
    messages = await error_messages(tele, "{" + "a {" * 5000 + "}" * 5000 + "}")
    assert any("nested too deeply" in message for message in messages), messages


async def test_more_than_ten_aliases_are_refused(tele: httpx.AsyncClient) -> None:
    query = "{" + " ".join(f"a{n}: sensorData(limit: 500) {{ id }}" for n in range(11)) + "}"
    assert await error_messages(tele, query) == ["11 aliases found. Allowed: 10"]


async def test_a_document_over_the_body_limit_is_a_413(tele: httpx.AsyncClient) -> None:
    query = "{ sensorData { id } }" + "#" * (1024 * 1024)
    response = await tele.post(GRAPHQL, json={"query": query})
    assert response.status_code == 413
    assert response.json()["error"] == "PayloadTooLarge"


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        ("{}", "No GraphQL query found in the request"),
        ("{not json", "Unable to parse request body as JSON"),
        (b"\xff", "request body is not UTF-8"),
        ('"{ sensorData { id } }"', 'the body must be a JSON object with a "query"'),
        ('[{"query": "{ sensorData { id } }"}]', 'the body must be a JSON object with a "query"'),
        ('{"query": 5}', "wrong type: query"),
        ('{"query": "{ sensorData { id } }", "variables": "x"}', "wrong type: variables"),
        ('{"query": "{ sensorData { id } }", "variables": ' + "[" * 100_000 + "]" * 100_000 + "}",
         "request body is nested too deeply"),
    ],
)  # fmt: skip
async def test_a_body_that_is_not_a_graphql_request_is_a_400_json_error(
    tele: httpx.AsyncClient, content: str | bytes, detail: str
) -> None:
    response = await tele.post(
        GRAPHQL, content=content, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json() == {"error": "BadRequest", "detail": detail}


# --- who may see what --------------------------------------------------------------------------


async def test_no_token_is_a_401_json_error(secured: httpx.AsyncClient) -> None:
    response = await secured.post(GRAPHQL, json={"query": "{ sensorData { id } }"})
    assert response.status_code == 401
    assert response.json()["error"] == "Unauthorized"
    assert response.headers["WWW-Authenticate"] == "Bearer"
    bad = await secured.post(
        GRAPHQL,
        json={"query": "{ sensorData { id } }"},
        headers={"Authorization": "Bearer not-a-token"},
    )
    assert bad.status_code == 401


async def test_a_scoped_token_sees_only_its_drones_readings_and_alerts(
    secured: httpx.AsyncClient,
) -> None:
    admin = bearer("admin")
    await send(secured, series([*steady(30), 500.0, 20.0], "a", drone_serial="SN1"), headers=admin)
    await send(secured, series([*steady(30), 500.0, 20.0], "b", drone_serial="SN2"), headers=admin)
    await send(secured, series([5.0], "c"), headers=admin)  # on no drone
    query = "{ sensorData(limit: 500) { droneSerial } anomalyAlerts { droneSerial } }"
    detector = await data(secured, query, bearer("detector", ["SN1"]))
    assert len(detector["sensorData"]) == 32
    assert {item["droneSerial"] for item in detector["sensorData"]} == {"SN1"}
    assert detector["anomalyAlerts"] == [{"droneSerial": "SN1"}]
    theirs = await data(
        secured, '{ sensorData(droneSerial: "SN2") { id } }', bearer("detector", ["SN1"])
    )
    assert theirs["sensorData"] == []
    everything = await data(secured, query, admin)
    assert len(everything["sensorData"]) == 65
    assert len(everything["anomalyAlerts"]) == 2


@pytest.mark.parametrize("role", ["viewer", "operator", "application", "drone", "detector"])
async def test_every_role_that_may_read_may_query(secured: httpx.AsyncClient, role: str) -> None:
    assert await data(secured, "{ sensorData { id } }", bearer(role, ["SN1"])) == {"sensorData": []}


async def test_a_subscription_over_post_is_a_400_that_points_to_the_websocket(
    tele: httpx.AsyncClient,
) -> None:
    response = await tele.post(GRAPHQL, json={"query": "subscription { sensorData { id } }"})
    assert response.status_code == 400
    assert response.json() == {
        "error": "BadRequest",
        "detail": "subscriptions are not allowed when using POST",
    }


# --- GraphiQL ----------------------------------------------------------------------------------


async def test_graphiql_is_served_on_get_outside_production(tele: httpx.AsyncClient) -> None:
    response = await tele.get(GRAPHQL)
    assert response.status_code == 200
    assert "GraphiQL" in response.text
    assert response.headers["content-type"].startswith("text/html")


async def test_get_runs_no_query(tele: httpx.AsyncClient) -> None:
    await send(tele, series([1.0], "secret_sensor"))
    response = await tele.get(GRAPHQL, params={"query": "{ sensorData { sensorId } }"})
    assert "secret_sensor" not in response.text


async def test_no_graphiql_in_production() -> None:
    app = create_app(make_settings(environment="production", auth_enabled=True, secret_key=SECRET))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            response = await client.get(GRAPHQL)
            assert response.status_code == 405
            assert response.json()["error"] == "MethodNotAllowed"
            allowed = await client.post(
                GRAPHQL, json={"query": "{ sensorData { id } }"}, headers=bearer("viewer")
            )
            assert allowed.status_code == 200 and allowed.json() == {"data": {"sensorData": []}}
        await drop_database(app.state.runtime)
