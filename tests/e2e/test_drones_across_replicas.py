"""Drones end to end: REST -> MongoDB -> Redis -> every gateway replica -> clients.

`dronecast api` and two `dronecast gateway` processes on a real Redis; python-socketio clients
on both replicas, and a detector subscribed to Redis directly (seed 001 channels).
"""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
import orjson
import pytest
import redis.asyncio as aioredis

from tests.fixtures.servers import ServiceProcess
from tests.fixtures.sio import RecordingClient

pytestmark = pytest.mark.e2e


async def test_every_replica_delivers_each_event_exactly_once(
    system: dict[str, ServiceProcess], redis_url: str
) -> None:
    api, gw1, gw2 = system["api"], system["gateway-1"], system["gateway-2"]
    all_on_1 = await RecordingClient(gw1.url).connect()
    one_on_2 = await RecordingClient(gw2.url).connect()
    both_on_2 = await RecordingClient(gw2.url).connect()
    await all_on_1.subscribe(all=True)
    await one_on_2.subscribe(droneSerial="DRONE123")
    await both_on_2.subscribe(all=True)
    await both_on_2.subscribe(droneSerial="DRONE123")

    detector = aioredis.from_url(redis_url)
    pubsub = detector.pubsub()
    await pubsub.psubscribe("drone:DRONE123:*")

    async with httpx.AsyncClient(base_url=api.url) as http:
        created = await http.post(
            "/api/v1/drones/register",
            json={
                "deviceSerialNumber": "DRONE123",
                "deviceName": "Test Drone",
                "streamIsOn": False,
            },
        )
        assert created.status_code == 201
        await http.post("/api/v1/drones/register", json={"deviceSerialNumber": "OTHER1"})
        await http.patch(
            "/api/v1/drones/sn/DRONE123",
            json={"streamIsOn": True, "detectionClasses": [0, 1, 2, 3]},
        )
        await http.patch("/api/v1/drones/sn/DRONE123", json={"streamIsOn": True})  # no-op
        await http.patch("/api/v1/drones/sn/DRONE123", json={"aiDetectionEnabled": True})
        drone_id = created.json()["id"]
        assert (await http.delete(f"/api/v1/drones/{drone_id}")).status_code == 200

    expected = [
        "drone.created",
        "drone.updated",
        "drone.stream.status",
        "drone.detection.classes.changed",
        "drone.updated",
        "drone.ai.detection.toggled",
        "drone.deleted",
    ]
    drone_events = await one_on_2.wait_for(len(expected))
    await all_on_1.wait_for(len(expected) + 1)
    await both_on_2.wait_for(len(expected) + 1)
    await asyncio.sleep(0.3)  # anything extra (a duplicate) would arrive by now

    assert [e["event"] for e in drone_events] == expected
    ids = [e["id"] for e in drone_events]
    assert len(set(ids)) == len(ids)
    for client in (all_on_1, both_on_2):
        events = client.events()
        assert len(events) == len(expected) + 1, [e["event"] for e in events]
        assert Counter(e["serial"] for e in events) == {"DRONE123": 7, "OTHER1": 1}
        assert [e["id"] for e in events if e["serial"] == "DRONE123"] == ids

    direct = []
    deadline = asyncio.get_running_loop().time() + 5
    while len(direct) < len(expected):
        assert asyncio.get_running_loop().time() < deadline, f"detector got {len(direct)} events"
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
        if message is not None:
            direct.append((message["channel"].decode(), orjson.loads(message["data"])))
    assert [envelope["id"] for _, envelope in direct] == ids
    assert [channel for channel, _ in direct] == [
        "drone:DRONE123:created",
        "drone:DRONE123:updated",
        "drone:DRONE123:stream",
        "drone:DRONE123:config",
        "drone:DRONE123:updated",
        "drone:DRONE123:ai",
        "drone:DRONE123:deleted",
    ]
    await pubsub.aclose()
    await detector.aclose()
    for client in (all_on_1, one_on_2, both_on_2):
        await client.close()


async def test_every_service_answers_probes_and_metrics(
    system: dict[str, ServiceProcess],
) -> None:
    async with httpx.AsyncClient() as http:
        for name, process in system.items():
            health = await http.get(f"{process.url}/health")
            ready = await http.get(f"{process.url}/ready")
            metrics = await http.get(f"{process.url}/metrics")
            assert health.status_code == 200 and health.json()["status"] == "ok", name
            assert ready.status_code == 200 and ready.json()["checks"]["redis"] is True, name
            assert metrics.status_code == 200 and "dronecast_" in metrics.text, name
        docs = await http.get(f"{system['api'].url}/docs")
        assert docs.status_code == 200 and "swagger" in docs.text.lower()
