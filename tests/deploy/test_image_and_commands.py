"""The Dockerfile, and the commands that compose and Kubernetes run, match the `dronecast` CLI.

The CLI is asked for itself (`python -m services.cli --help`), so a renamed subcommand or a changed
default port shows up here as a mismatch with the deploy files.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
SERVICE_COMMANDS = ("api", "gateway", "worker")

# --------------------------------------------------------------------------------------------
# What the CLI offers
# --------------------------------------------------------------------------------------------


ENV = {**os.environ, "COLUMNS": "200"}  # no wrapped help lines


def _help(*args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "services.cli", *args, "--help"],
        cwd=REPO,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.fixture(scope="module")
def cli() -> dict[str, int | None]:
    """Subcommand -> default port (None for non-serving commands), from `dronecast --help`."""
    top = _help()
    m = re.search(r"\{([a-z,]+)\}", top)
    assert m, top
    commands = m.group(1).split(",")
    procs = {
        c: subprocess.Popen(
            [sys.executable, "-m", "services.cli", c, "--help"],
            cwd=REPO,
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for c in commands
    }
    result: dict[str, int | None] = {}
    for c, proc in procs.items():
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        port = re.search(r"^\s+--port \w+\s.*?default (\d+)\)", out, re.M)
        result[c] = int(port.group(1)) if port else None
    return result


def test_cli_offers_the_services(cli) -> None:
    for command in SERVICE_COMMANDS:
        assert cli.get(command), f"`dronecast {command}` missing or without a port"
    assert cli["api"] == 8000 and cli["gateway"] == 8001 and cli["worker"] == 8002


def test_console_script_is_dronecast() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["dronecast"] == "services.cli:main"


# --------------------------------------------------------------------------------------------
# Dockerfile
# --------------------------------------------------------------------------------------------


def parse_dockerfile(text: str) -> list[list[tuple[str, str]]]:
    """Stages, each a list of (INSTRUCTION, arguments); continuations joined, comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    assert not pending, "dangling line continuation"
    stages: list[list[tuple[str, str]]] = []
    for line in lines:
        instruction, _, args = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            stages.append([])
        assert stages, f"{instruction} before FROM"
        stages[-1].append((instruction, args.strip()))
    return stages


@pytest.fixture(scope="module")
def stages() -> list[list[tuple[str, str]]]:
    return parse_dockerfile(DOCKERFILE.read_text())


def only(stage: list[tuple[str, str]], instruction: str) -> str:
    found = [args for ins, args in stage if ins == instruction]
    assert len(found) == 1, f"expected one {instruction}, found {found}"
    return found[0]


def test_multi_stage_on_python_311_slim(stages) -> None:
    assert len(stages) >= 2
    froms = [only(stage, "FROM").split() for stage in stages]
    assert froms[-1][0] == "python:3.11-slim"
    names = {f[2] for f in froms[:-1] if len(f) == 3 and f[1].upper() == "AS"}
    copies_from = {
        m.group(1) for ins, args in stages[-1] if ins == "COPY"
        for m in [re.search(r"--from=(\S+)", args)] if m
    }  # fmt: skip
    assert copies_from and copies_from <= names, "the final stage takes the build from a builder"


def test_no_dev_dependencies_in_the_image(stages) -> None:
    text = DOCKERFILE.read_text()
    dev = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"][
        "dev"
    ]
    dev_names = {re.split(r"[<>=\[ ;]", d)[0].lower() for d in dev}
    for stage in stages:
        for ins, args in stage:
            if ins != "RUN":
                continue
            assert not re.search(r"\[\s*dev\s*\]", args), f"dev extras installed: {args}"
            words = {w.lower() for w in re.split(r"[\s'\"]+", args)}
            assert not words & dev_names, f"dev tool installed: {args}"
    assert "[dev]" not in text
    # The runtime stage installs nothing from the network: it copies the builder's venv.
    for ins, args in stages[-1]:
        if ins == "RUN":
            assert "pip" not in args, args
        if ins == "COPY" and "--from" not in args:
            raise AssertionError(f"runtime stage copies sources from the context: {args}")


def test_the_image_carries_the_python_client_for_dronecast_simulate(stages) -> None:
    builder = stages[0]
    copied = [args.split()[0] for ins, args in builder if ins == "COPY"]
    assert "clients/python" in copied
    install = " ".join(args for ins, args in builder if ins == "RUN")
    assert "./clients/python" in install and "dronecast_client-*.whl" in install
    assert not _ignored("clients/python/pyproject.toml", _dockerignore())


