"""A registered drone's presence reaches its document, its events and its snapshot, so a
detector that subscribes with `snapshot: true` sees whether the drone is online right now."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from tests.conftest import make_settings
from tests.fixtures.devices import FAST_PRESENCE, Api, new_drone_id, start_api


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    async for running in start_api(make_settings(**FAST_PRESENCE)):
        yield running


async def snapshot_online(api: Api, serial: str, expected: bool) -> None:
    deadline = time.monotonic() + 5
    while True:
        snapshot = await api.broker.snapshot(serial)
        if snapshot is not None and snapshot.state["online"] is expected:
            return
        assert time.monotonic() < deadline, f"snapshot: {snapshot}"
        await asyncio.sleep(0.01)


async def test_snapshot_and_drone_follow_presence(api: Api) -> None:
    serial = new_drone_id()
    created = await api.http.post("/api/v1/drones/register", json={"deviceSerialNumber": serial})
    assert created.status_code == 201
    drone = await api.drone(serial)
    await snapshot_online(api, serial, True)
    body = (await api.http.get(f"/api/v1/drones/sn/{serial}")).json()
    assert body["online"] is True and body["lastSeenAt"] is not None
    updates = [
        e for e in api.events.events if e["event"] == "drone.updated" and e["serial"] == serial
    ]
    assert updates[-1]["data"]["changes"] == {"online": {"old": False, "new": True}}
    await drone.close()
    await snapshot_online(api, serial, False)  # after the grace period
    assert (await api.http.get(f"/api/v1/drones/sn/{serial}")).json()["online"] is False


async def test_an_unregistered_drone_has_presence_but_no_document(api: Api) -> None:
    serial = new_drone_id()
    drone = await api.drone(serial)
    await api.presence_events(serial, 1)
    assert await api.broker.snapshot(serial) is None
    assert (await api.http.get(f"/api/v1/drones/sn/{serial}")).status_code == 404
    await drone.close()
