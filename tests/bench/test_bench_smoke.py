"""The benchmark command runs a miniature scenario end to end: its own redis-server, the real
`dronecast gateway` process, events through publish.lua, the official socket.io-client."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _loadgen_ready() -> bool:
    if (BENCH / "loadgen" / "node_modules" / "socket.io-client").is_dir():
        return True
    if shutil.which("npm") is None:
        return False
    done = subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--silent"],
        cwd=BENCH / "loadgen",
        capture_output=True,
        timeout=120,
    )
    return done.returncode == 0


@pytest.mark.skipif(
    shutil.which("node") is None
    or shutil.which("redis-server") is None
    or shutil.which("taskset") is None,
    reason="needs node, redis-server and taskset",
)
def test_bench_smoke_runs_end_to_end_with_no_loss() -> None:
    if not _loadgen_ready():
        pytest.skip("bench/loadgen's npm packages could not be installed")
    done = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "smoke", "--no-save", "--quiet-pct", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    [record] = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert record["impl"] == "dronecast" and record["publish"] == "lua"
    assert record["client"] == "sio"  # the official socket.io-client
    assert record["connected"] == 20
    assert record["expected"] > 0
    assert record["delivered"] == record["expected"]
    assert record["lost"] == 0 and record["dup_or_ooo"] == 0 and record["bad_payload"] == 0
    assert record["p99_ms"] is not None and record["server_cpu_pct"] is not None
