"""Drones over REST (seed 001/002): what an admin sees, and the events each change publishes."""

from __future__ import annotations

import asyncio
import itertools

import httpx
import pytest

from tests.fixtures.events import EventRecorder, record_all

SEED_BODY = {
    "deviceSerialNumber": "TEST123",
    "deviceName": "Test Drone",
    "deviceCategory": "Surveillance",
    "streamIsOn": False,
}


@pytest.fixture
async def events(api_client: httpx.AsyncClient) -> EventRecorder:
    return await record_all(api_client.app.state.broker)  # type: ignore[attr-defined]


async def register(client: httpx.AsyncClient, serial: str = "TEST123", **fields: object) -> dict:
    response = await client.post(
        "/api/v1/drones/register", json={**SEED_BODY, "deviceSerialNumber": serial, **fields}
    )
    assert response.status_code == 201, response.text
    return response.json()


async def test_register_returns_the_drone_and_publishes_created(
    api_client: httpx.AsyncClient, events: EventRecorder
) -> None:
    drone = await register(api_client)
    assert drone["deviceSerialNumber"] == "TEST123"
    assert drone["deviceName"] == "Test Drone"
    assert drone["streamIsOn"] is False
    assert drone["aiDetectionEnabled"] is False
    assert drone["detectionClasses"] == []
    assert drone["online"] is False
    assert drone["createdAt"].endswith("Z")
    [created] = await events.wait_for(1)
    assert created["event"] == "drone.created"
    assert created["serial"] == "TEST123"
    assert created["data"]["full"] == drone
    assert created["id"]
    assert events.channels == ["drone:TEST123:created"]


async def test_get_by_id_and_by_serial(api_client: httpx.AsyncClient) -> None:
    drone = await register(api_client)
    by_id = await api_client.get(f"/api/v1/drones/{drone['id']}")
    by_serial = await api_client.get("/api/v1/drones/sn/TEST123")
    assert by_id.status_code == by_serial.status_code == 200
    assert by_id.json() == by_serial.json() == drone


async def test_update_publishes_changes_and_the_specific_events(
    api_client: httpx.AsyncClient, events: EventRecorder
) -> None:
    await register(api_client, detectionClasses=[0, 1])
    response = await api_client.patch(
        "/api/v1/drones/sn/TEST123", json={"streamIsOn": True, "detectionClasses": [0, 1, 2, 3]}
    )
    assert response.status_code == 200
    assert response.json()["streamIsOn"] is True
    await events.wait_for(4)
    assert events.names == [
        "drone.created",
        "drone.updated",
        "drone.stream.status",
        "drone.detection.classes.changed",
    ]
    updated, stream, classes = events.events[1:]
    assert updated["data"]["changes"] == {
        "streamIsOn": {"old": False, "new": True},
        "detectionClasses": {"old": [0, 1], "new": [0, 1, 2, 3]},
    }
    assert updated["data"]["full"]["detectionClasses"] == [0, 1, 2, 3]
    assert stream["data"]["streamIsOn"] is True  # seed 001: event.data.streamIsOn
    assert classes["data"]["detectionClasses"] == [0, 1, 2, 3]
    assert events.channels[1:] == [
        "drone:TEST123:updated",
        "drone:TEST123:stream",
        "drone:TEST123:config",
    ]
    ids = [event["id"] for event in events.events]
    assert len(set(ids)) == 4


async def test_ai_toggle_by_id_publishes_ai_event(
    api_client: httpx.AsyncClient, events: EventRecorder
) -> None:
    drone = await register(api_client)
    await api_client.patch(f"/api/v1/drones/{drone['id']}", json={"aiDetectionEnabled": True})
    await events.wait_for(3)
    assert events.names[1:] == ["drone.updated", "drone.ai.detection.toggled"]
    assert events.events[2]["data"]["aiDetectionEnabled"] is True
    assert events.channels[2] == "drone:TEST123:ai"


async def test_update_that_changes_nothing_publishes_nothing(
    api_client: httpx.AsyncClient, events: EventRecorder
) -> None:
    drone = await register(api_client)
    response = await api_client.patch(
        "/api/v1/drones/sn/TEST123", json={"streamIsOn": False, "deviceName": "Test Drone"}
    )
    assert response.status_code == 200
    assert response.json()["updatedAt"] == drone["updatedAt"]
    empty = await api_client.patch("/api/v1/drones/sn/TEST123", json={})
    assert empty.status_code == 200
    await asyncio.sleep(0.1)
    assert events.names == ["drone.created"]


