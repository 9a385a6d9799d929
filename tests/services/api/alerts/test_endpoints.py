"""Alerts over REST (seed 000): the seed's curl bodies and paths, the lifecycle, the events it
publishes, and every way to get it wrong (a clear 4xx, and nothing changed)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from shared.models import Alert
from tests.fixtures.events import EventRecorder, record_all

# Seed 000's "Create test alert" curl body, exactly.
SEED_CURL_BODY = {
    "alert_type": "intrusion",
    "score": 0.8,
    "location": {"lat": 40.7128, "lng": -74.0060},
    "drone_id": "test_drone",
}
PUBLIC_FIELDS = {
    "alert_id", "alert_type", "score", "image_url", "location", "drone_id", "timestamp",
    "response", "image_received", "actions", "status", "description", "severity",
}  # fmt: skip


@pytest.fixture
async def events(api_client: httpx.AsyncClient) -> EventRecorder:
    return await record_all(api_client.app.state.broker)  # type: ignore[attr-defined]


async def create(client: httpx.AsyncClient, prefix: str = "/api", **fields: Any) -> dict:
    response = await client.post(f"{prefix}/alerts", json={**SEED_CURL_BODY, **fields})
    assert response.status_code == 201, response.text
    return response.json()


async def respond(client: httpx.AsyncClient, alert_id: str, **body: Any) -> httpx.Response:
    return await client.put(
        f"/api/alerts/{alert_id}/response",
        json={"actions": ["activate_security", "notify_authorities"], "response": 1, **body},
    )


async def stored(alert_id: str) -> dict[str, Any]:
    alert = await Alert.find_one({"alert_id": alert_id})
    assert alert is not None
    return alert.model_dump(exclude={"id"})


@pytest.mark.parametrize("prefix", ["/api", "/api/v1"])
async def test_seed_curl_body_creates_a_pending_alert_and_publishes_created(
    api_client: httpx.AsyncClient, events: EventRecorder, prefix: str
) -> None:
    alert = await create(api_client, prefix)
    assert set(alert) == PUBLIC_FIELDS
    assert alert["alert_id"].startswith("alert_")
    assert alert["status"] == "pending"
    assert alert["response"] == 0 and alert["image_received"] == 0
    assert alert["actions"] == [] and alert["image_url"] is None
    assert alert["drone_id"] == "test_drone"  # an unregistered drone is fine
    assert alert["location"] == {"lat": 40.7128, "lng": -74.006}
    assert alert["severity"] == "high"  # derived from score 0.8
    assert alert["timestamp"].endswith("Z")
    [created] = await events.wait_for(1)
    assert created["event"] == "alert.created"
    assert created["serial"] == "test_drone"
    assert created["data"]["full"] == alert
    assert events.channels == ["drone:test_drone:incident"]


@pytest.mark.parametrize(
    ("fields", "severity"),
    [
        ({"score": 0.95}, "critical"),
        ({"score": 0.9}, "critical"),
        ({"score": 0.7}, "high"),
        ({"score": 0.5}, "medium"),
        ({"score": 0.1}, "low"),
        ({"score": 0.1, "severity": "critical"}, "critical"),
    ],
)
async def test_severity_comes_from_the_request_or_the_score(
    api_client: httpx.AsyncClient, fields: dict[str, Any], severity: str
) -> None:
    assert (await create(api_client, **fields))["severity"] == severity


async def test_drone_timestamp_is_kept_as_utc(api_client: httpx.AsyncClient) -> None:
    alert = await create(api_client, timestamp="2026-01-02T03:04:05.678+02:00")
    assert alert["timestamp"] == "2026-01-02T01:04:05.678Z"


@pytest.mark.parametrize(
    "field", [{"status": "completed"}, {"response": 1}, {"alert_id": "mine"}, {"actions": ["x"]}]
)
async def test_server_kept_fields_in_the_body_are_a_422(
    api_client: httpx.AsyncClient, field: dict[str, Any]
) -> None:
    response = await api_client.post("/api/alerts", json={**SEED_CURL_BODY, **field})
    assert response.status_code == 422
    assert await Alert.find_all().count() == 0


async def test_seed_clients_extra_fields_are_accepted(api_client: httpx.AsyncClient) -> None:
    """What seed 000's own clients send besides the schema: timestamps, and echoes of the id."""
    alert = await create(api_client, timestamp="2026-01-01T00:00:00")
    alert_id = alert["alert_id"]
    responded = await api_client.put(
        f"/api/alerts/{alert_id}/response",
        json={"alert_id": alert_id, "actions": ["a"], "response": 1, "timestamp": "2026-01-01"},
    )
    assert responded.status_code == 200, responded.text
    imaged = await api_client.put(
        f"/api/alerts/{alert_id}/image",
        json={"alert_id": alert_id, "image_url": "u", "image_received": 1, "timestamp": None},
    )
    assert imaged.status_code == 200, imaged.text


