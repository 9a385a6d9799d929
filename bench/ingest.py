#!/usr/bin/env python3
"""Telemetry ingestion benchmark (issue 14): readings per second through POST
/api/v1/sensors/data, and the delay from a POST to its `telemetry.anomaly` at a Socket.IO client.

Two set-ups, each started fresh by this script (free ports, stopped at the end):
- `dev`:   one `dronecast dev` process (embedded store and broker), pinned to CPU 0;
- `redis`: a redis-server and `dronecast gateway` (CPU 1), `dronecast api` and `dronecast
           worker` (CPU 0) as separate processes, the worker with its own embedded store (no
           MongoDB here).
The load generator runs on CPU 1 (with Redis and the gateway in `redis` mode).

    .venv/bin/python bench/ingest.py throughput --mode dev                     # empty store
    .venv/bin/python bench/ingest.py throughput --mode dev --preload 1000000   # after 1M stored
    .venv/bin/python bench/ingest.py latency --mode dev --rate 5000
    .venv/bin/python bench/ingest.py consumer --preload 1000000                # CPU per reading
    .venv/bin/python bench/ingest.py suite                                     # all of it
    .venv/bin/python bench/run.py ingest                                       # the same suite

Throughput: `--readings` readings in batches of `--batch` from `--concurrency` clients as fast as
they are taken; `accepted_per_s` is what POST took (2xx: durable on the bus), `stored_per_s` is
readings judged and stored per second over the same window until the consumers caught up
(`dronecast_telemetry_stored_total`). The fleet is `--drones` drones x 4 sensors at 1 Hz, so
every reading is new (ids come from sensor and timestamp).

Latency: readings at `--rate` per second in batches of 100 (every 20 ms), after `--warmup`
seconds (the detectors' first readings) with a spike on a random sensor every `--spike-every`
seconds; each spike's alert reaches a python-socketio client
subscribed to all drones, and the delay is its arrival minus the moment its POST was sent.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
VENV_BIN = os.path.join(REPO, ".venv", "bin")
RESULTS = os.path.join(BENCH, "results")
SENSORS = ("battery", "motor_temp", "altitude", "vibration")
ENV = {
    "ENVIRONMENT": "test",
    "AUTH_ENABLED": "false",
    "LOG_LEVEL": "WARNING",
    "REQUESTS_PER_SECOND": "1000000",
    "REQUEST_BURST": "1000000",
    "CONNECTIONS_PER_CLIENT": "1000000",
    "CLIENT_MESSAGES_PER_SECOND": "1000000",
    "CLIENT_MESSAGE_BURST": "1000000",
}


def log(message: str) -> None:
    print(f"[ingest {datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


# --- processes -------------------------------------------------------------------------------


class Process:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], cpu: str) -> None:
        self.name = name
        self.log_path = os.path.join(RESULTS, "logs", f"ingest-{name}.log")
        os.makedirs(os.path.dirname(self.log_path), exist_ok=True)
        self.proc = subprocess.Popen(
            ["taskset", "-c", cpu, *argv],
            env={**os.environ, **env},
            cwd=REPO,
            stdout=open(self.log_path, "wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def cpu_seconds(self) -> float:
        try:
            with open(f"/proc/{self.proc.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            return 0.0


def wait_port(port: int, process: Process, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not port_open(port):
        if process.proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{process.name} did not start; see {process.log_path}")
        time.sleep(0.1)


class Setup:
    """The product as the mode says; `api` is where POSTs go, `metrics` where the worker's
    counters are, `events` the Socket.IO endpoint."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.processes: list[Process] = []

    def __enter__(self) -> Setup:
        dronecast = os.path.join(VENV_BIN, "dronecast")
        if self.mode == "dev":
            port = free_port()
            server = Process("dev", [dronecast, "dev", "--port", str(port)], ENV, "0")
            self.processes.append(server)
            wait_port(port, server)
            self.api = self.metrics = self.events = f"http://127.0.0.1:{port}"
            return self
        redis_port, api_port, worker_port, gateway_port = (free_port() for _ in range(4))
        redis = Process(
            "redis",
            ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"],
            {},
            "1",
        )  # fmt: skip
        self.processes.append(redis)
        wait_port(redis_port, redis)
        env = {**ENV, "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0"}
        for name, port, cpu in (
            ("api", api_port, "0"),
            ("worker", worker_port, "0"),
            ("gateway", gateway_port, "1"),
        ):
            process = Process(name, [dronecast, name, "--host", "127.0.0.1", "--port", str(port)],
                              env, cpu)  # fmt: skip
            self.processes.append(process)
            wait_port(port, process)
        self.api = f"http://127.0.0.1:{api_port}"
        self.metrics = f"http://127.0.0.1:{worker_port}"
        self.events = f"http://127.0.0.1:{gateway_port}"
        return self

    def __exit__(self, *_: object) -> None:
        for process in reversed(self.processes):
            process.stop()

    def server_cpu(self) -> dict[str, float]:
        return {p.name: p.cpu_seconds() for p in self.processes}