async def test_name_change_publishes_only_updated(
    api_client: httpx.AsyncClient, events: EventRecorder
) -> None:
    await register(api_client)
    await api_client.patch("/api/v1/drones/sn/TEST123", json={"deviceName": "Renamed"})
    await events.wait_for(2)
    assert events.names == ["drone.created", "drone.updated"]
    assert events.events[1]["data"]["changes"] == {
        "deviceName": {"old": "Test Drone", "new": "Renamed"}
    }


async def test_delete_publishes_deleted_and_frees_the_serial(
    api_client: httpx.AsyncClient, events: EventRecorder
) -> None:
    drone = await register(api_client)
    response = await api_client.delete(f"/api/v1/drones/{drone['id']}")
    assert response.status_code == 200
    assert response.json()["deviceSerialNumber"] == "TEST123"
    assert (await api_client.get(f"/api/v1/drones/{drone['id']}")).status_code == 404
    assert (await api_client.get("/api/v1/drones/sn/TEST123")).status_code == 404
    assert (await api_client.delete(f"/api/v1/drones/{drone['id']}")).status_code == 404
    await register(api_client)  # the serial can be registered again at once
    await events.wait_for(3)
    assert events.names == ["drone.created", "drone.deleted", "drone.created"]
    assert events.events[1]["data"]["full"]["id"] == drone["id"]


async def test_list_paginates_and_filters(api_client: httpx.AsyncClient) -> None:
    for n in range(7):
        await register(api_client, f"SN{n}", streamIsOn=n % 2 == 0)
    first = (await api_client.get("/api/v1/drones", params={"limit": 3})).json()
    second = (await api_client.get("/api/v1/drones", params={"limit": 3, "offset": 3})).json()
    assert first["total"] == 7 and first["count"] == 3 and first["limit"] == 3
    assert [d["deviceSerialNumber"] for d in first["drones"]] == ["SN0", "SN1", "SN2"]
    assert [d["deviceSerialNumber"] for d in second["drones"]] == ["SN3", "SN4", "SN5"]
    streaming = (await api_client.get("/api/v1/drones", params={"streamIsOn": "true"})).json()
    assert streaming["total"] == 4
    assert all(d["streamIsOn"] for d in streaming["drones"])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "deviceSerialNumber"),
        ({"deviceSerialNumber": ""}, "deviceSerialNumber"),
        ({"deviceSerialNumber": "has space"}, "deviceSerialNumber"),
        ({"deviceSerialNumber": "x" * 65}, "deviceSerialNumber"),
        ({"deviceSerialNumber": "all"}, "deviceSerialNumber"),
        ({"deviceSerialNumber": "drone:*"}, "deviceSerialNumber"),
        ({"deviceSerialNumber": {"$ne": None}}, "deviceSerialNumber"),
        ({"deviceSerialNumber": "OK1", "streamIsOn": "yes"}, "streamIsOn"),
        ({"deviceSerialNumber": "OK1", "detectionClasses": [-1]}, "detectionClasses"),
        ({"deviceSerialNumber": "OK1", "detectionClasses": ["person"]}, "detectionClasses"),
        ({"deviceSerialNumber": "OK1", "online": True}, "online"),
        ({"deviceSerialNumber": "OK1", "id": "abc"}, "id"),
        ({"deviceSerialNumber": "OK1", "createdAt": "2020-01-01T00:00:00Z"}, "createdAt"),
    ],
)
async def test_invalid_registration_is_a_422_and_stores_nothing(
    api_client: httpx.AsyncClient, events: EventRecorder, body: dict, field: str
) -> None:
    response = await api_client.post("/api/v1/drones/register", json=body)
    assert response.status_code == 422
    error = response.json()
    assert error["error"] == "ValidationError"
    assert field in error["detail"]
    assert (await api_client.get("/api/v1/drones")).json()["total"] == 0
    await asyncio.sleep(0.05)
    assert events.names == []


async def test_duplicate_serial_is_a_409(api_client: httpx.AsyncClient) -> None:
    await register(api_client)
    response = await api_client.post("/api/v1/drones/register", json=SEED_BODY)
    assert response.status_code == 409
    assert response.json()["error"] == "Conflict"


@pytest.mark.parametrize(
    "body",
    [
        {"online": True},
        {"deviceSerialNumber": "OTHER"},
        {"streamIsOn": None},
        {"streamIsOn": 1},
        {"detectionClasses": None},
        {"lastSeenAt": "2020-01-01T00:00:00Z"},
    ],
)
async def test_invalid_update_is_a_422_and_changes_nothing(
    api_client: httpx.AsyncClient, events: EventRecorder, body: dict
) -> None:
    drone = await register(api_client)
    response = await api_client.patch("/api/v1/drones/sn/TEST123", json=body)
    assert response.status_code == 422
    assert response.json()["error"] == "ValidationError"
    assert (await api_client.get("/api/v1/drones/sn/TEST123")).json() == drone
    await asyncio.sleep(0.05)
    assert events.names == ["drone.created"]


