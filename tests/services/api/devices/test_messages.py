"""Every wrong message on a device WebSocket gets `{"type": "error", "error", "detail"}`, the
socket stays open, and nothing is stored or changed. One api instance serves the whole module
(the cases are many and each is independent of what the others stored)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
import pytest_asyncio
from websockets.asyncio.client import connect

from tests.conftest import make_settings
from tests.fixtures.devices import (
    FAST_PRESENCE,
    SEED_ALERT,
    Api,
    DeviceClient,
    new_drone_id,
    start_api,
    stored_alerts,
    ws_url,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api() -> AsyncIterator[Api]:
    settings = make_settings(**FAST_PRESENCE, max_body_bytes=65536, max_image_bytes=65536)
    async for running in start_api(settings):
        yield running


DRONE_MISTAKES: list[tuple[str, Any, str]] = [
    ("not json", "{'type': 'alert'", "BadRequest"),
    ("json but not an object", "[1, 2]", "BadRequest"),
    ("no type", {"data": {}}, "BadRequest"),
    ("type not a string", {"type": 7}, "BadRequest"),
    ("unknown type", {"type": "launch_missiles"}, "UnknownMessageType"),
    ("an application's message", {"type": "response", "alert_id": "x"}, "UnknownMessageType"),
    ("binary frame", b"\x00\x01", "UnsupportedFrame"),
    # A drone's frame may hold an image message of MAX_IMAGE_BYTES (64 KiB here): ~150 KB.
    ("oversized frame (an image message's size)", "x" * 200_000, "PayloadTooLarge"),
    ("alert without data", {"type": "alert"}, "ValidationError"),
    (
        "alert with a bad score",
        {"type": "alert", "data": {**SEED_ALERT["data"], "score": 2}},
        "ValidationError",
    ),
    (
        "alert of an unknown type",
        {"type": "alert", "data": {**SEED_ALERT["data"], "alert_type": "ufo"}},
        "ValidationError",
    ),
    (
        "alert for another drone",
        {"type": "alert", "data": {**SEED_ALERT["data"], "drone_id": "drone_999"}},
        "Forbidden",
    ),
    (
        "alert with a field no alert has",
        {"type": "alert", "data": {**SEED_ALERT["data"], "status": "completed"}},
        "ValidationError",
    ),
    ("image without alert_id", {"type": "image", "data": {"image_url": "u"}}, "ValidationError"),
    (
        "image for an unknown alert",
        {"type": "image", "data": {"alert_id": "alert_nope", "image_url": "http://x/y.jpg"}},
        "NotFound",
    ),
    (
        "image for an alert not yet responded",
        {"type": "image", "data": {"alert_id": "{pending}", "image_url": "http://x/y.jpg"}},
        "Conflict",
    ),
    (
        "image for another drone's alert",
        {"type": "image", "data": {"alert_id": "{other}", "image_url": "http://x/y.jpg"}},
        "Forbidden",
    ),
]


@pytest.mark.parametrize(
    ("frame", "error"),
    [(frame, error) for _, frame, error in DRONE_MISTAKES],
    ids=[name for name, _, _ in DRONE_MISTAKES],
)
async def test_wrong_drone_message_gets_an_error_and_changes_nothing(
    api: Api, frame: Any, error: str
) -> None:
    pending = await api.alert_via_rest("drone_001")
    other = await api.alert_via_rest("drone_002")
    await api.http.put(f"/api/alerts/{other}/response", json={"actions": ["a"]})
    if isinstance(frame, dict):
        frame = _substitute(frame, {"{pending}": pending, "{other}": other})
    before = await stored_alerts()
    drone = await api.drone("drone_001")
    reply = await drone.request(frame)
    assert reply["type"] == "error", reply
    assert reply["error"] == error
    assert reply["detail"]
    assert await stored_alerts() == before
    assert (await drone.request({"type": "ping"}))["type"] == "pong"  # still open


APPLICATION_MISTAKES: list[tuple[str, Any, str]] = [
    ("oversized frame (MAX_BODY_BYTES)", "x" * 70_000, "PayloadTooLarge"),
    ("a drone's message", SEED_ALERT, "UnknownMessageType"),
    ("response without alert_id", {"type": "response", "data": {"actions": []}}, "ValidationError"),
    (
        "response with actions not a list",
        {"type": "response", "alert_id": "{pending}", "data": {"actions": "go"}},
        "ValidationError",
    ),
    (
        "response for an unknown alert",
        {"type": "response", "alert_id": "alert_nope", "data": {"actions": ["a"]}},
        "NotFound",
    ),
    (
        "response to an alert already responded",
        {"type": "response", "alert_id": "{responded}", "data": {"actions": ["b"]}},
        "Conflict",
    ),
    (
        "operator injection as alert_id",
        {"type": "response", "alert_id": {"$ne": None}, "data": {"actions": ["a"]}},
        "ValidationError",
    ),
]


@pytest.mark.parametrize(
    ("frame", "error"),
    [(frame, error) for _, frame, error in APPLICATION_MISTAKES],
    ids=[name for name, _, _ in APPLICATION_MISTAKES],
)
async def test_wrong_application_message_gets_an_error_and_changes_nothing(
    api: Api, frame: Any, error: str
) -> None:
    pending = await api.alert_via_rest("drone_001")
    responded = await api.alert_via_rest("drone_001")
    await api.http.put(f"/api/alerts/{responded}/response", json={"actions": ["a"]})
    frame = _substitute(frame, {"{pending}": pending, "{responded}": responded})
    before = await stored_alerts()
    app = await api.application()
    reply = await app.request(frame)
    assert reply["type"] == "error", reply
    assert reply["error"] == error
    assert await stored_alerts() == before
    assert (await app.request({"type": "ping"}))["type"] == "pong"


@pytest.mark.parametrize("path", ["/ws/drone/bad%20id", "/ws/drone/all", "/ws/application/a:b"])
async def test_an_invalid_device_id_is_refused_with_a_reason(api: Api, path: str) -> None:
    async with connect(api.url.replace("http", "ws") + path) as ws:
        error = await asyncio.wait_for(ws.recv(), 5)
        assert '"error":"ValidationError"' in str(error)
        await asyncio.wait_for(ws.wait_closed(), 5)
        assert ws.close_code == 1008


def _substitute(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _substitute(v, names) for k, v in value.items()}
    if isinstance(value, str):
        return names.get(value, value)
    return value


async def test_a_device_flooding_messages_is_rate_limited_and_keeps_its_socket() -> None:
    async for api in start_api(
        make_settings(**FAST_PRESENCE, client_messages_per_second=1, client_message_burst=3)
    ):
        drone = await api.drone(new_drone_id())
        replies = [await drone.request({"type": "ping"}) for _ in range(5)]
        kinds = [reply.get("error", reply["type"]) for reply in replies]
        assert kinds[:3] == ["pong"] * 3 and kinds[3:] == ["RateLimited"] * 2
        assert (await drone.request({"type": "bogus"}))["error"] == "RateLimited"
        await drone.close()


async def test_a_browser_from_a_foreign_origin_is_refused() -> None:
    async for api in start_api(make_settings(**FAST_PRESENCE)):
        drone_id = new_drone_id()
        async with connect(
            ws_url(api.url, "drone", drone_id),
            origin="https://evil.example",  # type: ignore[arg-type]
        ) as ws:
            refusal = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
            assert refusal["type"] == "error" and refusal["error"] == "Forbidden"
            await asyncio.wait_for(ws.wait_closed(), 5)
            assert ws.close_code == 1008
        host = api.url.split("://", 1)[1]
        same = await DeviceClient(api.url, "drone", drone_id).connect(
            origin=f"http://{host}"  # the server's own page
        )
        assert same.of_type("connection_established")
        await same.close()
