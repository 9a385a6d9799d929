"""The README's code blocks, run as written against `dronecast dev`: what a newcomer pastes
works. Every ```bash and ```python block runs, in order, on one running product (it is
started here, on a free port that replaces :8000, so a block's `make dev &` is skipped).
A block that must not run says why just above it: `<!-- not run: ... -->`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.redis_server import free_port
from tests.fixtures.servers import REPO

README = REPO / "README.md"
BLOCK = re.compile(
    r"(?P<skip><!-- not run:[^>]*-->\n)?```(?P<lang>[\w-]*)\n(?P<code>.*?)^```", re.S | re.M
)
RUNNABLE = {"bash": "bash", "sh": "bash", "python": "python"}
VENV_BIN = Path(sys.executable).parent


def runnable_blocks() -> list[tuple[int, str, str]]:
    text = README.read_text()
    blocks = []
    for match in BLOCK.finditer(text):
        if match["skip"] or match["lang"] not in RUNNABLE:
            continue
        line = text.count("\n", 0, match.start("code")) + 1
        blocks.append((line, RUNNABLE[match["lang"]], match["code"]))
    return blocks


@pytest.fixture(scope="module")
def dev() -> Iterator[str]:
    """`dronecast dev` as a user starts it, on a free port."""
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="dronecast-readme-", suffix=".log", delete=False)
    process = subprocess.Popen(
        [str(VENV_BIN / "dronecast"), "dev", "--port", str(port)],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        for _ in range(300):
            if "DroneCast is ready" in Path(log.name).read_text(errors="replace"):
                break
            assert process.poll() is None, Path(log.name).read_text()
            subprocess.run(["sleep", "0.1"], check=True)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(20)


def test_the_readme_has_runnable_blocks() -> None:
    kinds = [kind for _, kind, _ in runnable_blocks()]
    assert kinds.count("bash") >= 4 and kinds.count("python") >= 2


@pytest.mark.timeout(300)
def test_every_readme_block_runs_as_written(dev: str) -> None:
    env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}"}
    for line, kind, code in runnable_blocks():
        code = code.replace("127.0.0.1:8000", dev).replace("localhost:8000", dev)
        code = re.sub(r"^make dev &\s*$", ": the product is already running", code, flags=re.M)
        if kind == "bash":
            command = ["bash", "-e", "-o", "pipefail", "-c", code]
        else:
            command = [sys.executable, "-c", code]
        started = time.monotonic()
        result = subprocess.run(
            command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120
        )
        print(f"README.md line {line} ({kind}): {time.monotonic() - started:.1f}s")
        where = f"README.md line {line} ({kind}):\n{code}\n--- stdout\n{result.stdout[-2000:]}\n--- stderr\n{result.stderr[-2000:]}"
        assert result.returncode == 0, where
        assert '"error":' not in result.stdout, where  # an API error answered a curl
