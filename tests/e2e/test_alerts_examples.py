"""Seed 000's Quick Start: `examples/application_client.py` and `examples/drone_client.py`, run
as their own processes against `dronecast dev`'s app, show the whole flow and exit by
themselves."""

from __future__ import annotations

import asyncio
import sys

import pytest

from services.dev import create_dev_app
from tests.conftest import make_settings
from tests.fixtures.servers import REPO, serve

pytestmark = pytest.mark.e2e


async def run_example(name: str, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(REPO / "examples" / name),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )


async def lines_until(process: asyncio.subprocess.Process, marker: str) -> str:
    assert process.stdout is not None
    seen = ""
    while marker not in seen:
        line = await asyncio.wait_for(process.stdout.readline(), 10)
        assert line, f"exited before {marker!r}:\n{seen}"
        seen += line.decode()
    return seen


async def output_of(process: asyncio.subprocess.Process) -> str:
    stdout, _ = await asyncio.wait_for(process.communicate(), 30)
    return stdout.decode()


async def test_the_quick_start_clients_run_the_whole_flow_and_exit() -> None:
    async with serve(create_dev_app(make_settings())) as url:
        application = await run_example("application_client.py", "--url", url, "--once")
        started = await lines_until(application, "waiting for alerts")  # connected first
        drone = await run_example(
            "drone_client.py", "--url", url, "--once", "--work-seconds", "0.1"
        )
        drone_output = await output_of(drone)
        application_output = started + await output_of(application)
    print(f"\n{application_output}{drone_output}")
    assert drone.returncode == 0, drone_output
    assert application.returncode == 0, application_output
    for line in ("alert stored: alert_", "command for alert_", "image sent:", "is completed"):
        assert line in drone_output
    assert "picture at /uploads/alert_" in drone_output  # stored, and served there
    for line in (
        "alert.created: alert_",
        "response sent: ['activate_security_system'",
        "alert.responded: alert_",
        "alert.completed: alert_",
        "image received for alert_",
    ):
        assert line in application_output
