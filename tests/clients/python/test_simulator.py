"""The fleet simulator (dronecast_client.simulator, `dronecast simulate`) against the product."""

from __future__ import annotations

import asyncio
import io
import itertools
import random
import sys

from dronecast_client import AsyncClient
from dronecast_client.simulator import Flight, Simulation

from tests.conftest import make_settings
from tests.fixtures.product import serve_product
from tests.fixtures.servers import REPO


def flight_log(seed: str, seconds: int) -> list[tuple[str, dict[str, float]]]:
    flight = Flight(random.Random(seed), home=(40.7, -74.0))
    log = []
    for _ in range(seconds):
        flight.step()
        log.append((flight.phase, flight.readings()))
    return log


NEXT_PHASES = {
    "grounded": {"takeoff"},
    "takeoff": {"cruise", "landing"},
    "cruise": {"hover", "landing"},
    "hover": {"cruise", "landing"},
    "landing": {"grounded"},
}


def test_a_flight_takes_off_cruises_and_lands_within_physical_bounds() -> None:
    log = flight_log("plausible", 600)
    phases = [phase for phase, _ in log]
    assert {"grounded", "takeoff", "cruise", "hover", "landing"} <= set(phases)
    for before, after in itertools.pairwise(phases):
        assert after == before or after in NEXT_PHASES[before], (before, after)
    for (phase, now), (_, before) in zip(log[1:], log, strict=False):
        assert 0 <= now["battery"] <= 100 and now["altitude"] >= 0 and now["vibration"] >= 0
        if phase == "grounded":
            assert now["altitude"] == 0
        assert abs(now["altitude"] - before["altitude"]) <= 8  # no teleporting


def test_the_same_seed_flies_the_same_flight_and_another_seed_does_not() -> None:
    assert flight_log("seed-1", 120) == flight_log("seed-1", 120)
    assert flight_log("seed-1", 120) != flight_log("seed-2", 120)


async def run_once(
    seed: int,
) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]], dict[str, int]]:
    """Simulate on a fresh product; what it raised and sent, by content."""
    async with serve_product(make_settings()) as url:
        simulation = Simulation(
            url, drones=6, duration=6, seed=seed, drain=10, activity=12, out=io.StringIO()
        )
        counters = await simulation.run()
        async with AsyncClient(url) as api:
            alerts = (await api.list_alerts(limit=500)).items
            tasks = (await api.list_tasks(limit=500)).items
        alert_content = sorted(
            (a.drone_id, a.alert_type, a.score, a.description, a.location.lat) for a in alerts
        )
        task_content = sorted(
            (t.drone_id, t.task_type, t.priority, str(t.input_data)) for t in tasks
        )
        return alert_content, task_content, vars(counters)


async def test_the_same_seed_raises_the_same_alerts_and_sends_the_same_tasks() -> None:
    first_alerts, first_tasks, counters = await run_once(seed=5)
    second_alerts, second_tasks, second_counters = await run_once(seed=5)
    assert first_alerts and first_tasks, counters
    assert (first_alerts, first_tasks) == (second_alerts, second_tasks)
    assert counters["tasks_failed"] == second_counters["tasks_failed"]  # outcomes too
    # and everything it started, it finished: alerts answered and completed, tasks ended
    assert counters["alerts_completed"] == counters["alerts"] == len(first_alerts)
    assert counters["tasks_completed"] + counters["tasks_failed"] == counters["tasks"], counters
    assert counters["errors"] == 0, counters["last_error"]


async def test_dronecast_simulate_flies_a_fleet_and_exits_zero() -> None:
    async with serve_product(make_settings()) as url:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.cli", "simulate", "--api", url, "--drones", "3",
            "--duration", "4", "--seed", "3", "--drain", "5",
            cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
        async with AsyncClient(url) as api:
            drones = (await api.list_drones()).items
            readings = await api.list_readings(limit=1)
        assert process.returncode == 0, stderr.decode()
        assert stdout == b""
        lines = stderr.decode().splitlines()
        assert lines[-1].startswith("[done/4s] drones 3 · readings 48 ")
        assert sorted(d.serial for d in drones) == ["SIM3-001", "SIM3-002", "SIM3-003"]
        assert readings.total == 48  # 3 drones x 4 sensors x 4 seconds