async def test_malformed_json_is_a_400(api_client: httpx.AsyncClient) -> None:
    response = await api_client.post(
        "/api/v1/drones/register",
        content=b'{"deviceSerialNumber": ',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json() == {"error": "BadRequest", "detail": "request body is not valid JSON"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/drones/000000000000000000000000"),
        ("GET", "/api/v1/drones/not-an-object-id"),
        ("GET", "/api/v1/drones/sn/NOPE"),
        ("PATCH", "/api/v1/drones/sn/NOPE"),
        ("PATCH", "/api/v1/drones/000000000000000000000000"),
        ("DELETE", "/api/v1/drones/not-an-object-id"),
        ("GET", "/api/v1/nothing-here"),
    ],
)
async def test_unknown_drone_or_route_is_a_404_json(
    api_client: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await api_client.request(method, path, json={"deviceName": "x"})
    assert response.status_code == 404
    assert response.json()["error"] == "NotFound"


async def test_bad_pagination_is_a_422(api_client: httpx.AsyncClient) -> None:
    for params in ({"limit": 0}, {"limit": 501}, {"offset": -1}, {"limit": "many"}):
        response = await api_client.get("/api/v1/drones", params=params)
        assert response.status_code == 422, params
        assert response.json()["error"] == "ValidationError"


async def test_concurrent_updates_each_publish_exact_diffs(
    api_client: httpx.AsyncClient, events: EventRecorder
) -> None:
    await register(api_client)
    names = [f"name-{n}" for n in range(10)]
    responses = await asyncio.gather(
        *(api_client.patch("/api/v1/drones/sn/TEST123", json={"deviceName": n}) for n in names)
    )
    assert all(r.status_code == 200 for r in responses)
    await events.wait_for(11)
    # Every update's `old` is the previous update's `new`: no diff was computed from stale data.
    chain = [e["data"]["changes"]["deviceName"] for e in events.events[1:]]
    for before, after in itertools.pairwise(chain):
        assert after["old"] == before["new"]
    final = (await api_client.get("/api/v1/drones/sn/TEST123")).json()
    assert final["deviceName"] == chain[-1]["new"]


async def test_openapi_describes_the_drone_routes(api_client: httpx.AsyncClient) -> None:
    schema = (await api_client.get("/openapi.json")).json()
    for path in (
        "/api/v1/drones/register",
        "/api/v1/drones",
        "/api/v1/drones/{drone_id}",
        "/api/v1/drones/sn/{sn}",
    ):
        assert path in schema["paths"]
    assert (await api_client.get("/docs")).status_code == 200


@pytest.mark.parametrize(
    "body", [{"detectionClasses": None}, {"streamIsOn": None}, {"aiDetectionEnabled": None}]
)
async def test_null_for_a_field_that_cannot_be_null_is_a_422_not_a_500(
    api_client: httpx.AsyncClient, body: dict
) -> None:
    await register(api_client)
    response = await api_client.patch("/api/v1/drones/sn/TEST123", json=body)
    assert response.status_code == 422
    assert response.json()["error"] == "ValidationError"


async def test_whole_number_floats_are_integers(api_client: httpx.AsyncClient) -> None:
    drone = await register(api_client, detectionClasses=[1.0, 2])
    assert drone["detectionClasses"] == [1, 2]
    bad = await api_client.patch("/api/v1/drones/sn/TEST123", json={"detectionClasses": [1.5]})
    assert bad.status_code == 422


async def test_request_id_is_returned_and_logged(
    api_client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from shared.logging import JsonFormatter

    caplog.set_level(logging.INFO)
    response = await api_client.post(
        "/api/v1/drones/register",
        json={"deviceSerialNumber": "RID1"},
        headers={"X-Request-ID": "trace-abc-123"},
    )
    assert response.headers["x-request-id"] == "trace-abc-123"
    lines = [
        JsonFormatter().format(r) for r in caplog.records if r.getMessage() == "drone_registered"
    ]
    assert lines and '"request_id":"trace-abc-123"' in lines[0] and '"serial":"RID1"' in lines[0]
    generated = await api_client.get("/api/v1/drones")
    assert len(generated.headers["x-request-id"]) == 32
