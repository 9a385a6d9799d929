"""A device frame over its limit, against `dronecast api` as it runs: the device is told and
goes on; a frame too big to read at all is refused with 1009 (Message Too Big).

The limit is MAX_BODY_BYTES for an application, and for a drone the size of its largest image
message; nothing over `Settings.device_frame_ceiling` is read."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedError

from shared.settings import Settings
from tests.e2e.conftest import service_env
from tests.fixtures.servers import ServiceProcess

SHIPPED = Settings(environment="test")  # the defaults, as shipped
MAX_BODY_BYTES = SHIPPED.max_body_bytes


@pytest.fixture
def api(redis_url: str) -> Iterator[ServiceProcess]:
    process = ServiceProcess("api", service_env(redis_url))
    process.start()
    try:
        yield process
    finally:
        process.stop()


def drone_url(api: ServiceProcess) -> str:
    return api.url.replace("http://", "ws://") + "/ws/drone/drone_big?welcome=1"


def application_url(api: ServiceProcess) -> str:
    return api.url.replace("http://", "ws://") + "/ws/application/app_big?welcome=1"


async def next_message(ws: object, kind: str) -> dict[str, object]:
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), 5))  # type: ignore[attr-defined]
        if message.get("type") == kind:
            return message  # type: ignore[no-any-return]


async def test_frame_over_max_body_bytes_gets_an_error_and_the_socket_stays_open(
    api: ServiceProcess,
) -> None:
    async with connect(application_url(api)) as ws:
        await next_message(ws, "connection_established")
        await ws.send(json.dumps({"type": "ping", "pad": "x" * (MAX_BODY_BYTES + 100)}))
        error = await next_message(ws, "error")
        assert error["error"] == "PayloadTooLarge"
        await ws.send(json.dumps({"type": "ping"}))
        assert (await next_message(ws, "pong"))["type"] == "pong"  # still served


async def test_frame_too_big_to_read_closes_1009(api: ServiceProcess) -> None:
    async with connect(drone_url(api), max_size=None) as ws:
        await next_message(ws, "connection_established")
        with pytest.raises(ConnectionClosedError):  # while sending, or after
            await ws.send("x" * (SHIPPED.device_frame_ceiling + 1))
            while True:
                await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 1009


async def test_a_drone_frame_over_its_image_limit_gets_an_error_and_the_socket_stays_open(
    api: ServiceProcess,
) -> None:
    assert SHIPPED.max_frame_bytes < SHIPPED.device_frame_ceiling
    async with connect(drone_url(api), max_size=None) as ws:
        await next_message(ws, "connection_established")
        await ws.send(json.dumps({"type": "ping", "pad": "x" * (SHIPPED.max_frame_bytes + 100)}))
        error = await next_message(ws, "error")
        assert error["error"] == "PayloadTooLarge"
        await ws.send(json.dumps({"type": "ping"}))
        assert (await next_message(ws, "pong"))["type"] == "pong"  # still served
