#!/usr/bin/env python3
"""Soak: `dronecast simulate` drives the product as separate processes on a real Redis, while
Socket.IO clients (the Python client) listen on two gateways; then every event is accounted for.

    .venv/bin/python bench/soak.py                                  # 20 drones, 10 minutes
    .venv/bin/python bench/soak.py --drones 50 --duration 1800 --activity 2
    .venv/bin/python bench/soak.py --drones 20 --duration 55 --json   # what the e2e test runs

Processes: one redis-server (its own port, no persistence), two `dronecast gateway`, and the api
with the worker: `dronecast api` + `dronecast worker` when MONGODB_URI names a real MongoDB,
otherwise `dronecast dev` with REDIS_URL (the in-process store cannot be shared by two
processes). Listeners: on each gateway one client subscribed to all drones and one to three
drones. The record of what was published is Redis's retention stream (`dronecast:events`).

The report (one JSON object; `--json` prints only that) says, per listener, how many events it
should have had, how many it missed, got twice or out of order for their drone, and the delay
from each event's timestamp to its arrival (p50/p99/max); how many tasks and alerts did not
finish; the lines the processes logged at error level; their memory at the end; the
simulator's own counts; and the machine's load. Exit status 0 when nothing was lost,
duplicated, reordered or left unfinished and no process logged an error.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio as aioredis
from dronecast_client import AsyncClient, AsyncEventsClient, Event

REPO = Path(__file__).resolve().parents[1]
DRONECAST = [sys.executable, "-m", "services.cli"]
EVENT_STREAM = "dronecast:events"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def id_key(event_id: str) -> tuple[int, int]:
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq)


@dataclass
class Process:
    name: str
    command: list[str]
    env: dict[str, str]
    port: int
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("wb") as out:
            self.popen = subprocess.Popen(
                self.command, env=self.env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen is not None and self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.log.read_text()[-3000:]}")
            try:
                if (
                    self.name == "redis"
                    or httpx.get(f"{self.url}/ready", timeout=1).status_code == 200
                ):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready:\n{self.log.read_text()[-3000:]}")

    def rss_mb(self) -> float | None:
        if self.popen is None:
            return None
        try:
            for line in Path(f"/proc/{self.popen.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024, 1)
        except OSError:
            return None
        return None

    def stop(self) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(5)

    def error_lines(self) -> list[str]:
        lines = []
        for line in self.log.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                if line.startswith(("Traceback", "ERROR")):
                    lines.append(line)
                continue
            if isinstance(entry, dict) and entry.get("level") in ("error", "critical"):
                lines.append(line[:500])
        return lines


@dataclass
class Listener:
    name: str
    client: AsyncEventsClient
    serials: set[str] | None  # None: all
    events: list[tuple[Event, float]] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)

    async def collect(self) -> None:
        async for item in self.client:
            if isinstance(item, Event):
                self.events.append((item, time.time()))
            else:
                self.notices.append(type(item).__name__)

    def report(self, record: list[tuple[str, str]]) -> dict[str, Any]:
        wanted = [i for i, serial in record if self.serials is None or serial in self.serials]
        got = [event.id for event, _ in self.events]
        by_drone: dict[str, list[str]] = defaultdict(list)
        for event, _ in self.events:
            by_drone[event.serial or ""].append(event.id)
        out_of_order = sum(
            1
            for ids in by_drone.values()
            for before, after in itertools.pairwise(ids)
            if id_key(after) <= id_key(before)
        )
        delays = sorted(
            max(0.0, received - datetime.fromisoformat(event.timestamp).timestamp())
            for event, received in self.events
        )

        def pick(q: float) -> float | None:
            return (
                round(delays[min(len(delays) - 1, int(q * len(delays)))] * 1000, 1)
                if delays
                else None
            )

        return {
            "listener": self.name,
            "expected": len(wanted),
            "received": len(got),
            "missing": len(set(wanted) - set(got)),
            "duplicates": len(got) - len(set(got)),
            "unexpected": len(set(got) - set(wanted)),
            "out_of_order": out_of_order,
            "delay_ms": {"p50": pick(0.5), "p99": pick(0.99), "max": pick(1.0)},
            "notices": self.notices,
        }


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="dronecast-soak-"))
    redis_port = free_port()
    redis_bin = shutil.which("redis-server")
    if redis_bin is None:
        raise SystemExit("redis-server is not installed")
    processes = [
        Process(
            "redis",
            [redis_bin, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(workdir), "--loglevel", "warning"],
            dict(os.environ), redis_port, workdir / "redis.log",
        )
    ]  # fmt: skip
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "DATABASE_NAME": f"dronecast_soak_{uuid.uuid4().hex[:8]}",
        "ENVIRONMENT": "test",
        "AUTH_ENABLED": "false",
        "HOST": "127.0.0.1",
        # The retention stream is the record of what was published: keep all of the run.
        "RETENTION_SECONDS": str(int(args.duration) + 600),
        "PRESENCE_GRACE_SECONDS": "0.5",
        "PRESENCE_CHECK_INTERVAL": "0.2",
    }

    def service(name: str, command: str) -> Process:
        port = free_port()
        return Process(
            name, [*DRONECAST, command], {**env, "PORT": str(port)}, port, workdir / f"{name}.log"
        )

    if env.get("MONGODB_URI"):
        core = [service("api", "api"), service("worker", "worker")]
    else:
        core = [service("api", "dev")]  # api + worker in one process, on the same Redis
    gateways = [service("gateway-1", "gateway"), service("gateway-2", "gateway")]
    processes += core + gateways
    started = time.monotonic()
    listeners: list[Listener] = []
    try:
        for process in processes:
            process.start()
        for process in processes:
            await asyncio.to_thread(process.wait_ready)
        watched = {f"SIM{args.seed}-{n:03d}" for n in (2, 7, 19) if n <= args.drones}
        for gateway in gateways:
            for scope in ("all", "watched"):
                client = await AsyncEventsClient(gateway.url).connect()
                if scope == "all":
                    await client.subscribe(all=True)
                else:
                    await client.subscribe(serials=sorted(watched))
                listeners.append(
                    Listener(f"{gateway.name}/{scope}", client, None if scope == "all" else watched)
                )
        collectors = [asyncio.create_task(listener.collect()) for listener in listeners]
        ready_at = time.monotonic()
        simulate = await asyncio.create_subprocess_exec(
            *DRONECAST, "simulate", "--api", core[0].url, "--drones", str(args.drones),
            "--duration", str(args.duration), "--seed", str(args.seed),
            "--activity", str(args.activity), "--drain", "15", "--json",
            cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        stdout, stderr = await simulate.communicate()
        simulated_in = time.monotonic() - ready_at
        progress = stderr.decode().strip().splitlines()  # a line every 10 s
        (workdir / "simulate.log").write_text("\n".join(progress))
        if not args.json:
            print("\n".join(progress[-3:]), file=sys.stderr)
        summary = json.loads(stdout) if simulate.returncode == 0 else {"counters": {}}
        client = aioredis.from_url(redis_url)
        deadline = time.monotonic() + 20
        while True:  # until the last events (drones going offline) have arrived
            record = [
                (i.decode(), f[b"s"].decode())
                for i, f in await client.xrange(EVENT_STREAM, "-", "+")
            ]
            caught_up = all(
                len(each.events) >= len(record) for each in listeners if each.serials is None
            )
            if caught_up or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        await asyncio.sleep(1.0)
        record = [
            (i.decode(), f[b"s"].decode()) for i, f in await client.xrange(EVENT_STREAM, "-", "+")
        ]
        await client.aclose()
        for collector in collectors:
            collector.cancel()
        tasks: list[Any] = []
        alerts: list[Any] = []
        readings: int | None = None
        unanswered = None
        try:  # an overloaded api may not answer: that is a finding, not a crash
            async with AsyncClient(core[0].url, timeout=180) as api:
                tasks = (await api.list_tasks(limit=500)).items
                alerts = (await api.list_alerts(limit=500)).items
                readings = (await api.list_readings(limit=1)).total
        except Exception as exc:
            unanswered = f"{type(exc).__name__}: {exc}"
        rss = {p.name: p.rss_mb() for p in processes}
        errors = {p.name: p.error_lines()[:5] for p in processes if p.name != "redis"}
    finally:
        for listener in listeners:
            await listener.client.close()
        for process in reversed(processes):
            process.stop()
    return {
        "drones": args.drones,
        "duration_s": args.duration,
        "seed": args.seed,
        "activity": args.activity,
        "mongodb": "real" if env.get("MONGODB_URI") else "in-process (dronecast dev)",
        "simulate_exit": simulate.returncode,
        "simulated_in_s": round(simulated_in, 1),
        "wall_s": round(time.monotonic() - started, 1),
        "events": len(record),
        "listeners": [listener.report(record) for listener in listeners],
        "tasks": len(tasks),
        "unfinished_tasks": [t.task_id for t in tasks if not t.final],
        "api_unanswered": unanswered,
        "progress": progress[-8:],
        "logs": str(workdir),
        "alerts": len(alerts),
        "unfinished_alerts": [a.alert_id for a in alerts if a.status != "completed"],
        "readings": readings,
        "simulator": summary.get("counters", {}),
        "simulator_tasks": summary.get("tasks", []),
        "error_lines": errors,
        "rss_mb": rss,
        "load_average": os.getloadavg(),
    }


def verdict(report: dict[str, Any]) -> list[str]:
    """What went wrong, if anything."""
    problems = []
    for listener in report["listeners"]:
        for key in ("missing", "duplicates", "unexpected", "out_of_order"):
            if listener[key]:
                problems.append(f"{listener['listener']}: {key} {listener[key]}")
    if report["simulate_exit"] != 0:
        problems.append(f"simulate exited {report['simulate_exit']}")
    if report["api_unanswered"]:
        problems.append(f"the api did not answer: {report['api_unanswered']}")
    if report["unfinished_tasks"] or report["unfinished_alerts"]:
        problems.append("unfinished tasks or alerts")
    if any(report["error_lines"].values()):
        problems.append("a process logged errors")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--drones", type=int, default=20)
    parser.add_argument("--duration", type=float, default=600)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--activity", type=float, default=1.0)
    parser.add_argument("--json", action="store_true", help="print only the JSON report")
    args = parser.parse_args()
    report = asyncio.run(soak(args))
    problems = verdict(report)
    if args.json:
        print(json.dumps(report))
    else:
        print(json.dumps({k: v for k, v in report.items() if k != "simulator_tasks"}, indent=2))
        print("OK" if not problems else "PROBLEMS: " + "; ".join(problems))
    raise SystemExit(1 if problems else 0)


if __name__ == "__main__":
    main()