async def stored_total(client: httpx.AsyncClient, url: str) -> float:
    text = (await client.get(f"{url}/metrics")).text
    for line in text.splitlines():
        if line.startswith("dronecast_telemetry_stored_total "):
            return float(line.split()[1])
    return 0.0


# --- the fleet ---------------------------------------------------------------------------------


class Fleet:
    """`drones` x 4 sensors at 1 Hz from `start`, handed out in time order."""

    def __init__(self, drones: int, start: datetime, seed: int = 7, first_drone: int = 0) -> None:
        self.drones = drones
        self.first_drone = first_drone  # another number gives sensors nobody has seen
        self.start = start
        self.rng = random.Random(seed)
        self.position = 0  # readings handed out so far
        self._stamps: dict[int, str] = {}
        self._spiked: dict[str, int] = {}  # sensor -> the second of its last spike

    def _stamp(self, second: int) -> str:
        stamp = self._stamps.get(second)
        if stamp is None:
            moment = self.start + timedelta(seconds=second)
            stamp = self._stamps[second] = moment.isoformat(timespec="milliseconds") + "Z"
        return stamp

    def batch(self, size: int, spike: bool = False) -> list[dict[str, Any]]:
        out = []
        per_second = self.drones * len(SENSORS)
        for index in range(self.position, self.position + size):
            second, rest = divmod(index, per_second)
            drone, sensor = divmod(rest, len(SENSORS))
            drone += self.first_drone
            base = 20.0 + 10 * math.sin(second / 300 + drone)
            out.append(
                {
                    "sensor_id": f"{SENSORS[sensor]}-{drone}",
                    "sensor_type": SENSORS[sensor],
                    "value": round(base + self.rng.gauss(0, 0.2), 3),
                    "unit": "u",
                    "drone_serial": f"DRONE{drone:05d}",
                    "timestamp": self._stamp(second),
                }
            )
        if spike:
            # On a sensor that had none in the last minute of its time, so each spike starts an
            # episode of its own (the detector raises one alert per episode).
            second = (self.position + size - 1) // per_second
            fresh = [
                n for n, item in enumerate(out)
                if self._spiked.get(item["sensor_id"], -1e9) < second - 60
            ]  # fmt: skip
            if fresh:
                chosen = out[self.rng.choice(fresh)]
                chosen["value"] += 500.0
                self._spiked[chosen["sensor_id"]] = second
        self.position += size
        return out


# --- throughput --------------------------------------------------------------------------------


async def post_all(
    api: str, fleet: Fleet, total: int, batch: int, concurrency: int
) -> tuple[int, float]:
    """POST `total` readings; returns (accepted, seconds)."""
    accepted = 0
    remaining = total // batch
    started = time.perf_counter()

    async def client_loop(client: httpx.AsyncClient) -> None:
        nonlocal accepted, remaining
        while remaining > 0:
            remaining -= 1
            body = orjson.dumps(fleet.batch(batch))
            response = await client.post(
                "/api/v1/sensors/data", content=body, headers={"content-type": "application/json"}
            )
            if response.status_code != 202:
                raise SystemExit(f"POST answered {response.status_code}: {response.text[:300]}")
            accepted += batch

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=api, timeout=60, limits=limits) as client:
        await asyncio.gather(*(client_loop(client) for _ in range(concurrency)))
    return accepted, time.perf_counter() - started


