"""Device WebSockets on one api instance (embedded store and broker), driven by real
`websockets` clients: the seed 000 flow and presence.

One instance serves the module; each test uses drones and applications of its own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from shared.devices.service import presence_service
from tests.conftest import make_settings
from tests.fixtures.devices import (
    FAST_PRESENCE,
    Api,
    alert_message,
    new_drone_id,
    start_api,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api() -> AsyncIterator[Api]:
    async for running in start_api(make_settings(**FAST_PRESENCE)):
        yield running


@pytest.fixture
def drone_id() -> str:
    return new_drone_id()


# --- the seed 000 flow ---------------------------------------------------------------------


async def test_drone_alert_is_stored_acked_and_told_to_every_application(
    api: Api, drone_id: str
) -> None:
    apps = [await api.application("app_1"), await api.application("app_2")]
    drone = await api.drone(drone_id)
    ack = await drone.request(alert_message(drone_id))
    assert ack["type"] == "ack" and ack["for"] == "alert"
    alert = ack["data"]
    assert alert["alert_id"] == ack["alert_id"] and alert["drone_id"] == drone_id
    assert alert["status"] == "pending" and alert["response"] == 0
    assert alert["image_received"] == 0 and alert["severity"] == "high"
    for app in apps:
        [update] = await app.wait_for("alert_update")
        assert update["event"] == "alert.created"
        assert update["data"] == alert
        assert update["id"]
    assert (await api.http.get(f"/api/alerts/{alert['alert_id']}")).json() == alert


async def test_application_response_sends_the_drone_its_command(api: Api, drone_id: str) -> None:
    app = await api.application()
    drone = await api.drone(drone_id)
    alert_id = (await drone.request(alert_message(drone_id)))["alert_id"]
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


async def test_drone_image_completes_the_alert_for_everyone(api: Api, drone_id: str) -> None:
    app = await api.application()
    drone = await api.drone(drone_id)
    alert_id = (await drone.request(alert_message(drone_id)))["alert_id"]
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


async def test_seed_drone_clients_own_messages_are_accepted(api: Api, drone_id: str) -> None:
    """seed 000's drone client adds a naive `timestamp` to its alert and image messages."""
    drone = await api.drone(drone_id)
    alert = alert_message(drone_id)
    alert["data"]["timestamp"] = "2026-03-04T05:06:07.089000"
    ack = await drone.request(alert)
    assert ack["type"] == "ack", ack
    assert ack["data"]["timestamp"] == "2026-03-04T05:06:07.089Z"
    alert_id = ack["alert_id"]
    await api.http.put(f"/api/alerts/{alert_id}/response", json={"actions": ["a"]})
    await drone.wait_for("command")
    image = {
        "type": "image",
        "data": {"alert_id": alert_id, "image_url": "u", "timestamp": "2026-03-04T05:07:00"},
    }
    assert (await drone.request(image))["data"]["status"] == "completed"


async def test_seed_clients_ping_gets_pong(api: Api, drone_id: str) -> None:
    drone = await api.drone(drone_id)
    reply = await drone.request({"type": "ping", "data": {"drone_id": drone_id}})
    assert reply["type"] == "pong"


async def test_welcome_tells_the_heartbeat_settings(api: Api, drone_id: str) -> None:
    drone = await api.drone(drone_id)
    [welcome] = drone.of_type("connection_established")
    assert welcome["client_type"] == "drone" and welcome["client_id"] == drone_id
    assert welcome["ping_interval"] == FAST_PRESENCE["device_ping_interval"]
    assert welcome["heartbeat_timeout"] == FAST_PRESENCE["device_heartbeat_timeout"]


# --- presence ------------------------------------------------------------------------------


async def test_connected_drone_is_online_and_offline_after_the_grace_period(
    api: Api, drone_id: str
) -> None:
    await api.http.post("/api/v1/drones/register", json={"deviceSerialNumber": drone_id})
    drone = await api.drone(drone_id)
    [online] = await api.presence_events(drone_id, 1)
    assert online["event"] == "drone.online" and online["data"]["online"] is True
    registered = (await api.http.get(f"/api/v1/drones/sn/{drone_id}")).json()
    assert registered["online"] is True and registered["lastSeenAt"]

    await drone.close()
    closed_at = time.monotonic()
    offline = (await api.presence_events(drone_id, 2))[1]
    took = time.monotonic() - closed_at
    print(f"\n[presence] clean close -> drone.offline in {took:.3f}s (grace 0.3s)")
    assert offline["event"] == "drone.offline" and offline["data"]["reason"] == "closed"
    assert (
        FAST_PRESENCE["presence_grace_seconds"] * 0.8
        <= took
        <= FAST_PRESENCE["presence_grace_seconds"] + 0.5
    )
    registered = (await api.http.get(f"/api/v1/drones/sn/{drone_id}")).json()
    assert registered["online"] is False


