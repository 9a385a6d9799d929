"""Telemetry over GraphQL (seed 004): `POST /api/v1/graphql` with `sensorData` and
`anomalyAlerts`, as the seed's queries are written. Readings go in over REST; what GraphQL
answers is what the REST lists answer (same filters, scope and order), in camelCase."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from services.api.main import create_app
from tests.conftest import drop_database, make_settings
from tests.fixtures.auth import SECRET, bearer
from tests.services.api.telemetry.test_endpoints import reading, send, steady

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
    "droneSerial"
)
ALERT_FIELDS = (
    "id sensorId sensorType severity message timestamp resolved resolvedAt value unit "
    "anomalyScore droneSerial"
)


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
    api_client: httpx.AsyncClient,
) -> None:
    stored = await send(api_client, [*steady(30, "sensor_001"), reading(23.1, "sensor_001")])
    await send(api_client, reading(5.0, "other"))
    readings = (await data(api_client, SEED_SENSOR_DATA))["sensorData"]
    assert len(readings) == 10
    spike = readings[0]
    assert spike == {
        "id": stored[-1]["id"],
        "sensorId": "sensor_001",
        "value": 23.1,
        "timestamp": stored[-1]["timestamp"],
        "isAnomaly": True,
        "anomalyScore": pytest.approx(6.2, abs=1e-3),
    }
    assert [item["id"] for item in readings] == [item["id"] for item in stored[::-1][:10]]
    assert [item["isAnomaly"] for item in readings] == [True] + [False] * 9


async def test_the_seed_anomaly_alerts_query_answers_the_open_alerts_of_a_severity(
    api_client: httpx.AsyncClient,
) -> None:
    high = await send(api_client, [*steady(30, "x"), reading(22.6, "x")])
    await send(api_client, [*steady(30, "y"), reading(23.1, "y")])  # critical
    alerts = (await data(api_client, SEED_ANOMALY_ALERTS))["anomalyAlerts"]
    assert alerts == [
        {
            "id": high[-1]["id"],
            "sensorId": "x",
            "severity": "high",
            "message": high[-1]["message"],
            "timestamp": high[-1]["timestamp"],
        }
    ]
    resolved = await api_client.put(f"/api/v1/sensors/alerts/{high[-1]['id']}/resolve")
    assert resolved.status_code == 200
    assert (await data(api_client, SEED_ANOMALY_ALERTS))["anomalyAlerts"] == []


async def test_every_field_is_the_rest_value_in_camel_case(api_client: httpx.AsyncClient) -> None:
    stored = await send(
        api_client,
        [
            *steady(30, "s1", drone_serial="SN1", location="roof"),
            reading(23.1, "s1", drone_serial="SN1", location="roof", metadata={"a": [1, {"b": 2}]}),
        ],
    )
    rest = stored[-1]
    answer = await data(
        api_client,
        f"{{ sensorData(limit: 1) {{ {READING_FIELDS} }} anomalyAlerts {{ {ALERT_FIELDS} }} }}",
    )
    assert answer["sensorData"] == [
        {
            "id": rest["id"],
            "sensorId": "s1",
            "sensorType": "temperature",
            "value": 23.1,
            "unit": "celsius",
            "location": "roof",
            "metadata": {"a": [1, {"b": 2}]},
            "timestamp": rest["timestamp"],
            "isAnomaly": True,
            "anomalyScore": rest["anomaly_score"],
            "droneSerial": "SN1",
        }
    ]
    assert answer["anomalyAlerts"] == [
        {
            "id": rest["id"],
            "sensorId": "s1",
            "sensorType": "temperature",
            "severity": "critical",
            "message": rest["message"],
            "timestamp": rest["timestamp"],
            "resolved": False,
            "resolvedAt": None,
            "value": 23.1,
            "unit": "celsius",
            "anomalyScore": rest["anomaly_score"],
            "droneSerial": "SN1",
        }
    ]


# --- filters and pages -------------------------------------------------------------------------


async def test_sensor_data_filters_and_pages_as_rest(api_client: httpx.AsyncClient) -> None:
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

    async def values(arguments: str = "") -> list[float]:
        query = f"{{ sensorData{f'({arguments})' if arguments else ''} {{ value }} }}"
        return [item["value"] for item in (await data(api_client, query))["sensorData"]]

    assert await values() == [4.0, 3.0, 2.0, 1.0]
    assert await values('sensorId: "a"') == [2.0, 1.0]
    assert await values('sensorType: "humidity"') == [3.0]
    assert await values('location: "roof"') == [1.0]
    assert await values('droneSerial: "SN2"') == [4.0]
    assert await values("isAnomaly: true") == []
    assert await values("isAnomaly: false") == [4.0, 3.0, 2.0, 1.0]
    assert await values('since: "2026-01-02T00:00:00Z", until: "2026-01-03T00:00:00Z"') == [
        3.0,
        2.0,
    ]
    assert await values("limit: 2, offset: 1") == [3.0, 2.0]


async def test_anomaly_alerts_filter_by_severity_drone_sensor_and_time(
    api_client: httpx.AsyncClient,
) -> None:
    await send(
        api_client, [*steady(30, "x", drone_serial="SN1"), reading(22.6, "x", drone_serial="SN1")]
    )
    await send(api_client, [*steady(30, "y"), reading(23.1, "y")])

    async def sensors(arguments: str = "") -> list[str]:
        query = f"{{ anomalyAlerts{f'({arguments})' if arguments else ''} {{ sensorId }} }}"
        return [item["sensorId"] for item in (await data(api_client, query))["anomalyAlerts"]]

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
        ("subscription { sensorData { id } }", "subscription operation is not supported"),
    ],
)
async def test_bad_queries_are_graphql_errors_not_500s(
    api_client: httpx.AsyncClient, query: str, says: str
) -> None:
    await send(api_client, reading(1.0))
    body = await graphql(api_client, query)
    assert body.get("data") is None
    messages = [error["message"] for error in body["errors"]]
    assert any(says in message for message in messages), messages


async def test_a_query_nested_deeper_than_five_is_refused(api_client: httpx.AsyncClient) -> None:
    messages = await error_messages(
        api_client, "{ sensorData { a { b { c { d { e { f { g } } } } } } } }"
    )
    assert "'anonymous' exceeds maximum operation depth of 5" in messages


async def test_a_document_nested_too_deeply_to_parse_is_refused(
    api_client: httpx.AsyncClient,
) -> None:
    messages = await error_messages(api_client, "{" + "a {" * 5000 + "}" * 5000 + "}")
    assert any("nested too deeply" in message for message in messages), messages


async def test_more_than_ten_aliases_are_refused(api_client: httpx.AsyncClient) -> None:
    query = "{" + " ".join(f"a{n}: sensorData(limit: 500) {{ id }}" for n in range(11)) + "}"
    assert await error_messages(api_client, query) == ["11 aliases found. Allowed: 10"]


async def test_a_document_over_the_body_limit_is_a_413(api_client: httpx.AsyncClient) -> None:
    query = "{ sensorData { id } }" + "#" * (1024 * 1024)
    response = await api_client.post(GRAPHQL, json={"query": query})
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
    api_client: httpx.AsyncClient, content: str | bytes, detail: str
) -> None:
    response = await api_client.post(
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
    await send(
        secured,
        [*steady(30, "a", drone_serial="SN1"), reading(23.1, "a", drone_serial="SN1")],
        headers=admin,
    )
    await send(
        secured,
        [*steady(30, "b", drone_serial="SN2"), reading(23.1, "b", drone_serial="SN2")],
        headers=admin,
    )
    await send(secured, reading(5.0, "c"), headers=admin)  # on no drone
    query = "{ sensorData(limit: 500) { droneSerial } anomalyAlerts { droneSerial } }"
    detector = await data(secured, query, bearer("detector", ["SN1"]))
    assert len(detector["sensorData"]) == 31
    assert {item["droneSerial"] for item in detector["sensorData"]} == {"SN1"}
    assert detector["anomalyAlerts"] == [{"droneSerial": "SN1"}]
    theirs = await data(
        secured, '{ sensorData(droneSerial: "SN2") { id } }', bearer("detector", ["SN1"])
    )
    assert theirs["sensorData"] == []
    everything = await data(secured, query, admin)
    assert len(everything["sensorData"]) == 63
    assert len(everything["anomalyAlerts"]) == 2


@pytest.mark.parametrize("role", ["viewer", "operator", "application", "drone", "detector"])
async def test_every_role_that_may_read_may_query(secured: httpx.AsyncClient, role: str) -> None:
    assert await data(secured, "{ sensorData { id } }", bearer(role, ["SN1"])) == {"sensorData": []}


# --- GraphiQL ----------------------------------------------------------------------------------


async def test_graphiql_is_served_on_get_outside_production(api_client: httpx.AsyncClient) -> None:
    response = await api_client.get(GRAPHQL)
    assert response.status_code == 200
    assert "GraphiQL" in response.text
    assert response.headers["content-type"].startswith("text/html")


async def test_get_runs_no_query(api_client: httpx.AsyncClient) -> None:
    await send(api_client, reading(1.0, "secret_sensor"))
    response = await api_client.get(GRAPHQL, params={"query": "{ sensorData { sensorId } }"})
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