async def drain(metrics_url: str, target: float, limit_s: float = 600.0) -> float:
    """Wait until the consumers stored `target` readings in all; returns when."""
    deadline = time.perf_counter() + limit_s
    async with httpx.AsyncClient(timeout=30) as client:
        while True:
            if await stored_total(client, metrics_url) >= target:
                return time.perf_counter()
            if time.perf_counter() > deadline:
                raise SystemExit("the consumers did not catch up in time")
            await asyncio.sleep(0.05)


async def throughput_phase(setup: Setup, fleet: Fleet, args: argparse.Namespace, readings: int,
                           label: str) -> dict[str, Any]:  # fmt: skip
    async with httpx.AsyncClient(timeout=30) as client:
        before = await stored_total(client, setup.metrics)
    cpu_before = setup.server_cpu()
    started = time.perf_counter()
    accepted, post_seconds = await post_all(
        setup.api, fleet, readings, args.batch, args.concurrency
    )
    finished = await drain(setup.metrics, before + accepted)
    cpu_after = setup.server_cpu()
    record = {
        "scenario": "throughput",
        "mode": setup.mode,
        "phase": label,
        "stored_before": int(before),
        "readings": accepted,
        "batch": args.batch,
        "concurrency": args.concurrency,
        "accepted_per_s": round(accepted / post_seconds),
        "stored_per_s": round(accepted / (finished - started)),
        "cpu_s": {k: round(cpu_after[k] - cpu_before.get(k, 0), 1) for k in cpu_after},
        "wall_s": round(finished - started, 1),
        "loadavg": os.getloadavg(),
    }
    log(json.dumps(record))
    return record


async def throughput(args: argparse.Namespace, mode: str) -> list[dict[str, Any]]:
    records = []
    with Setup(mode) as setup:
        start = datetime.now(UTC).replace(tzinfo=None, microsecond=0) - timedelta(hours=6)
        fleet = Fleet(args.drones, start)
        records.append(await throughput_phase(setup, fleet, args, args.readings, "empty store"))
        if args.preload:
            log(f"{mode}: storing {args.preload} readings ...")
            await post_all(setup.api, fleet, args.preload, args.batch, args.concurrency)
            async with httpx.AsyncClient(timeout=30) as client:
                await drain(setup.metrics, args.preload + args.readings)
                stored = await stored_total(client, setup.metrics)
            records.append(
                await throughput_phase(setup, fleet, args, args.readings, f"{int(stored)} stored")
            )
            # Like with like: the first phase's sensors were new, their detectors not yet armed
            # (a detector's tests start after 30 to 3,600 readings); these are new too, so only
            # what is stored differs from the first phase.
            fresh = Fleet(args.drones, start, first_drone=args.drones)
            records.append(
                await throughput_phase(
                    setup,
                    fresh,
                    args,
                    args.readings,
                    f"{int(stored) + args.readings} stored, new sensors",
                )
            )
    return records


# --- latency -----------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def subscriber(
    url: str, arrivals: dict[str, float], published: dict[str, float] | None = None
) -> AsyncIterator[None]:
    """Record when each anomaly arrives (perf_counter), and in `published` when the bus took it:
    an event's id is `<ms>-<seq>`, the publishing Redis's (or broker's) clock, this machine's."""
    import socketio

    wall_minus_perf = time.time() - time.perf_counter()

    client = socketio.AsyncClient()

    @client.on("alert:event")
    async def on_alert(event: dict[str, Any]) -> None:
        if event.get("event") == "telemetry.anomaly" and not event["data"].get("resolved"):
            arrivals.setdefault(event["data"]["id"], time.perf_counter())
            if published is not None:
                millis = int(str(event.get("id", "0")).split("-")[0])
                published.setdefault(event["data"]["id"], millis / 1000 - wall_minus_perf)

    subscribed = asyncio.get_running_loop().create_future()

    @client.on("connected")
    async def on_connected(_: Any) -> None:
        await client.emit(
            "subscribe", {"all": True}, callback=lambda ack: subscribed.set_result(ack)
        )

    await client.connect(url, socketio_path="/ws/events", transports=["websocket"])
    await asyncio.wait_for(subscribed, 10)
    try:
        yield
    finally:
        await client.disconnect()


