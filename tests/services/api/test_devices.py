"""Device WebSockets on one api instance (embedded store and broker), driven by real
`websockets` clients: the seed 000 flow, every kind of wrong message, and presence."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from services.api.main import create_app
from shared.models import Alert
from shared.settings import Settings
from tests.conftest import make_settings
from tests.fixtures.auth import SECRET, token
from tests.fixtures.devices import DeviceClient, ws_url
from tests.fixtures.events import EventRecorder, record_all
from tests.fixtures.servers import serve

FAST = {
    "device_ping_interval": 0.1,
    "device_heartbeat_timeout": 0.4,
    "presence_grace_seconds": 0.3,
    "presence_lease_seconds": 3.0,
    "presence_check_interval": 0.05,
}
# Seed 000's "Alert Message (Drone -> Server)", exactly.
SEED_ALERT = {
    "type": "alert",
    "data": {
        "alert_type": "intrusion",
        "score": 0.85,
        "location": {"lat": 40.7128, "lng": -74.0060},
        "drone_id": "drone_001",
        "description": "Suspicious activity detected",
    },
}


@dataclass
class Api:
    url: str
    http: httpx.AsyncClient
    events: EventRecorder

    async def drone(self, drone_id: str = "drone_001", **kwargs: Any) -> DeviceClient:
        return await DeviceClient(self.url, "drone", drone_id, **kwargs).connect()

    async def application(self, app_id: str = "app_1") -> DeviceClient:
        return await DeviceClient(self.url, "application", app_id).connect()

    async def alert_via_rest(self, drone_id: str = "drone_001") -> str:
        body = {**SEED_ALERT["data"], "drone_id": drone_id}  # type: ignore[dict-item]
        response = await self.http.post("/api/alerts", json=body)
        assert response.status_code == 201, response.text
        alert_id: str = response.json()["alert_id"]
        return alert_id

    async def presence_events(self, count: int, timeout: float = 5) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.presence()) < count:
            assert time.monotonic() < deadline, f"presence events: {self.presence()}"
            await asyncio.sleep(0.005)
        return self.presence()

    def presence(self) -> list[dict[str, Any]]:
        return [e for e in self.events.events if e["event"] in ("drone.online", "drone.offline")]


async def start_api(settings: Settings) -> AsyncIterator[Api]:
    app = create_app(settings)
    async with serve(app) as url, httpx.AsyncClient(base_url=url) as http:
        yield Api(url=url, http=http, events=await record_all(app.state.broker))


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    async for running in start_api(make_settings(**FAST)):
        yield running


@pytest.fixture
async def secured() -> AsyncIterator[Api]:
    async for running in start_api(make_settings(auth_enabled=True, secret_key=SECRET, **FAST)):
        yield running


async def stored_alerts() -> list[dict[str, Any]]:
    return [alert.public() for alert in await Alert.find_all().to_list()]


# --- the seed 000 flow ---------------------------------------------------------------------


async def test_drone_alert_is_stored_acked_and_told_to_every_application(api: Api) -> None:
    apps = [await api.application("app_1"), await api.application("app_2")]
    drone = await api.drone()
    ack = await drone.request(SEED_ALERT)
    assert ack["type"] == "ack" and ack["for"] == "alert"
    alert = ack["data"]
    assert alert["alert_id"] == ack["alert_id"]
    assert alert["status"] == "pending" and alert["response"] == 0
    assert alert["image_received"] == 0 and alert["severity"] == "high"
    for app in apps:
        [update] = await app.wait_for("alert_update")
        assert update["event"] == "alert.created"
        assert update["data"] == alert
        assert update["id"]
    assert (await api.http.get(f"/api/alerts/{alert['alert_id']}")).json() == alert


async def test_application_response_sends_the_drone_its_command(api: Api) -> None:
    app = await api.application()
    drone = await api.drone()
    alert_id = (await drone.request(SEED_ALERT))["alert_id"]
    ack = await app.request(
        {
            "type": "response",
            "alert_id": alert_id,
            "data": {"actions": ["activate_security", "notify_authorities"], "response": 1},
        }
    )
    assert ack["for"] == "response" and ack["data"]["status"] == "responded"
    [command] = await drone.wait_for("command")
    assert set(command) == {"type", "alert_id", "actions", "timestamp"}
    assert command["alert_id"] == alert_id
    assert command["actions"] == ["activate_security", "notify_authorities"]
    assert command["timestamp"].endswith("Z")
    await asyncio.sleep(0.1)
    assert len(drone.of_type("command")) == 1


async def test_drone_image_completes_the_alert_for_everyone(api: Api) -> None:
    app = await api.application()
    drone = await api.drone()
    alert_id = (await drone.request(SEED_ALERT))["alert_id"]
    await app.request({"type": "response", "alert_id": alert_id, "data": {"actions": ["a"]}})
    await drone.wait_for("command")
    ack = await drone.request(
        {
            "type": "image",
            "data": {"alert_id": alert_id, "image_url": "http://localhost:8000/uploads/image.jpg"},
        }
    )
    assert ack["for"] == "image"
    assert ack["data"]["status"] == "completed" and ack["data"]["image_received"] == 1
    updates = await app.wait_for("alert_update", 3)
    assert [u["event"] for u in updates] == ["alert.created", "alert.responded", "alert.completed"]
    assert updates[2]["data"]["image_url"] == "http://localhost:8000/uploads/image.jpg"


async def test_seed_clients_ping_gets_pong(api: Api) -> None:
    drone = await api.drone()
    reply = await drone.request({"type": "ping", "data": {"drone_id": "drone_001"}})
    assert reply["type"] == "pong"


async def test_welcome_tells_the_heartbeat_settings(api: Api) -> None:
    drone = await api.drone()
    [welcome] = drone.of_type("connection_established")
    assert welcome["client_type"] == "drone" and welcome["client_id"] == "drone_001"
    assert welcome["ping_interval"] == FAST["device_ping_interval"]
    assert welcome["heartbeat_timeout"] == FAST["device_heartbeat_timeout"]


# --- presence ------------------------------------------------------------------------------


async def test_connected_drone_is_online_and_offline_after_the_grace_period(api: Api) -> None:
    await api.http.post("/api/v1/drones/register", json={"deviceSerialNumber": "drone_001"})
    drone = await api.drone()
    [online] = await api.presence_events(1)
    assert online["event"] == "drone.online" and online["serial"] == "drone_001"
    assert online["data"]["online"] is True
    registered = (await api.http.get("/api/v1/drones/sn/drone_001")).json()
    assert registered["online"] is True and registered["lastSeenAt"]

    await drone.close()
    closed_at = time.monotonic()
    offline = (await api.presence_events(2))[1]
    took = time.monotonic() - closed_at
    print(f"\n[presence] clean close -> drone.offline in {took:.3f}s (grace 0.3s)")
    assert offline["event"] == "drone.offline" and offline["data"]["reason"] == "closed"
    assert FAST["presence_grace_seconds"] * 0.8 <= took <= FAST["presence_grace_seconds"] + 0.5
    registered = (await api.http.get("/api/v1/drones/sn/drone_001")).json()
    assert registered["online"] is False


async def test_reconnecting_within_the_grace_period_does_not_flap(api: Api) -> None:
    drone = await api.drone()
    await api.presence_events(1)
    await drone.close()
    again = await api.drone()
    await asyncio.sleep(FAST["presence_grace_seconds"] * 2)
    assert [e["event"] for e in api.presence()] == ["drone.online"]
    stats = (await api.http.get("/api/stats")).json()
    assert stats["connections"]["drones_online"] == 1
    await again.close()


async def test_half_open_drone_is_closed_and_marked_offline(api: Api) -> None:
    drone = await api.drone()
    await drone.wait_for("ping")  # it answers pings, so silence now means half-open
    await asyncio.sleep(0.05)
    drone.go_silent()
    silent_at = time.monotonic()
    offline = (await api.presence_events(2))[1]
    took = time.monotonic() - silent_at
    print(f"\n[presence] half-open -> drone.offline in {took:.3f}s (heartbeat timeout 0.4s)")
    assert offline["event"] == "drone.offline"
    assert offline["data"]["reason"] == "heartbeat_timeout"
    assert took <= FAST["device_heartbeat_timeout"] + 0.3
    await drone.close()


async def test_a_client_that_never_answers_pings_is_not_cut_off(api: Api) -> None:
    drone = await api.drone(answer_pings=False)  # seed 000's own client never sends pong
    await asyncio.sleep(FAST["device_heartbeat_timeout"] * 2)
    assert not drone.closed.is_set()
    assert [e["event"] for e in api.presence()] == ["drone.online"]


async def test_a_second_connection_of_a_drone_replaces_the_first(api: Api) -> None:
    first = await api.drone()
    second = await api.drone()
    await asyncio.wait_for(first.closed.wait(), 5)
    assert first.close_code == 4001
    await asyncio.sleep(FAST["presence_grace_seconds"] * 2)
    assert [e["event"] for e in api.presence()] == ["drone.online"]
    assert (await second.request({"type": "ping"}))["type"] == "pong"


# --- authentication ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "error"),
    [("", "Unauthorized"), ("?token=garbage", "Unauthorized"), ("?token={other}", "NotFound")],
)
async def test_a_drone_socket_needs_the_drones_own_token(
    secured: Api, query: str, error: str
) -> None:
    query = query.replace("{other}", token("drone", ["drone_002"]))
    async with connect(ws_url(secured.url, "drone", "drone_001") + query) as ws:
        message = await asyncio.wait_for(ws.recv(), 5)
        assert f'"error":"{error}"' in str(message)
        await asyncio.wait_for(ws.wait_closed(), 5)
        assert ws.close_code == 1008
    assert secured.presence() == []


async def test_a_scoped_application_hears_only_its_drones(secured: Api) -> None:
    app = DeviceClient(secured.url, "application", "app_1")
    app.url += "?token=" + token("application", ["drone_001"])
    await app.connect()
    for drone_id in ("drone_002", "drone_001"):
        drone = DeviceClient(secured.url, "drone", drone_id)
        await drone.connect(
            additional_headers={"Authorization": f"Bearer {token('drone', [drone_id])}"}
        )
        ack = await drone.request(
            {**SEED_ALERT, "data": {**SEED_ALERT["data"], "drone_id": drone_id}}
        )  # type: ignore[dict-item]
        assert ack["type"] == "ack"
    [update] = await app.wait_for("alert_update")
    await asyncio.sleep(0.1)
    assert len(app.of_type("alert_update")) == 1
    assert update["data"]["drone_id"] == "drone_001"
