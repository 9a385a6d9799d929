"""An event whose write succeeded is never lost: not when the process dies right after the
write, not when Redis is down at that moment. Two api instances share one store (as replicas
share MongoDB) and a real Redis; the second one's outbox relay publishes what the first left."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from services.api.main import create_app
from shared import outbox
from shared.models import OUTBOX_MODELS
from shared.mongo_embedded import EmbeddedMongoClient
from shared.outbox import OutboxRelay
from shared.runtime import Runtime
from tests.conftest import REAL_MONGODB_URI, make_settings
from tests.fixtures.events import EventRecorder, record_all
from tests.fixtures.redis_server import RedisServer


class ProcessDied(BaseException):
    """Raised at the crash point: like a SIGKILL, nothing after it in the request runs."""


@pytest.fixture
async def replicas(redis_url: str) -> AsyncIterator[tuple[httpx.AsyncClient, Runtime]]:
    """Replica A serves requests; replica B's runtime only runs the relay and observes."""
    settings = make_settings(redis_url=redis_url)
    shared_store = None if REAL_MONGODB_URI else EmbeddedMongoClient()
    runtime_a = Runtime.create(settings, mongo_client=shared_store)
    runtime_b = Runtime.create(settings, mongo_client=shared_store)
    app = create_app(settings, runtime=runtime_a)
    await runtime_b.start()
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=True)
        async with httpx.AsyncClient(transport=transport, base_url="http://a") as client:
            yield client, runtime_b
    await runtime_b.stop()


async def test_events_of_a_write_whose_process_died_are_published_by_another_replica(
    replicas: tuple[httpx.AsyncClient, Runtime],
) -> None:
    client, other = replicas
    events: EventRecorder = await record_all(other.broker)
    created = await client.post("/api/v1/drones/register", json={"deviceSerialNumber": "SN1"})
    assert created.status_code == 201

    def die() -> None:
        raise ProcessDied

    outbox.crash_point = die
    try:
        with pytest.raises(ProcessDied):
            await client.patch("/api/v1/drones/sn/SN1", json={"streamIsOn": True})
    finally:
        outbox.crash_point = None
    await asyncio.sleep(0.1)
    assert events.names == ["drone.created"]  # the write happened, its events did not go out

    relayed = await OutboxRelay(other.broker, list(OUTBOX_MODELS)).relay_once(grace=0)
    assert relayed == 2
    await events.wait_for(3)
    assert events.names == ["drone.created", "drone.updated", "drone.stream.status"]
    assert events.events[1]["data"]["changes"] == {"streamIsOn": {"old": False, "new": True}}
    # Relaying again publishes nothing twice.
    assert await OutboxRelay(other.broker, list(OUTBOX_MODELS)).relay_once(grace=0) == 0
    await asyncio.sleep(0.1)
    assert len(events.events) == 3


async def test_a_write_while_redis_is_down_succeeds_and_its_events_follow_later(
    replicas: tuple[httpx.AsyncClient, Runtime], redis_server: RedisServer
) -> None:
    client, other = replicas
    await client.post("/api/v1/drones/register", json={"deviceSerialNumber": "SN1"})
    redis_server.stop()
    try:
        response = await client.patch("/api/v1/drones/sn/SN1", json={"deviceName": "kept"})
        assert response.status_code == 200  # the write is the truth; the event is owed
        assert response.json()["deviceName"] == "kept"
    finally:
        redis_server.start()  # a fresh, empty Redis
    events: EventRecorder = await record_all(other.broker)
    # The api's own relay (1 s interval, 2 s grace) publishes it without anyone's help.
    await events.wait_for(1, timeout=10)
    assert events.names == ["drone.updated"]
    assert events.events[0]["data"]["changes"] == {"deviceName": {"old": None, "new": "kept"}}
