"""Alert images over REST: `PUT /api/alerts/{alert_id}/image` with the picture, and
`GET /uploads/{filename}` serving it to whoever may see the alert's drone."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import httpx
import pytest
from dronecast_client.simulator import png_image

from shared.models.image import ImageChunk, ImageFile
from tests.conftest import in_process_api, make_settings
from tests.fixtures.auth import SECRET, bearer, token
from tests.fixtures.events import EventRecorder, record_all

PNG = png_image(32, 24, (200, 80, 40))
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01" + bytes(range(256)) * 4 + b"\xff\xd9"
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + bytes(24)


async def responded_alert(
    client: httpx.AsyncClient, drone_id: str = "cam_1", **headers: str
) -> str:
    body = {
        "alert_type": "fire",
        "score": 0.9,
        "location": {"lat": 1, "lng": 2},
        "drone_id": drone_id,
    }
    alert_id = (await client.post("/api/alerts", json=body, headers=headers)).json()["alert_id"]
    response = await client.put(
        f"/api/alerts/{alert_id}/response", json={"actions": ["x"]}, headers=headers
    )
    assert response.status_code == 200, response.text
    return str(alert_id)


async def images_stored() -> int:
    return await ImageFile.count()


@pytest.fixture
async def events(api_client: httpx.AsyncClient) -> EventRecorder:
    return await record_all(api_client.app.state.broker)  # type: ignore[attr-defined]


async def test_a_picture_completes_the_alert_and_is_served_at_its_image_url(
    api_client: httpx.AsyncClient, events: EventRecorder
) -> None:
    alert_id = await responded_alert(api_client)
    response = await api_client.put(
        f"/api/alerts/{alert_id}/image", content=PNG, headers={"Content-Type": "image/png"}
    )
    assert response.status_code == 200, response.text
    alert = response.json()
    assert (alert["status"], alert["image_received"]) == ("completed", 1)
    assert alert["image_url"] == f"/uploads/{alert_id}.png"
    served = await api_client.get(alert["image_url"])
    assert served.status_code == 200 and served.content == PNG
    assert served.headers["content-type"] == "image/png"
    await events.wait_for(3)
    assert events.names == ["alert.created", "alert.responded", "alert.completed"]
    assert events.events[-1]["data"]["full"]["image_url"] == alert["image_url"]


@pytest.mark.parametrize(
    ("data", "kind", "extension"), [(JPEG, "image/jpeg", "jpg"), (WEBP, "image/webp", "webp")]
)
async def test_the_content_decides_the_type_not_the_declared_one(
    api_client: httpx.AsyncClient, data: bytes, kind: str, extension: str
) -> None:
    alert_id = await responded_alert(api_client)
    response = await api_client.put(
        f"/api/v1/alerts/{alert_id}/image", content=data, headers={"Content-Type": "image/png"}
    )
    assert response.json()["image_url"] == f"/uploads/{alert_id}.{extension}"
    served = await api_client.get(f"/uploads/{alert_id}.{extension}")
    assert served.headers["content-type"] == kind and served.content == data


async def test_something_that_is_not_a_picture_is_a_415_and_changes_nothing(
    api_client: httpx.AsyncClient,
) -> None:
    alert_id = await responded_alert(api_client)
    response = await api_client.put(
        f"/api/alerts/{alert_id}/image",
        content=b"<svg onload=alert(1)>",
        headers={"Content-Type": "image/jpeg"},
    )
    assert response.status_code == 415 and response.json()["error"] == "UnsupportedMediaType"
    assert (await api_client.get(f"/api/alerts/{alert_id}")).json()["status"] == "responded"
    assert await images_stored() == 0


async def test_a_picture_over_max_image_bytes_is_a_413_and_stores_nothing() -> None:
    async for client in in_process_api(make_settings(max_image_bytes=4096)):
        alert_id = await responded_alert(client)
        big = png_image(400, 400, (1, 2, 3)) + bytes(8000)
        response = await client.put(
            f"/api/alerts/{alert_id}/image", content=big, headers={"Content-Type": "image/png"}
        )
        assert response.status_code == 413 and response.json()["error"] == "PayloadTooLarge"
        assert await images_stored() == 0


async def test_a_picture_larger_than_a_request_body_may_be_is_taken() -> None:
    """MAX_BODY_BYTES bounds other bodies; an image is bounded by MAX_IMAGE_BYTES. It is kept
    in several GridFS chunks and served whole."""
    settings = make_settings(max_body_bytes=64 * 1024, max_image_bytes=2 * 1024 * 1024)
    async for client in in_process_api(settings):
        alert_id = await responded_alert(client)
        picture = JPEG + bytes(range(256)) * 4000  # ~1 MB
        response = await client.put(
            f"/api/alerts/{alert_id}/image", content=picture, headers={"Content-Type": "image/jpeg"}
        )
        assert response.status_code == 200, response.text
        assert (await client.get(response.json()["image_url"])).content == picture
        assert await ImageChunk.count() == 4  # 255 KiB chunks
        too_big = await client.post("/api/alerts", content=b"x" * 70_000)
        assert too_big.status_code == 413


async def test_an_alert_not_yet_responded_takes_no_picture(api_client: httpx.AsyncClient) -> None:
    body = {
        "alert_type": "fire",
        "score": 0.9,
        "location": {"lat": 1, "lng": 2},
        "drone_id": "cam_2",
    }
    alert_id = (await api_client.post("/api/alerts", json=body)).json()["alert_id"]
    response = await api_client.put(
        f"/api/alerts/{alert_id}/image", content=PNG, headers={"Content-Type": "image/png"}
    )
    assert response.status_code == 409
    assert (await api_client.get(f"/uploads/{alert_id}.png")).status_code == 404
    assert await images_stored() == 0


async def test_json_with_base64_image_data_is_stored_like_the_bytes(
    api_client: httpx.AsyncClient,
) -> None:
    alert_id = await responded_alert(api_client)
    body = {"image_data": base64.b64encode(PNG).decode(), "image_received": 1}
    response = await api_client.put(f"/api/alerts/{alert_id}/image", json=body)
    assert response.status_code == 200, response.text
    assert (await api_client.get(response.json()["image_url"])).content == PNG


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"image_url": "http://x/a.jpg", "image_data": "AAAAAAAA"}, "not both"),
        ({}, "either image_url or image_data"),
        ({"image_data": "not base64!"}, "pattern"),
        ({"image_data": "QUFBQUFBQQ"}, "pattern"),  # the alphabet, but not padded
    ],
)
async def test_json_must_hold_one_image(
    api_client: httpx.AsyncClient, body: dict[str, str], detail: str
) -> None:
    alert_id = await responded_alert(api_client)
    response = await api_client.put(f"/api/alerts/{alert_id}/image", json=body)
    assert response.status_code == 422 and detail in response.json()["detail"]


@pytest.fixture
async def secured_api() -> AsyncIterator[httpx.AsyncClient]:
    async for client in in_process_api(make_settings(auth_enabled=True, secret_key=SECRET)):
        yield client


async def test_a_picture_is_served_only_to_who_may_see_its_drone(
    secured_api: httpx.AsyncClient,
) -> None:
    admin = bearer("admin")
    alert_id = await responded_alert(secured_api, "cam_3", **admin)
    own = bearer("drone", ["cam_3"], "cam_3")
    response = await secured_api.put(
        f"/api/alerts/{alert_id}/image", content=PNG, headers={**own, "Content-Type": "image/png"}
    )
    url = response.json()["image_url"]
    assert (await secured_api.get(url)).status_code == 401
    assert (await secured_api.get(url, headers=bearer("viewer", ["cam_4"]))).status_code == 404
    assert (await secured_api.get(url, headers=bearer("viewer", ["cam_3"]))).content == PNG
    by_query = await secured_api.get(url, params={"token": token("detector", ["cam_3"])})
    assert by_query.status_code == 200  # for an <img src>