@pytest.mark.parametrize("prefix", ["/api", "/api/v1"])
async def test_get_returns_the_alert_on_both_paths(
    api_client: httpx.AsyncClient, prefix: str
) -> None:
    alert = await create(api_client)
    response = await api_client.get(f"{prefix}/alerts/{alert['alert_id']}")
    assert response.status_code == 200
    assert response.json() == alert


async def test_whole_lifecycle_publishes_each_step(
    api_client: httpx.AsyncClient, events: EventRecorder
) -> None:
    alert = await create(api_client)
    responded = await respond(api_client, alert["alert_id"])
    assert responded.status_code == 200, responded.text
    assert responded.json()["status"] == "responded"
    assert responded.json()["response"] == 1
    assert responded.json()["actions"] == ["activate_security", "notify_authorities"]
    imaged = await api_client.put(
        f"/api/v1/alerts/{alert['alert_id']}/image",
        json={"image_url": "http://localhost:8000/uploads/image.jpg"},
    )
    assert imaged.status_code == 200, imaged.text
    final = imaged.json()
    assert final["status"] == "completed" and final["image_received"] == 1
    assert final["image_url"] == "http://localhost:8000/uploads/image.jpg"
    await events.wait_for(3)
    assert events.names == ["alert.created", "alert.responded", "alert.completed"]
    assert events.events[1]["data"]["changes"] == {
        "status": {"old": "pending", "new": "responded"},
        "response": {"old": 0, "new": 1},
        "actions": {"old": [], "new": ["activate_security", "notify_authorities"]},
    }
    assert events.events[2]["data"]["full"] == final
    assert set(events.events[2]["data"]["changes"]) == {"status", "image_received", "image_url"}


async def test_a_response_leaves_a_pending_command_for_the_drone(
    api_client: httpx.AsyncClient,
) -> None:
    alert = await create(api_client)
    await respond(api_client, alert["alert_id"])
    document = await stored(alert["alert_id"])
    assert document["command_state"] == "pending"
    assert document["command_session"] is None
    assert document["outbox"] == []  # the event went out


async def test_response_on_an_alert_that_is_not_pending_is_a_409_and_changes_nothing(
    api_client: httpx.AsyncClient, events: EventRecorder
) -> None:
    alert = await create(api_client)
    assert (await respond(api_client, alert["alert_id"])).status_code == 200
    before = await stored(alert["alert_id"])
    second = await respond(api_client, alert["alert_id"], actions=["something_else"])
    assert second.status_code == 409
    assert second.json()["error"] == "Conflict"
    assert "responded" in second.json()["detail"]
    assert await stored(alert["alert_id"]) == before
    await asyncio.sleep(0.05)
    assert events.names == ["alert.created", "alert.responded"]


@pytest.mark.parametrize("respond_first", [False, True])
async def test_image_on_an_alert_that_is_not_responded_is_a_409(
    api_client: httpx.AsyncClient, respond_first: bool
) -> None:
    alert = await create(api_client)
    if respond_first:  # responded -> completed, then a second image
        await respond(api_client, alert["alert_id"])
        await api_client.put(f"/api/alerts/{alert['alert_id']}/image", json={"image_url": "a"})
    before = await stored(alert["alert_id"])
    response = await api_client.put(
        f"/api/alerts/{alert['alert_id']}/image", json={"image_url": "http://x/late.jpg"}
    )
    assert response.status_code == 409
    assert response.json()["error"] == "Conflict"
    assert await stored(alert["alert_id"]) == before


