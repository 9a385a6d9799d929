"""`dronecast` as an operator meets it: refusals of unsafe set-ups, one-line errors, the token
command's defaults, and `--help` telling the truth: where a service listens, what each command
does, and every setting it reads (generated from Settings)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shared.auth import Role, verify_token
from shared.settings import Settings
from tests.fixtures.auth import SECRET
from tests.fixtures.redis_server import free_port
from tests.fixtures.servers import ServiceProcess

REPO = Path(__file__).resolve().parents[2]
PRODUCTION = {"ENVIRONMENT": "production", "SECRET_KEY": SECRET, "PATH": os.environ["PATH"]}


def dronecast(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        cwd=REPO,
        env={**env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("service", ["api", "gateway", "worker"])
def test_service_without_mongodb_refuses_to_start_in_production(service: str) -> None:
    done = dronecast(service, env={**PRODUCTION, "REDIS_URL": "redis://127.0.0.1:1/0"})
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr  # one line
    assert done.stderr.startswith("dronecast: MONGODB_URI is not set"), done.stderr


def test_service_without_redis_refuses_to_start_in_production() -> None:
    done = dronecast("gateway", env={**PRODUCTION, "MONGODB_URI": "mongodb://127.0.0.1:1"})
    assert done.returncode == 2
    assert done.stderr.startswith("dronecast: REDIS_URL is not set"), done.stderr


def test_token_without_a_secret_key_is_a_one_line_error() -> None:
    done = dronecast("token", "--role", "viewer", env={"PATH": os.environ["PATH"]})
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1, done.stderr
    assert "SECRET_KEY" in done.stderr and "pydantic" not in done.stderr


def test_admin_token_manages_every_drone_by_default() -> None:
    done = dronecast("token", "--role", "admin", env=PRODUCTION)
    assert done.returncode == 0, done.stderr
    principal = verify_token(Settings(secret_key=SECRET), done.stdout.strip())
    assert principal.role is Role.ADMIN and principal.drones is None  # every drone
    assert "--drones" in dronecast("token", "--help", env=PRODUCTION).stdout


def test_other_roles_see_no_drone_unless_named_and_are_told_so() -> None:
    done = dronecast("token", "--role", "operator", env=PRODUCTION)
    assert done.returncode == 0
    assert verify_token(Settings(secret_key=SECRET), done.stdout.strip()).drones == frozenset()
    assert "may see no drone" in done.stderr


def listening_address(port: int, timeout: float = 20) -> str:
    """The local address a process listens on at `port` (from /proc/net/tcp)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.split(":")
            if int(port_hex, 16) == port and state == "0A":  # LISTEN
                raw = bytes.fromhex(address)[::-1]
                return ".".join(str(b) for b in raw)
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on {port}")


def help_host_default(command: str) -> str:
    text = dronecast(command, "--help", env=PRODUCTION).stdout
    found = re.search(r"--host HOST\s+listen address \((?:HOST; )?default ([0-9.]+)", text)
    assert found, text
    return found.group(1)


@pytest.mark.parametrize("command", ["dev", "worker"])
def test_help_names_the_address_the_command_binds(command: str) -> None:
    port = free_port()
    env = {"PATH": os.environ["PATH"], "ENVIRONMENT": "test", "AUTH_ENABLED": "false"}
    process = subprocess.Popen(
        [sys.executable, "-m", "services.cli", command, "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert listening_address(port) == help_host_default(command)
    finally:
        process.terminate()
        process.wait(15)


def help_of(*command: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "services.cli", *command, "--help"],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return result.stdout


def test_every_setting_has_a_description() -> None:
    assert [name for name, field in Settings.model_fields.items() if not field.description] == []


@pytest.mark.parametrize("command", [(), ("dev",), ("api",), ("gateway",), ("worker",)])
def test_help_lists_every_setting_with_its_default_and_meaning(command: tuple[str, ...]) -> None:
    text = help_of(*command)
    for name, field in Settings.model_fields.items():
        assert f"  {name.upper()} = " in text, name
        assert (field.description or "").split()[0] in text
    assert "  TASK_DEFAULT_DEADLINE_SECONDS = 3600.0" in text
    assert re.search(r"seed \d|seed format", text, re.IGNORECASE) is None  # no team jargon


def test_simulate_help_says_how_to_drive_a_fleet() -> None:
    text = help_of("simulate")
    for option in ("--api", "--drones", "--duration", "--seed", "--token"):
        assert option in text


def _get_on(connection: socket.socket) -> bytes:
    connection.sendall(b"GET /health HTTP/1.1\r\nHost: dronecast\r\n\r\n")
    answer = b""
    while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
        chunk = connection.recv(65536)
        if not chunk:
            break
        answer += chunk
    return answer


def test_an_idle_http_connection_stays_open_for_the_keep_alive_setting() -> None:
    """A client (or a load balancer) reusing a kept-alive connection finds it open for
    HTTP_KEEP_ALIVE_SECONDS, and closed by the service after that (here 1 s, where uvicorn's
    own default would be 5 s)."""
    process = ServiceProcess("dev", {"HTTP_KEEP_ALIVE_SECONDS": "1", "LOG_LEVEL": "WARNING"})
    process.start()
    try:
        with socket.create_connection(("127.0.0.1", process.port), timeout=10) as connection:
            assert _get_on(connection).startswith(b"HTTP/1.1 200")
            time.sleep(0.3)  # idle, within the setting
            assert _get_on(connection).startswith(b"HTTP/1.1 200")
            idle_from = time.monotonic()
            assert connection.recv(1) == b""  # the service closes it once idle that long
            assert 0.5 <= time.monotonic() - idle_from <= 3.5
    finally:
        process.stop()
