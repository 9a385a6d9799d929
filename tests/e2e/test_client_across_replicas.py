"""The Python client against the product as separate processes (one api, two gateways, real
Redis): a gateway killed under a subscribed client, and authentication end to end."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from dronecast_client import (
    AsyncApplicationClient,
    AsyncClient,
    AsyncDroneClient,
    AsyncEventsClient,
    Event,
    Forbidden,
    Resumed,
    Unauthorized,
)
from dronecast_client.models import StreamItem

from tests.e2e.conftest import running, service_env
from tests.fixtures.auth import SECRET, token
from tests.fixtures.servers import ServiceProcess

pytestmark = pytest.mark.e2e


async def drain_until(
    events: AsyncEventsClient, count: int, timeout: float = 15
) -> list[StreamItem]:
    items: list[StreamItem] = []
    deadline = time.monotonic() + timeout
    while sum(isinstance(i, Event) for i in items) < count:
        items.append(await events.next_event(max(0.1, deadline - time.monotonic())))
    return items


async def test_a_killed_gateways_client_resumes_on_the_other_and_misses_nothing(
    system: dict[str, ServiceProcess],
) -> None:
    gateways = [system["gateway-1"].url, system["gateway-2"].url]
    async with AsyncClient(system["api"].url) as api:
        await api.register_drone("KILL1")
        events = await AsyncEventsClient(gateways, reconnect_delay=0.1).connect()
        try:
            await events.subscribe(serials=["KILL1"])
            for n in range(20):
                await api.update_drone("KILL1", name=f"name-{n}")
            await drain_until(events, 20)  # all 20 arrived through gateway-1
            assert events.url == gateways[0]
            system["gateway-1"].kill()
            for n in range(20, 60):  # while the client finds gateway-2, and after
                await api.update_drone("KILL1", name=f"name-{n}")
            items = await drain_until(events, 40)
            await asyncio.sleep(0.5)
            assert events.pending() == 0  # nothing more: no duplicates
        finally:
            await events.close()
    names = [i.changes["deviceName"]["new"] for i in items if isinstance(i, Event)]
    assert names == [f"name-{n}" for n in range(20, 60)]
    assert events.url == gateways[1]
    assert len([i for i in items if isinstance(i, Resumed)]) == 1


@pytest.fixture
def secured_system(redis_url: str) -> Iterator[dict[str, ServiceProcess]]:
    env = service_env(redis_url, AUTH_ENABLED="true", SECRET_KEY=SECRET)
    with running(
        {"api": ServiceProcess("api", env), "gateway": ServiceProcess("gateway", env)}
    ) as processes:
        yield processes


async def test_tokens_decide_what_each_client_may_do_and_see(
    secured_system: dict[str, ServiceProcess],
) -> None:
    api_url, gateway = secured_system["api"].url, secured_system["gateway"].url
    with pytest.raises(Unauthorized):
        await AsyncEventsClient(gateway).connect()
    async with (
        AsyncClient(api_url, token=token("admin")) as admin,
        AsyncEventsClient(gateway, token=token("detector", ["AUTH1"])) as detector,
    ):
        await detector.subscribe(all=True)  # all of its drones: AUTH1 only
        with pytest.raises(Forbidden):
            await detector.subscribe(serials=["AUTH2"])
        await admin.register_drone("AUTH2")
        await admin.register_drone("AUTH1")
        drone_token, app_token = (
            token("drone", ["AUTH1"], "AUTH1"),
            token("application", None, "app1"),
        )
        async with (
            AsyncDroneClient(api_url, "AUTH1", token=drone_token) as drone,
            AsyncApplicationClient(api_url, "app1", token=app_token) as app,
        ):
            alert = await drone.raise_alert("fire", 0.9, lat=1, lng=2)
            await app.respond(alert.alert_id, ["land"])
        items: list[StreamItem] = []
        while not any(isinstance(i, Event) and i.event == "alert.responded" for i in items):
            items.append(await detector.next_event(10))
    seen = [(type(i).__name__, i.event, i.serial) for i in items if isinstance(i, Event)]
    assert seen[0] == ("DroneEvent", "drone.created", "AUTH1")  # not AUTH2's
    assert ("DroneEvent", "drone.online", "AUTH1") in seen
    assert [e for e in seen if e[0] == "AlertEvent"] == [
        ("AlertEvent", "alert.created", "AUTH1"),
        ("AlertEvent", "alert.responded", "AUTH1"),
    ]
    assert all(serial == "AUTH1" for _, _, serial in seen)