def test_runs_as_non_root(stages) -> None:
    final = stages[-1]
    users = [args for ins, args in final if ins == "USER"]
    assert users, "no USER in the final stage"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    # Numeric, so Kubernetes runAsNonRoot can verify it; the same uid as the manifests use.
    assert user.isdigit()
    manifests = yaml.safe_load_all((REPO / "deploy/k8s/base/api.yaml").read_text())
    dep = next(d for d in manifests if d["kind"] == "Deployment")
    assert dep["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == int(user)
    order = [ins for ins, _ in final]
    assert order.index("USER") < order.index("ENTRYPOINT")


def test_entrypoint_and_default_command(stages, cli) -> None:
    final = stages[-1]
    assert json.loads(only(final, "ENTRYPOINT")) == ["dronecast"]
    cmd = json.loads(only(final, "CMD"))
    assert cmd == ["api"] and cmd[0] in cli


def test_healthcheck(stages, cli) -> None:
    check = only(stages[-1], "HEALTHCHECK")
    assert "CMD" in check
    assert "curl" not in check and "wget" not in check, "neither exists in python:slim"
    assert "urllib" in check and "/health" in check
    m = re.search(r"http://127\.0\.0\.1:\$\{PORT:-(\d+)\}/health", check)
    assert m, check
    default_command = json.loads(only(stages[-1], "CMD"))[0]
    assert int(m.group(1)) == cli[default_command]
    # The one-liner itself is valid Python.
    code = re.search(r'python -c "(.*)"', check)
    assert code
    compile(code.group(1).replace("${PORT:-8000}", "8000"), "<healthcheck>", "exec")


def test_exposes_the_service_ports(stages, cli) -> None:
    exposed = {int(p.split("/")[0]) for p in only(stages[-1], "EXPOSE").split()}
    assert exposed == {cli[c] for c in SERVICE_COMMANDS}


def _dockerignore() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [x.strip() for x in lines if x.strip() and not x.strip().startswith("#")]


def _ignored(path: str, patterns: list[str]) -> bool:
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        hit = any(
            fnmatch.fnmatch(p, pattern) or fnmatch.fnmatch(p, pattern.removeprefix("**/"))
            for p in prefixes
        )
        if hit:
            ignored = not negate
    return ignored


def test_dockerignore(stages) -> None:
    patterns = _dockerignore()
    for path in (".venv", ".git", "tests", "bench", "node_modules", ".pytest_cache",
                 ".mypy_cache", ".ruff_cache", "shared/__pycache__/x.pyc", ".env"):  # fmt: skip
        assert _ignored(path, patterns), f"{path} would be sent to the build"
    # Everything the builder copies is in the context.
    for stage in stages:
        for ins, args in stage:
            if ins != "COPY" or "--from" in args:
                continue
            *sources, _dest = args.split()
            for source in sources:
                assert (REPO / source).exists(), source
                assert not _ignored(source, patterns), f"{source} is excluded by .dockerignore"


# --------------------------------------------------------------------------------------------
# Commands run by compose and Kubernetes
# --------------------------------------------------------------------------------------------


def _compose_services() -> dict[str, dict[str, Any]]:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]


def _k8s_deployments() -> dict[str, dict[str, Any]]:
    base = REPO / "deploy/k8s/base"
    files = yaml.safe_load((base / "kustomization.yaml").read_text())["resources"]
    out = {}
    for name in files:
        for doc in yaml.safe_load_all((base / name).read_text()):
            if doc and doc["kind"] == "Deployment":
                out[doc["metadata"]["name"]] = doc
    return out


def test_compose_commands_are_cli_subcommands(cli) -> None:
    services = _compose_services()
    seen = set()
    for name, service in services.items():
        if "build" not in service:
            continue
        command = service["command"]
        assert command[0] in cli and cli[command[0]] is not None, f"{name}: {command}"
        seen.add(command[0])
        env = service["environment"]
        assert int(env["PORT"]) == cli[command[0]], f"{name} listens on its default port"
    assert seen == set(SERVICE_COMMANDS)


def test_k8s_commands_are_cli_subcommands(cli) -> None:
    seen = set()
    for name, dep in _k8s_deployments().items():
        (container,) = dep["spec"]["template"]["spec"]["containers"]
        assert "command" not in container, f"{name}: keep the image ENTRYPOINT"
        args = container["args"]
        assert args[0] in cli and cli[args[0]] is not None, f"{name}: {args}"
        seen.add(args[0])
        port = cli[args[0]]
        assert [p["containerPort"] for p in container["ports"]] == [port]
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        assert env["PORT"] == str(port)
        notes = dep["spec"]["template"]["metadata"]["annotations"]
        assert notes["prometheus.io/port"] == str(port)
    assert seen == set(SERVICE_COMMANDS)


def test_dev_overlay_runs_no_other_dronecast_command() -> None:
    for path in (REPO / "deploy/k8s/dev").glob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") in ("Deployment", "StatefulSet"):
                for c in doc["spec"]["template"]["spec"]["containers"]:
                    assert not c["image"].startswith("dronecast"), f"{path.name}: {c['name']}"


# --------------------------------------------------------------------------------------------
# The wheel the image installs
# --------------------------------------------------------------------------------------------


def test_the_wheel_carries_the_dashboard_and_every_asset(tmp_path: Path) -> None:
    """The image installs the wheel, not the sources: the dashboard and the docs pages need
    their static files in it (package data), and nothing of the npm project that vendors them."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(REPO)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("dronecast-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        packed = set(archive.namelist())
    static = REPO / "services/api/web/static"
    wanted = {str(path.relative_to(REPO)) for path in static.rglob("*") if path.is_file()}
    assert wanted, "no static files found"
    assert wanted <= packed, f"missing from the wheel: {sorted(wanted - packed)[:10]}"
    assert not [name for name in packed if "node_modules" in name or name.endswith("vendor.mjs")]