async def latency(args: argparse.Namespace, mode: str) -> dict[str, Any]:
    arrivals: dict[str, float] = {}
    published: dict[str, float] = {}
    sent: dict[str, float] = {}
    with Setup(mode) as setup:
        # Readings of the last minutes, so the detectors warm up on the first seconds.
        start = datetime.now(UTC).replace(tzinfo=None, microsecond=0) - timedelta(hours=1)
        fleet = Fleet(args.drones, start)
        batch = max(1, args.rate // 50)  # a POST every 20 ms
        interval = batch / args.rate
        async with (
            subscriber(setup.events, arrivals, published),
            httpx.AsyncClient(base_url=setup.api, timeout=30) as client,
        ):
            begin = time.perf_counter()
            next_spike = begin + args.warmup
            tasks = []
            sends = 0
            while time.perf_counter() - begin < args.warmup + args.seconds:
                due = begin + sends * interval
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                spike = time.perf_counter() >= next_spike
                if spike:  # jittered, so spikes fall on every part of the fleet
                    next_spike += args.spike_every * (0.5 + random.random())
                tasks.append(
                    asyncio.create_task(post_timed(client, fleet.batch(batch, spike), spike, sent))
                )
                sends += 1
            await asyncio.gather(*tasks)
            await asyncio.sleep(2.0)
    delays = sorted((arrivals[i] - sent[i]) * 1000 for i in sent if i in arrivals)
    lost = sum(1 for i in sent if i not in arrivals)
    record = {
        "scenario": "latency",
        "mode": mode,
        "rate": args.rate,
        "achieved_rate": round(sends * batch / (args.warmup + args.seconds)),
        "spikes": len(sent),
        "alerts_missing": lost,
        "p50_ms": round(statistics.median(delays), 1) if delays else None,
        "p99_ms": round(delays[min(len(delays) - 1, int(len(delays) * 0.99))], 1)
        if delays
        else None,
        "max_ms": round(delays[-1], 1) if delays else None,
        # the two halves: POST to the bus (api, stream, worker judging, outbox), and the bus to
        # the client (the gateway); ms resolution
        "to_bus_p99_ms": percentile(
            [(published[i] - sent[i]) * 1000 for i in sent if i in published], 0.99
        ),
        "bus_to_client_p99_ms": percentile(
            [(arrivals[i] - published[i]) * 1000 for i in sent if i in published], 0.99
        ),
        # when the slowest were sent (seconds into the run) and how long they took: slow ones
        # close together point at a pause of one process, spread out at queueing
        "slowest": sorted(
            (
                (round(sent[i] - begin, 1), round((arrivals[i] - sent[i]) * 1000))
                for i in sent
                if i in arrivals
            ),
            key=lambda pair: -pair[1],
        )[:5],
        "loadavg": os.getloadavg(),
    }
    log(json.dumps(record))
    return record


def percentile(values: list[float], fraction: float) -> float | None:
    ordered = sorted(values)
    return (
        round(ordered[min(len(ordered) - 1, int(len(ordered) * fraction))], 1) if ordered else None
    )


async def post_timed(client: httpx.AsyncClient, body: list[dict[str, Any]], spike: bool,
                     sent: dict[str, float]) -> None:  # fmt: skip
    started = time.perf_counter()
    response = await client.post(
        "/api/v1/sensors/data",
        content=orjson.dumps(body),
        headers={"content-type": "application/json"},
    )
    if response.status_code != 202:
        raise SystemExit(f"POST answered {response.status_code}: {response.text[:300]}")
    if spike:
        [reading] = [
            r for r, item in zip(response.json(), body, strict=True) if item["value"] > 400
        ]
        sent[reading["id"]] = started


# --- consumer cost per reading ----------------------------------------------------------------


async def consumer_cost(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The consumer's own CPU time per reading (judge, store, checkpoint payloads), in this
    process on the embedded store, with an empty store and after `--preload` readings. CPU
    time, not wall time: a shared machine's other work changes it much less."""
    sys.path.insert(0, REPO)
    from shared.broker import MemoryBroker
    from shared.broker.streams import StreamEntry
    from shared.db import connect_database
    from shared.models import TelemetryReading
    from shared.settings import Settings
    from shared.telemetry.pipeline import PartitionProcessor
    from shared.telemetry.repository import telemetry_repository
    from shared.telemetry.service import sensor_key, stable_id, to_millis

    await connect_database(Settings(environment="test", auth_enabled=False))
    broker = MemoryBroker()
    await broker.start()
    processor = PartitionProcessor(broker, telemetry_repository)
    start = datetime.now(UTC).replace(tzinfo=None, microsecond=0) - timedelta(hours=12)
    fleet = Fleet(args.drones, start)

    def entry() -> StreamEntry:
        records = []
        for reading in fleet.batch(args.batch):
            millis = to_millis(datetime.fromisoformat(reading["timestamp"][:-1]))
            key = sensor_key(reading["drone_serial"], reading["sensor_id"])
            records.append(
                {**reading, "id": str(stable_id(millis // 1000, key, str(millis))),
                 "location": None, "metadata": {}, "t": millis, "rt": millis}
            )  # fmt: skip
        return StreamEntry("0-1", orjson.dumps(records))

    async def measure(label: str) -> dict[str, Any]:
        entries = [entry() for _ in range(args.readings // args.batch)]
        began = time.process_time()
        for item in entries:
            await processor.handle([item])
        spent = time.process_time() - began
        stored = await TelemetryReading.get_pymongo_collection().estimated_document_count()
        record = {
            "scenario": "consumer",
            "phase": label,
            "stored_after": stored,
            "readings": len(entries) * args.batch,
            "cpu_us_per_reading": round(spent / (len(entries) * args.batch) * 1e6, 1),
            "loadavg": os.getloadavg(),
        }
        log(json.dumps(record))
        return record

    # Detectors judge nothing in their first readings: warm them up, then empty the store.
    for _ in range(args.drones * len(SENSORS) * 40 // args.batch + 1):
        await processor.handle([entry()])
    await TelemetryReading.get_pymongo_collection().delete_many({})
    records = [await measure("empty store")]
    for _ in range((args.preload or 1_000_000) // args.batch):
        await processor.handle([entry()])
    records.append(await measure("after preload"))
    return records


# --- main ----------------------------------------------------------------------------------------


def save(records: list[dict[str, Any]]) -> None:
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "ingest.jsonl"), "a") as f:
        for record in records:
            f.write(json.dumps(record) + "\n")
    for record in records:
        print(json.dumps(record))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", choices=["throughput", "latency", "consumer", "suite"])
    parser.add_argument("--mode", choices=["dev", "redis"], action="append")
    parser.add_argument("--readings", type=int, default=100_000)
    parser.add_argument("--preload", type=int, default=0, help="readings stored before phase 2")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--drones", type=int, default=250)
    parser.add_argument("--rate", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument(
        "--warmup", type=float, default=10.0, help="seconds of load before spikes count"
    )
    parser.add_argument("--spike-every", type=float, default=0.2)
    args = parser.parse_args(argv)
    modes = args.mode or ["dev", "redis"]
    records: list[dict[str, Any]] = []
    if args.scenario in ("consumer", "suite"):
        records += asyncio.run(consumer_cost(args))
        if args.scenario == "consumer":
            save(records)
            return 0
    for mode in modes:
        if args.scenario in ("throughput", "suite"):
            if args.scenario == "suite":
                args.preload = args.preload or 1_000_000
            records += asyncio.run(throughput(args, mode))
        if args.scenario in ("latency", "suite"):
            records.append(asyncio.run(latency(args, mode)))
    save(records)
    return 0


if __name__ == "__main__":
    sys.exit(main())
