"""Who may open a device WebSocket when AUTH_ENABLED: a drone only as itself, an application
only hearing about its drones."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from websockets.asyncio.client import connect

from tests.conftest import make_settings
from tests.fixtures.auth import SECRET, token
from tests.fixtures.devices import (
    FAST_PRESENCE,
    Api,
    DeviceClient,
    alert_message,
    new_drone_id,
    start_api,
    ws_url,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def secured() -> AsyncIterator[Api]:
    async for running in start_api(
        make_settings(auth_enabled=True, secret_key=SECRET, **FAST_PRESENCE)
    ):
        yield running


@pytest.fixture
def drone_id() -> str:
    return new_drone_id()


@pytest.mark.parametrize(
    ("query", "error"),
    [("", "Unauthorized"), ("&token=garbage", "Unauthorized"), ("&token={other}", "NotFound")],
)
async def test_a_drone_socket_needs_the_drones_own_token(
    secured: Api, drone_id: str, query: str, error: str
) -> None:
    query = query.replace("{other}", token("drone", ["someone_else"]))
    async with connect(ws_url(secured.url, "drone", drone_id) + query) as ws:
        message = await asyncio.wait_for(ws.recv(), 5)
        assert f'"error":"{error}"' in str(message)
        await asyncio.wait_for(ws.wait_closed(), 5)
        assert ws.close_code == 1008
    assert secured.presence(drone_id) == []


async def test_a_scoped_application_hears_only_its_drones(secured: Api, drone_id: str) -> None:
    other_id = f"{drone_id}_other"
    app = DeviceClient(secured.url, "application", "app_1")
    app.url += "&token=" + token("application", [drone_id])
    await app.connect()
    for serial in (other_id, drone_id):
        drone = DeviceClient(secured.url, "drone", serial)
        await drone.connect(
            additional_headers={"Authorization": f"Bearer {token('drone', [serial])}"}
        )
        assert (await drone.request(alert_message(serial)))["type"] == "ack"
    [update] = await app.wait_for("alert_update")
    await asyncio.sleep(0.1)
    assert len(app.of_type("alert_update")) == 1
    assert update["data"]["drone_id"] == drone_id


async def test_connections_per_token_are_capped() -> None:
    settings = make_settings(
        auth_enabled=True, secret_key=SECRET, connections_per_client=2, **FAST_PRESENCE
    )
    async for api in start_api(settings):
        credential = "&token=" + token("application", None, sub="app_fleet")
        apps = []
        for n in range(2):
            app = DeviceClient(api.url, "application", f"app_{n}")
            app.url += credential
            apps.append(await app.connect())
        async with connect(ws_url(api.url, "application", "app_2") + credential) as ws:
            refusal = await asyncio.wait_for(ws.recv(), 5)
            assert '"error":"TooManyConnections"' in str(refusal)
            await asyncio.wait_for(ws.wait_closed(), 5)
            assert ws.close_code == 1008
        await apps[0].close()
        await asyncio.sleep(0.1)
        again = DeviceClient(api.url, "application", "app_3")
        again.url += credential
        await again.connect()  # a slot is free again
        for client in (apps[1], again):
            await client.close()
