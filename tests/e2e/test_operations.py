"""What ops sees: metrics that move with real traffic, probes that follow Redis, and a gateway
that drains on SIGTERM without its clients missing an event."""

from __future__ import annotations

import asyncio
import signal
import time

import httpx
import pytest

from shared.broker import RedisBroker
from tests.e2e.conftest import service_env
from tests.fixtures.numbered import ResumingClient, assert_contiguous, publish_numbered
from tests.fixtures.prometheus import scrape, value
from tests.fixtures.redis_server import RedisServer
from tests.fixtures.servers import ServiceProcess
from tests.fixtures.sio import RecordingClient

pytestmark = pytest.mark.e2e


async def test_sigterm_drains_a_gateway_and_its_clients_resume_elsewhere(redis_url: str) -> None:
    env = service_env(redis_url, DRAIN_SECONDS="5")
    replicas = [ServiceProcess("gateway", env).start(), ServiceProcess("gateway", env).start()]
    publisher = RedisBroker(redis_url)
    await publisher.start()
    urls = [replica.url for replica in replicas]
    clients = [await ResumingClient(urls, {"all": True}).start(n % 2) for n in range(6)]
    try:
        await publish_numbered(publisher, 0, 500, every=25)
        started = time.monotonic()
        replicas[0].signal(signal.SIGTERM)
        await publish_numbered(publisher, 500, 500, every=25)
        assert replicas[0].process is not None
        exit_code = replicas[0].process.wait(10)
        drained_in = time.monotonic() - started
        for client in clients:
            await client.wait_for(1000)
        await asyncio.sleep(0.3)
        print(
            f"\n[drain] exit={exit_code} drained_in_s={drained_in:.2f} moved="
            f"{sum(1 for c in clients if c.reconnects)}"
        )
        # uvicorn re-raises the SIGTERM after a clean shutdown, so the status is -15.
        assert exit_code in (0, -signal.SIGTERM) and drained_in < 5
        assert "Application shutdown complete" in replicas[0].logs()
        assert sum(1 for c in clients if c.reconnects) == 3
        for client in clients:
            assert_contiguous(client.numbers, 1000)
    finally:
        for client in clients:
            await client.close()
        await publisher.close()
        for replica in replicas:
            replica.stop()


async def test_metrics_move_with_real_traffic(system: dict[str, ServiceProcess]) -> None:
    api, gateway = system["api"], system["gateway-1"]
    api_before, gateway_before = scrape(api.url), scrape(gateway.url)
    clients = [await RecordingClient(gateway.url).connect() for _ in range(3)]
    for client in clients:
        await client.subscribe(all=True)
    async with httpx.AsyncClient(base_url=api.url) as http:
        await http.post("/api/v1/drones/register", json={"deviceSerialNumber": "M1"})
        await http.patch("/api/v1/drones/sn/M1", json={"streamIsOn": True})
        await http.get("/api/v1/drones/sn/NOPE")
    for client in clients:
        await client.wait_for(3)
    await asyncio.sleep(0.2)
    api_after, gateway_after = scrape(api.url), scrape(gateway.url)

    def grew(after: dict, before: dict, name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert (
        grew(api_after, api_before, "dronecast_events_published_total", event="drone.created") == 1
    )
    assert (
        grew(api_after, api_before, "dronecast_events_published_total", event="drone.stream.status")
        == 1
    )
    assert (
        grew(
            api_after,
            api_before,
            "dronecast_http_requests_total",
            method="POST",
            route="/api/v1/drones/register",
            status="201",
        )
        == 1
    )
    assert (
        grew(
            api_after,
            api_before,
            "dronecast_http_requests_total",
            method="GET",
            route="/api/v1/drones/sn/{sn}",
            status="404",
        )
        == 1
    )
    assert (
        grew(
            api_after,
            api_before,
            "dronecast_http_request_seconds_count",
            method="PATCH",
            route="/api/v1/drones/sn/{sn}",
        )
        == 1
    )
    # Three subscribers on this replica: each event is delivered three times.
    assert (
        grew(
            gateway_after, gateway_before, "dronecast_events_delivered_total", event="drone.updated"
        )
        == 3
    )
    assert value(gateway_after, "dronecast_gateway_clients") == 3
    assert grew(gateway_after, gateway_before, "dronecast_publish_to_deliver_seconds_count") == 3
    for client in clients:
        await client.close()


async def test_ready_follows_redis_and_reconnects_are_counted(
    system: dict[str, ServiceProcess], redis_server: RedisServer
) -> None:
    gateway, api = system["gateway-1"], system["api"]
    before = scrape(gateway.url)
    redis_server.stop()
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            for service in (gateway, api):
                ready = await http.get(f"{service.url}/ready")
                assert ready.status_code == 503
                assert ready.json()["checks"]["redis"] is False
                assert (await http.get(f"{service.url}/health")).status_code == 200  # alive
    finally:
        redis_server.start()
    for service in (gateway, api):
        service.wait_ready(timeout=15)
    deadline = time.monotonic() + 15
    while value(scrape(gateway.url), "dronecast_redis_reconnects_total") <= value(
        before, "dronecast_redis_reconnects_total"
    ):
        assert time.monotonic() < deadline, "the gateway never counted its reconnect"
        await asyncio.sleep(0.1)
    after = scrape(gateway.url)
    assert value(after, "dronecast_redis_outages_total") > value(
        before, "dronecast_redis_outages_total"
    )


async def test_a_reading_sent_while_redis_is_down_is_a_503_to_send_again(
    system: dict[str, ServiceProcess], redis_server: RedisServer
) -> None:
    api = system["api"]
    reading = {"sensor_id": "t1", "sensor_type": "temperature", "value": 20.5, "unit": "c"}
    redis_server.stop()
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            refused = await http.post(f"{api.url}/api/v1/sensors/data", json=reading)
    finally:
        redis_server.start()
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"] == "ServiceUnavailable"
    assert "send the request again" in refused.json()["detail"]
    assert refused.headers["retry-after"] == "1"
    api.wait_ready(timeout=15)
    async with httpx.AsyncClient(timeout=10) as http:
        again = await http.post(f"{api.url}/api/v1/sensors/data", json=reading)
    assert again.status_code == 202, again.text
