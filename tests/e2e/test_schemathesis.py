"""schemathesis against the live OpenAPI schema of a running `dronecast api`, auth on.

Bounded examples so CI stays fast. Every check runs, `ignored_auth` included (it replays
requests without the token and expects a 401), except `allow_header_conformance`: Starlette
splits one path into per-method routes, so the `Allow` of a 405 names only the methods of the
route that matched. The run prints its figures; any failure (a 500 above all) fails the test.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import service_env
from tests.fixtures.auth import SECRET, token
from tests.fixtures.servers import ServiceProcess

pytestmark = pytest.mark.e2e

MAX_EXAMPLES = 25


def test_schemathesis_finds_no_failure(redis_url: str) -> None:
    env = service_env(
        redis_url,
        AUTH_ENABLED="true",
        SECRET_KEY=SECRET,
        REQUESTS_PER_SECOND="100000",
        REQUEST_BURST="100000",
    )
    api = ServiceProcess("api", env).start()
    binary = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert binary, "schemathesis is a dev dependency (pip install -e '.[dev]')"
    try:
        run = subprocess.run(
            [
                binary, "--config-file", str(Path(__file__).with_name("schemathesis.toml")),
                "run", f"{api.url}/openapi.json",
                "--checks", "all",
                "--exclude-checks", "allow_header_conformance",
                "--max-examples", str(MAX_EXAMPLES),
                "--seed", "20261123",
                "-H", f"Authorization: Bearer {token('admin')}",
            ],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    finally:
        api.stop()
    summary = run.stdout[run.stdout.find("SUMMARY") :]
    generated = re.search(r"(\d+) generated", summary)
    print(f"\n[schemathesis] exit={run.returncode} "
          f"cases={generated.group(1) if generated else '?'}\n{summary[-1500:]}")  # fmt: skip
    assert "Server error" not in run.stdout
    assert run.returncode == 0, run.stdout[-6000:]
    assert "unhandled_error" not in api.logs()
