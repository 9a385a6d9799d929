"""The dashboard benchmark runs end to end in miniature: its own redis-server, api and gateway
processes, events through the product's publish path, the page in Debian's chromium."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_dashboard_bench_runs_its_three_phases_with_no_event_lost() -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(BENCH / "dashboard.py"),
            *("--drones", "5", "--seconds", "1", "--rate", "10", "--stress", "20", "--no-save"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    records = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert [record["phase"] for record in records] == ["idle", "load", "stress"]
    idle, load, stress = records
    assert idle["published"] == 0 and idle["frames"] > 0
    for record in (load, stress):
        assert record["published"] > 0
        assert record["received"] == record["published"] == record["shown_in_log"]
        assert record["event_to_dom_p50_ms"] is not None
        assert record["drone_rows_replaced"] == 0
        assert record["page_errors"] == 0
