"""Seed 001's JavaScript snippet, with the official socket.io-client from npm, against a gateway
replica, while the api runs as its own process (real Redis between them)."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.fixtures.servers import ServiceProcess

pytestmark = pytest.mark.e2e

JS_DIR = Path(__file__).parent / "js"


@pytest.fixture(scope="session")
def node_client() -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail(
            "node and npm are needed for the JavaScript client test (apt-get install nodejs npm)"
        )
    if not (JS_DIR / "node_modules" / "socket.io-client").exists():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"], cwd=JS_DIR, check=True, capture_output=True
        )
    return JS_DIR / "seed001_client.mjs"


async def test_seed_javascript_client_receives_events_once(
    system: dict[str, ServiceProcess], node_client: Path
) -> None:
    gateway, api = system["gateway-2"], system["api"]
    node = await asyncio.create_subprocess_exec(
        "node",
        str(node_client),
        gateway.url,
        "4000",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert node.stdout is not None
    lines: list[dict] = []

    async def read_until_connected() -> None:
        while True:
            raw = await node.stdout.readline()  # type: ignore[union-attr]
            if not raw:
                raise AssertionError("node client exited before connecting")
            if raw.startswith(b"{"):
                lines.append(json.loads(raw))
                if lines[-1]["name"] == "connected":
                    return

    await asyncio.wait_for(read_until_connected(), 10)
    await asyncio.sleep(0.5)  # its two `subscribe` emits (no ack in the seed) are processed
    async with httpx.AsyncClient(base_url=api.url) as http:
        await http.post(
            "/api/v1/drones/register",
            json={"deviceSerialNumber": "DRONE123", "deviceName": "Test Drone"},
        )
        await http.patch("/api/v1/drones/sn/DRONE123", json={"streamIsOn": True})
        await http.post("/api/v1/drones/register", json={"deviceSerialNumber": "OTHER1"})
    out, err = await asyncio.wait_for(node.communicate(), 15)
    lines += [json.loads(line) for line in out.splitlines() if line.startswith(b"{")]
    assert node.returncode == 0, err.decode()

    events = [line["payload"] for line in lines if line["name"] == "drone:event"]
    # Subscribed to all AND to DRONE123: still each event exactly once.
    assert [(e["event"], e["serial"]) for e in events] == [
        ("drone.created", "DRONE123"),
        ("drone.updated", "DRONE123"),
        ("drone.stream.status", "DRONE123"),
        ("drone.created", "OTHER1"),
    ]
    assert events[2]["data"]["streamIsOn"] is True
    assert events[1]["data"]["changes"] == {"streamIsOn": {"old": False, "new": True}}
    assert b"Stream status: true" in out