async def test_racing_responses_exactly_one_wins(
    api_client: httpx.AsyncClient, events: EventRecorder
) -> None:
    alert = await create(api_client)
    results = await asyncio.gather(
        *(respond(api_client, alert["alert_id"], actions=[f"action_{n}"]) for n in range(10))
    )
    codes = sorted(r.status_code for r in results)
    assert codes == [200] + [409] * 9
    winner = next(r.json() for r in results if r.status_code == 200)
    assert (await stored(alert["alert_id"]))["actions"] == winner["actions"]
    await asyncio.sleep(0.05)
    assert events.names.count("alert.responded") == 1


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/alerts/alert_nope", None),
        ("GET", "/api/v1/alerts/alert_nope", None),
        ("PUT", "/api/alerts/alert_nope/response", {"actions": ["a"], "response": 1}),
        ("PUT", "/api/alerts/alert_nope/image", {"image_url": "http://x/y.jpg"}),
    ],
)
async def test_unknown_alert_is_a_404(
    api_client: httpx.AsyncClient, method: str, path: str, body: dict | None
) -> None:
    response = await api_client.request(method, path, json=body)
    assert response.status_code == 404
    assert response.json()["error"] == "NotFound"


@pytest.mark.parametrize(
    "body",
    [
        {**SEED_CURL_BODY, "alert_type": "alien_invasion"},
        {**SEED_CURL_BODY, "score": 1.5},
        {**SEED_CURL_BODY, "score": -0.1},
        {**SEED_CURL_BODY, "score": "0.8"},
        {**SEED_CURL_BODY, "score": True},
        {**SEED_CURL_BODY, "location": {"lat": 91, "lng": 0}},
        {**SEED_CURL_BODY, "location": {"lat": 0, "lng": -180.5}},
        {**SEED_CURL_BODY, "location": {"lat": 0}},
        {**SEED_CURL_BODY, "location": {"lat": 0, "lng": 0, "$where": "1"}},
        {**SEED_CURL_BODY, "location": [40.7, -74.0]},
        {**SEED_CURL_BODY, "drone_id": "bad id"},
        {**SEED_CURL_BODY, "drone_id": "all"},
        {**SEED_CURL_BODY, "drone_id": {"$ne": None}},
        {**SEED_CURL_BODY, "severity": "apocalyptic"},
        {**SEED_CURL_BODY, "timestamp": "yesterday"},
        {**SEED_CURL_BODY, "timestamp": 0},
        {**SEED_CURL_BODY, "description": "x" * 2001},
        {k: v for k, v in SEED_CURL_BODY.items() if k != "drone_id"},
        {k: v for k, v in SEED_CURL_BODY.items() if k != "score"},
        [],
    ],
)
async def test_invalid_alert_is_a_422_and_stores_nothing(
    api_client: httpx.AsyncClient, events: EventRecorder, body: Any
) -> None:
    response = await api_client.post("/api/alerts", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "ValidationError"
    assert response.json()["detail"]
    assert await Alert.find_all().count() == 0
    await asyncio.sleep(0.02)
    assert events.names == []


@pytest.mark.parametrize(
    ("suffix", "body"),
    [
        ("response", {"actions": "activate_security"}),
        ("response", {"actions": ["a"], "response": 0}),
        ("response", {"actions": [""]}),
        ("response", {"actions": [{"$ne": 1}]}),
        ("response", {}),
        ("image", {}),
        ("image", {"image_url": ""}),
        ("image", {"image_url": "http://x/y.jpg", "image_received": 0}),
        ("image", {"image_url": "http://x/y.jpg", "timestamp": 1700000000}),
        ("response", {"actions": ["a"], "timestamp": "0.5"}),
    ],
)
async def test_invalid_response_or_image_is_a_422_and_changes_nothing(
    api_client: httpx.AsyncClient, suffix: str, body: dict[str, Any]
) -> None:
    alert = await create(api_client)
    if suffix == "image":
        await respond(api_client, alert["alert_id"])
    before = await stored(alert["alert_id"])
    response = await api_client.put(f"/api/alerts/{alert['alert_id']}/{suffix}", json=body)
    assert response.status_code == 422, response.text
    assert await stored(alert["alert_id"]) == before


async def test_malformed_json_is_a_400(api_client: httpx.AsyncClient) -> None:
    response = await api_client.post(
        "/api/alerts", content=b'{"alert_type": ', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json() == {"error": "BadRequest", "detail": "request body is not valid JSON"}


async def test_list_filters_and_paginates(api_client: httpx.AsyncClient) -> None:
    first = await create(api_client, drone_id="drone_001", timestamp="2026-01-01T10:00:00Z")
    await create(
        api_client, drone_id="drone_001", alert_type="fire", score=0.95,
        timestamp="2026-01-01T11:00:00Z",
    )  # fmt: skip
    await create(api_client, drone_id="drone_002", score=0.2, timestamp="2026-01-01T12:00:00Z")
    await respond(api_client, first["alert_id"])

    async def ids(**params: Any) -> list[str]:
        response = await api_client.get("/api/alerts", params=params)
        assert response.status_code == 200, response.text
        return [
            alert["drone_id"] + "/" + alert["alert_type"] for alert in response.json()["alerts"]
        ]

    everything = (await api_client.get("/api/alerts")).json()
    assert everything["count"] == everything["total"] == 3
    assert everything["limit"] == 50 and everything["offset"] == 0
    assert [a["timestamp"] for a in everything["alerts"]] == [
        "2026-01-01T12:00:00.000Z",
        "2026-01-01T11:00:00.000Z",
        "2026-01-01T10:00:00.000Z",
    ]  # fmt: skip  (newest first)
    assert await ids(drone_id="drone_001") == ["drone_001/fire", "drone_001/intrusion"]
    assert await ids(status="responded") == ["drone_001/intrusion"]
    assert await ids(alert_type="fire") == ["drone_001/fire"]
    assert await ids(severity="low") == ["drone_002/intrusion"]
    assert await ids(since="2026-01-01T10:30:00Z", until="2026-01-01T11:30:00Z") == [
        "drone_001/fire"
    ]
    page = (await api_client.get("/api/v1/alerts", params={"limit": 1, "offset": 1})).json()
    assert page["count"] == 1 and page["total"] == 3
    assert page["alerts"][0]["alert_type"] == "fire"


@pytest.mark.parametrize(
    "params",
    [
        {"status": "lost"},
        {"alert_type": "alien"},
        {"severity": "meh"},
        {"drone_id": "bad id"},
        {"since": "yesterday"},
        {"until": "0.5"},
        {"until": "1700000000"},
        {"limit": 0},
        {"limit": 501},
        {"offset": -1},
    ],
)
async def test_bad_list_filters_are_a_422(
    api_client: httpx.AsyncClient, params: dict[str, Any]
) -> None:
    response = await api_client.get("/api/alerts", params=params)
    assert response.status_code == 422
    assert response.json()["error"] == "ValidationError"


async def test_stats_count_by_status_type_and_severity(api_client: httpx.AsyncClient) -> None:
    first = await create(api_client)
    await create(api_client, alert_type="fire", score=0.95)
    await respond(api_client, first["alert_id"])
    for path in ("/api/stats", "/api/v1/stats"):
        stats = (await api_client.get(path)).json()
        assert stats["alerts"]["total"] == 2
        assert stats["alerts"]["by_status"] == {"pending": 1, "responded": 1, "completed": 0}
        assert stats["alerts"]["by_type"]["intrusion"] == 1
        assert stats["alerts"]["by_type"]["fire"] == 1
        assert stats["alerts"]["by_severity"] == {
            "critical": 1, "high": 1, "medium": 0, "low": 0
        }  # fmt: skip
        assert stats["alerts"]["commands_pending"] == 1
        assert stats["connections"]["this_replica"] == {"drones": 0, "applications": 0}
        assert stats["connections"]["drones_online"] == 0
        assert stats["storage"] == {"redis": "ok", "mongodb": "ok"}


async def test_openapi_describes_the_alert_routes(api_client: httpx.AsyncClient) -> None:
    paths = (await api_client.get("/openapi.json")).json()["paths"]
    assert {"/api/v1/alerts", "/api/v1/alerts/{alert_id}", "/api/v1/stats"} <= set(paths)
    assert "409" in paths["/api/v1/alerts/{alert_id}/response"]["put"]["responses"]
