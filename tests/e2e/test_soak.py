"""A short soak (bench/soak.py, 30 drones for 25 s of flight): `dronecast simulate` drives the api, the
worker and two gateways as separate processes on a real Redis, while Socket.IO clients (the
Python client) listen on both gateways.

What a user relies on:
- every event the simulated fleet caused (Redis's retention stream is the record of all of
  them) reached every client subscribed to it exactly once, and each drone's in order;
- every task the fleet was given ended in a final state, and every alert was completed;
- no process logged an error.

The api and the worker are separate processes when MONGODB_URI names a real MongoDB; without
one they run together in `dronecast dev` (with REDIS_URL): the in-process store lives inside
one process. `python bench/soak.py` runs the same for longer and reports its figures.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.fixtures.servers import REPO

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(120)
def test_a_simulated_fleet_reaches_every_subscriber_once_and_in_order() -> None:
    result = subprocess.run(
        [sys.executable, "bench/soak.py", "--drones", "30", "--duration", "25", "--seed", "11", "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=110,
    )  # fmt: skip
    assert result.stdout, result.stderr[-3000:]
    report = json.loads(result.stdout)
    print(json.dumps({k: v for k, v in report.items() if k != "simulator_tasks"}, indent=1))
    counters = report["simulator"]
    assert report["simulate_exit"] == 0 and counters["errors"] == 0, counters
    assert counters["alerts"] > 5 and counters["tasks"] > 5 and report["events"] > 200
    assert len(report["listeners"]) == 4
    for listener in report["listeners"]:
        assert listener["expected"] > 0, listener
        assert (listener["missing"], listener["duplicates"], listener["unexpected"]) == (0, 0, 0), (
            listener
        )
        assert listener["out_of_order"] == 0, listener
        assert listener["notices"] == [], listener
    assert report["tasks"] == counters["tasks"] == len(report["simulator_tasks"])
    assert report["unfinished_tasks"] == [] and report["unfinished_alerts"] == []
    assert report["error_lines"] == {name: [] for name in report["error_lines"]}
    assert result.returncode == 0