async def test_reconnecting_within_the_grace_period_does_not_flap(drone_id: str) -> None:
    # A grace a reconnect fits in even on a loaded machine (0.3 s once was not enough).
    grace = 2.0
    settings = make_settings(**{**FAST_PRESENCE, "presence_grace_seconds": grace})
    async for api in start_api(settings):
        drone = await api.drone(drone_id)
        await api.presence_events(drone_id, 1)
        await drone.close()
        closed_at = time.monotonic()
        again = await api.drone(drone_id)
        moved_in = time.monotonic() - closed_at
        await asyncio.sleep(max(0.0, closed_at + grace + 0.5 - time.monotonic()))
        assert [e["event"] for e in api.presence(drone_id)] == ["drone.online"], moved_in
        await again.close()


async def test_late_reports_about_an_older_connection_change_nothing(
    api: Api, drone_id: str
) -> None:
    """What an old replica may say about its socket after the drone reconnected elsewhere."""
    first = await api.drone(drone_id)
    old_session = first.of_type("connection_established")[0]["session"]
    await first.close()
    second = await api.drone(drone_id)
    await presence_service.closed(api.broker, drone_id, old_session, "closed", grace=0)
    await presence_service.closed(api.broker, drone_id, old_session, "closed", grace=0.05)
    await presence_service.lost(api.broker, drone_id, old_session, "heartbeat_timeout")
    await asyncio.sleep(FAST_PRESENCE["presence_grace_seconds"] * 2)
    assert [e["event"] for e in api.presence(drone_id)] == ["drone.online"]
    await second.close()


async def test_half_open_drone_is_closed_and_marked_offline(api: Api, drone_id: str) -> None:
    drone = await api.drone(drone_id)
    await drone.wait_for("ping")  # it answers pings, so silence now means half-open
    await asyncio.sleep(0.05)
    drone.go_silent()
    silent_at = time.monotonic()
    offline = (await api.presence_events(drone_id, 2))[1]
    took = time.monotonic() - silent_at
    print(f"\n[presence] half-open -> drone.offline in {took:.3f}s (heartbeat timeout 0.4s)")
    assert offline["event"] == "drone.offline"
    assert offline["data"]["reason"] == "heartbeat_timeout"
    # bounded: the heartbeat timeout, plus room for a loaded machine
    assert took <= FAST_PRESENCE["device_heartbeat_timeout"] + 1.0
    await drone.close()


async def test_a_command_written_to_a_half_open_drone_is_delivered_again_on_reconnect(
    api: Api, drone_id: str
) -> None:
    drone = await api.drone(drone_id)
    await drone.wait_for("ping")
    alert_id = await api.alert_via_rest(drone_id)
    await asyncio.sleep(0.05)
    drone.go_silent()  # vanished, but the server's writes still succeed into the socket buffer
    await api.http.put(f"/api/alerts/{alert_id}/response", json={"actions": ["land"]})
    await api.presence_events(drone_id, 2)  # marked offline: half-open
    back = await api.drone(drone_id)
    [command] = await back.wait_for("command")
    assert command["alert_id"] == alert_id and command["actions"] == ["land"]
    await asyncio.sleep(0.1)
    assert len(back.of_type("command")) == 1
    await drone.close()
    await back.close()


async def test_a_client_that_never_answers_pings_is_not_cut_off(api: Api, drone_id: str) -> None:
    drone = await api.drone(drone_id, answer_pings=False)  # seed 000's client never sends pong
    await asyncio.sleep(FAST_PRESENCE["device_heartbeat_timeout"] * 2)
    assert not drone.closed.is_set()
    assert [e["event"] for e in api.presence(drone_id)] == ["drone.online"]
    await drone.close()


async def test_a_second_connection_of_a_drone_replaces_the_first(api: Api, drone_id: str) -> None:
    first = await api.drone(drone_id)
    second = await api.drone(drone_id)
    await asyncio.wait_for(first.closed.wait(), 5)
    assert first.close_code == 4001
    await asyncio.sleep(FAST_PRESENCE["presence_grace_seconds"] * 2)
    assert [e["event"] for e in api.presence(drone_id)] == ["drone.online"]
    assert (await second.request({"type": "ping"}))["type"] == "pong"
    await second.close()
