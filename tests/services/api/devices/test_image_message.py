"""A drone's `image` message with the picture itself (`image_data`, base64): stored, served at
the alert's `/uploads/...` URL, and refused clearly when it is not a picture or too large."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import pytest
from dronecast_client.simulator import png_image

from tests.conftest import make_settings
from tests.fixtures.devices import FAST_PRESENCE, Api, new_drone_id, start_api

PNG = png_image(16, 16, (10, 200, 30))


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    async for running in start_api(make_settings(**FAST_PRESENCE, max_image_bytes=64 * 1024)):
        yield running


async def responded(api: Api, drone_id: str) -> str:
    alert_id = await api.alert_via_rest(drone_id)
    response = await api.http.put(f"/api/alerts/{alert_id}/response", json={"actions": ["photo"]})
    assert response.status_code == 200
    return alert_id


def image_message(alert_id: str, data: bytes) -> dict[str, object]:
    return {
        "type": "image",
        "data": {"alert_id": alert_id, "image_data": base64.b64encode(data).decode()},
    }


async def test_the_picture_in_an_image_message_is_stored_and_served(api: Api) -> None:
    drone_id = new_drone_id()
    drone = await api.drone(drone_id)
    alert_id = await responded(api, drone_id)
    ack = await drone.request(image_message(alert_id, PNG))
    await drone.close()
    assert ack["type"] == "ack" and ack["data"]["image_url"] == f"/uploads/{alert_id}.png"
    served = await api.http.get(ack["data"]["image_url"])
    assert served.content == PNG and served.headers["content-type"] == "image/png"


@pytest.mark.parametrize(
    ("data", "error"),
    [(b"%PDF-1.4 not a picture", "UnsupportedMediaType"), (PNG + bytes(70_000), "PayloadTooLarge")],
)
async def test_what_is_not_an_acceptable_picture_is_refused_and_the_alert_waits(
    api: Api, data: bytes, error: str
) -> None:
    drone_id = new_drone_id()
    drone = await api.drone(drone_id)
    alert_id = await responded(api, drone_id)
    refusal = await drone.request(image_message(alert_id, data))
    still = (await api.http.get(f"/api/alerts/{alert_id}")).json()
    retry = await drone.request(image_message(alert_id, PNG))  # the socket is still usable
    await drone.close()
    assert (refusal["type"], refusal["error"], refusal["message_type"]) == ("error", error, "image")
    assert still["status"] == "responded"
    assert retry["type"] == "ack"


async def test_a_drones_frame_may_hold_a_picture_larger_than_a_body_and_no_more() -> None:
    """REST bodies are bounded by MAX_BODY_BYTES; a drone's frames by what an image message of
    MAX_IMAGE_BYTES needs (its fields keep their own limits)."""
    settings = make_settings(**FAST_PRESENCE, max_body_bytes=4096, max_image_bytes=64 * 1024)
    async for api in start_api(settings):
        drone_id = new_drone_id()
        drone = await api.drone(drone_id)
        alert_id = await responded(api, drone_id)
        big = PNG + bytes(20_000)  # a PNG by its first bytes
        ack = await drone.request(image_message(alert_id, big))
        huge = image_message(alert_id, PNG + bytes(settings.max_frame_bytes))
        refusal = await drone.request(huge)
        await drone.close()
        assert len(base64.b64encode(big)) > settings.max_body_bytes and ack["type"] == "ack"
        assert refusal["error"] == "PayloadTooLarge"
