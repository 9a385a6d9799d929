"""No credential reaches a log line, at any level: an authenticated session against the api,
the gateway and the worker, each its own process logging at DEBUG, and then every line they
wrote is searched for the tokens used and for SECRET_KEY."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
import socketio
from websockets.asyncio.client import connect

from tests.e2e.conftest import running, service_env
from tests.fixtures.auth import SECRET, token
from tests.fixtures.redis_server import RedisServer
from tests.fixtures.servers import ServiceProcess

SERIAL = "LOGSN1"


@pytest.fixture
def services(redis_url: str, redis_server: RedisServer) -> Iterator[dict[str, ServiceProcess]]:
    env = service_env(
        redis_url, AUTH_ENABLED="true", SECRET_KEY=SECRET, LOG_LEVEL="DEBUG", LOG_JSON="true"
    )
    with running({name: ServiceProcess(name, env) for name in ("api", "gateway", "worker")}) as ps:
        yield ps


async def authenticated_session(api: str, gateway: str, tokens: dict[str, str]) -> None:
    """REST with a bearer header, a drone's WebSocket with ?token=, Socket.IO with the token in
    `auth`, in the query and in a header, and a forged token refused."""
    async with httpx.AsyncClient(base_url=api) as http:
        admin = {"Authorization": f"Bearer {tokens['admin']}"}
        registered = await http.post(
            "/api/v1/drones/register", json={"deviceSerialNumber": SERIAL}, headers=admin
        )
        assert registered.status_code == 201, registered.text
        forged = await http.get(
            "/api/v1/drones", headers={"Authorization": f"Bearer {tokens['forged']}"}
        )
        assert forged.status_code == 401
    drone_url = (
        api.replace("http://", "ws://") + f"/ws/drone/{SERIAL}?welcome=1&token={tokens['drone']}"
    )
    async with connect(drone_url) as drone:
        assert "error" not in str(await asyncio.wait_for(drone.recv(), 5))
    for kwargs in (
        {"auth": {"token": tokens["sio_auth"]}},
        {"url": f"{gateway}?token={tokens['sio_query']}"},
        {"headers": {"Authorization": f"Bearer {tokens['sio_header']}"}},
    ):
        client = socketio.AsyncClient(reconnection=False)
        await client.connect(
            str(kwargs.get("url", gateway)),
            socketio_path="/ws/events",
            transports=["websocket"],
            auth=kwargs.get("auth"),  # type: ignore[arg-type]
            headers=kwargs.get("headers", {}),  # type: ignore[arg-type]
        )
        ack = await client.call("subscribe", {"droneSerial": SERIAL}, timeout=5)
        assert ack["ok"] is True
        await client.disconnect()


async def test_no_token_or_secret_key_in_any_log_line(
    services: dict[str, ServiceProcess],
) -> None:
    tokens = {
        "admin": token("admin", sub="log-admin"),
        "drone": token("drone", [SERIAL], sub="log-drone"),
        "sio_auth": token("viewer", sub="log-sio-auth"),
        "sio_query": token("viewer", sub="log-sio-query"),
        "sio_header": token("viewer", sub="log-sio-header"),
    }
    tokens["forged"] = token("admin", sub="log-forged")[:-6] + "AAAAAA"
    await authenticated_session(services["api"].url, services["gateway"].url, tokens)
    for process in services.values():
        process.stop()
    logs = {name: process.logs() for name, process in services.items()}
    # The session was logged, at the level where the device's query string shows up.
    assert "/ws/drone/" + SERIAL in logs["api"]
    assert "token=[redacted]" in logs["api"]
    for name, text in logs.items():
        assert SECRET not in text, f"SECRET_KEY in the {name} log"
        for which, credential in tokens.items():
            signature = credential.rsplit(".", 1)[1]
            assert signature not in text, f"the {which} token's signature in the {name} log"
