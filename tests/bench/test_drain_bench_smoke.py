"""bench/drain.py runs end to end on a few clients: its own redis-server, the gateway in-process
and as a real `dronecast gateway` process, real WebSocket clients cut off and drained."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

DRAIN = Path(__file__).resolve().parents[2] / "bench" / "drain.py"

pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None or shutil.which("taskset") is None,
    reason="needs redis-server and taskset",
)


def run(*args: str) -> list[dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, str(DRAIN), *args, "--no-save"],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def test_disconnects_measures_every_client_leaving_and_leaves_nothing_behind() -> None:
    [record] = run("disconnects", "--sizes", "50", "--shapes", "own")
    assert record["clients"] == 50 and record["cpu_s"] >= 0
    assert record["left_behind"] == {"clients": 0, "rooms": 0, "watched": 0}


def test_leave_cuts_and_drains_a_real_gateway() -> None:
    cut, sigterm = run("leave", "--sizes", "30", "--observers", "5", "--warmup", "0.5")
    assert cut["connected_after"] == 5  # the leavers are gone, the observers stayed
    assert cut["observer_deliveries"] == cut["observer_expected"] > 0
    assert sigterm["close_codes"] == {"1012": 35}  # everyone told to come back elsewhere
    assert sigterm["stopped_cleanly"] and sigterm["within_drain_seconds"]
