#!/usr/bin/env python3
"""Many Socket.IO clients leaving a gateway at once: the CPU it costs, the stall it causes, and
whether a SIGTERM drain finishes within DRAIN_SECONDS. Before and after side by side: every
measurement runs once with another checkout (`--baseline-tree DIR`, e.g. `git archive main |
tar -x -C DIR`) and once with this one, with this venv, alternating.

    .venv/bin/python bench/drain.py disconnects --baseline-tree DIR   # in-process, N = 1k/5k/10k
    .venv/bin/python bench/drain.py leave --baseline-tree DIR         # real processes: cut, SIGTERM
    .venv/bin/python bench/run.py disconnects|leave ...               # the same

`disconnects`: one process (pinned to CPU 0) builds the gateway (`services.gateway.server.
Gateway` of the tree, on a real Redis pinned to CPU 1), connects N clients through python-
socketio's engine.io handlers (connect, namespace CONNECT, `subscribe`), then all N leave in the
same event-loop tick, as N lost connections do: CPU seconds and wall time until the last
disconnect handler returned. Shapes: `own` (each client watches a drone of its own) and
`shared` (100 drones between them, as in the storm).

`leave`: a real gateway process (`python -m services.cli gateway`, CPU 0) and real WebSocket
clients (this script's client process, CPU 1, engine.io v4 + Socket.IO as socket.io-client
speaks it): N leavers, each subscribed to a drone of its own, and M observers subscribed to one
drone on which the client process publishes (product publish path, RedisBroker) at R events/s.
- `cut`: every leaver's socket is closed at once (a network cut, a load balancer restart).
  Measured: the gateway's CPU seconds and the wall time until its `dronecast_gateway_clients`
  is back to M, and the observers' delivery latency meanwhile (the stall they see).
- `sigterm`: the gateway gets SIGTERM with N + M clients (DRAIN_SECONDS=10). Clients answer
  the close frame as a WebSocket client does. Measured: SIGTERM to process exit, the gateway's
  CPU in between, its exit code, and whether uvicorn had to cancel anything.

One JSON line per measurement on stdout (also appended to bench/results/drain.jsonl).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from typing import Any

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
sys.path.insert(0, BENCH)
import run as bench  # noqa: E402  (bench/run.py: Redis, free ports, machine info)

RESULTS = bench.RESULTS
SHARED_DRONES = 100
OBSERVED = "OBSERVED-1"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg: str) -> None:
    print(f"[drain {dt.datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


def uptime() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def record(rec: dict[str, Any], no_save: bool) -> None:
    rec.update(
        {
            "rev": bench.git_rev(),
            "at": dt.datetime.now().isoformat(timespec="seconds"),
            "load_average": uptime(),
        }
    )
    print(json.dumps(rec), flush=True)
    if not no_save:
        os.makedirs(RESULTS, exist_ok=True)
        with open(os.path.join(RESULTS, "drain.jsonl"), "a") as f:
            f.write(json.dumps(rec) + "\n")


def trees(a: argparse.Namespace) -> list[tuple[str, str]]:
    if not a.baseline_tree:
        return [("after", REPO)]
    return [("before", os.path.abspath(a.baseline_tree)), ("after", REPO)]


def settings_env(redis_url: str, clients: int) -> dict[str, str]:
    # All clients come from 127.0.0.1: the per-client limits would count them as one client.
    return {
        **bench.DRONECAST_ENV,
        "REDIS_URL": redis_url,
        "MONGODB_URI": "",
        "CONNECTIONS_PER_CLIENT": str(clients * 2),
        "DRAIN_SECONDS": "10",
        "LOG_LEVEL": "INFO",  # `gateway_stopped`: the drain finished and the lifespan ended
    }


# --- disconnects: in-process ---------------------------------------------------------------


def micro(a: argparse.Namespace) -> None:
    """Child process: import the gateway of `--tree`, connect N clients, let them all go."""
    sys.path.insert(0, a.tree)
    sys.path.remove(BENCH)
    os.environ.update(settings_env(a.redis_url, a.clients))
    from socketio import async_server

    import services
    from services.gateway.server import Gateway
    from shared.broker import RedisBroker
    from shared.settings import Settings

    if not services.__file__ or not services.__file__.startswith(a.tree):
        raise SystemExit(f"measuring {services.__file__}, not the tree {a.tree}")

    async def main() -> dict[str, Any]:
        settings = Settings()
        broker = RedisBroker(a.redis_url, 60, 1000)
        await broker.start()
        gateway = Gateway(settings, broker)
        await gateway.start()
        sio = gateway.sio
        eio_sids = [f"client-{n}" for n in range(a.clients)]
        environ = {"REMOTE_ADDR": "127.0.0.1", "QUERY_STRING": ""}
        connect_cpu0 = time.process_time()
        for n, eio_sid in enumerate(eio_sids):
            serial = f"L{n}" if a.shape == "own" else f"D{n % SHARED_DRONES}"
            await sio._handle_eio_connect(eio_sid, dict(environ))
            await sio._handle_eio_message(eio_sid, "0")
            await sio._handle_eio_message(
                eio_sid, '2["subscribe",{"droneSerial":"' + serial + '"}]'
            )
        # The subscribe handlers run as tasks (python-socketio keeps them in this set), and
        # each waits for Redis to confirm its PSUBSCRIBE.
        await asyncio.gather(*async_server.task_reference_holder)
        connect_cpu = time.process_time() - connect_cpu0  # the connect path, for comparison
        reason = sio.eio.reason.TRANSPORT_CLOSE
        cpu0, wall0 = time.process_time(), time.perf_counter()
        # Every client gone in the same tick, as N lost connections are.
        leaving = [
            asyncio.create_task(sio._handle_eio_disconnect(eio_sid, reason)) for eio_sid in eio_sids
        ]
        await asyncio.gather(*leaving)
        # After the fix the relay lets their drones go in one pass at the end of the tick.
        releasing = getattr(gateway.relay, "_releasing", None)
        if releasing is not None:
            await releasing
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        left = {
            "clients": len(gateway.hub.clients),
            "rooms": sum(len(rooms) for rooms in sio.manager.rooms.values()),
            "watched": len(gateway.relay._watched_serials),
        }
        await gateway.stop()
        await broker.close()
        return {
            "cpu_s": round(cpu, 3),
            "wall_s": round(wall, 3),
            "connect_cpu_s": round(connect_cpu, 3),
            "left_behind": left,
        }

    print(json.dumps(asyncio.run(main())), flush=True)


def flush(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    client.flushall()
    client.close()


def disconnects(a: argparse.Namespace) -> None:
    run_id = f"{dt.datetime.now():%Y%m%dT%H%M%S}-disconnects"
    os.makedirs(bench.LOGS, exist_ok=True)
    redis = bench.Redis(bench.free_port(), run_id).start()
    url = f"redis://127.0.0.1:{redis.port}/0"
    rows = []
    try:
        for shape in a.shapes.split(","):
            for clients in (int(n) for n in a.sizes.split(",")):
                for label, tree in trees(a):
                    flush(url)
                    cmd = [
                        "taskset", "-c", bench.SERVER_CPU, sys.executable, __file__, "_micro",
                        "--tree", tree, "--clients", str(clients), "--shape", shape,
                        "--redis-url", url,
                    ]  # fmt: skip
                    load = uptime()
                    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
                    if out.returncode != 0:
                        raise SystemExit(f"{label} N={clients}: {out.stderr[-2000:]}")
                    rec = {
                        "test": "disconnects",
                        "code": label,
                        "shape": shape,
                        "clients": clients,
                        "load_before": load,
                        **json.loads(out.stdout.strip().splitlines()[-1]),
                    }
                    record(rec, a.no_save)
                    rows.append(rec)
                    log(f"{label} {shape} N={clients}: {rec['cpu_s']} s CPU, {rec['wall_s']} s")
    finally:
        redis.stop()
    print(
        "\n| shape | clients leaving | before: CPU s | after: CPU s | load average |",
        file=sys.stderr,
    )
    print("|---|---|---|---|---|", file=sys.stderr)
    by = {(r["shape"], r["clients"], r["code"]): r for r in rows}
    for shape, clients in dict.fromkeys((r["shape"], r["clients"]) for r in rows):
        before = by.get((shape, clients, "before"), {}).get("cpu_s", "-")
        after = by[(shape, clients, "after")]
        print(
            f"| {shape} | {clients} | {before} | {after['cpu_s']} | {after['load_before']} |",
            file=sys.stderr,
        )


# --- leave: real processes ----------------------------------------------------------------


def mask_frame(opcode: int, payload: bytes) -> bytes:
    """A client frame (masked with a zero key: the payload goes as it is)."""
    n = len(payload)
    head = bytes((0x80 | opcode,))
    if n < 126:
        head += bytes((0x80 | n,))
    else:
        head += bytes((0x80 | 126,)) + n.to_bytes(2, "big")
    return head + b"\0\0\0\0" + payload


class Client(asyncio.Protocol):
    """One Socket.IO client over WebSocket, as socket.io-client speaks it: the upgrade, engine.io
    OPEN, namespace CONNECT, `subscribe` (with an ack) once `connected` arrives, PING -> PONG,
    and a close frame answered with the same code."""

    def __init__(self, harness: Harness, serial: str, observer: bool) -> None:
        self.harness = harness
        self.serial = serial
        self.observer = observer
        self.transport: Any = None
        self.buf = b""
        self.upgraded = False
        self.subscribed = asyncio.get_running_loop().create_future()
        self.close_code: int | None = None
        self.closed_at: float | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            f"GET /ws/events/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )

    def send_text(self, text: bytes) -> None:
        self.transport.write(mask_frame(0x1, text))

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data
        if not self.upgraded:
            head, sep, buf = buf.partition(b"\r\n\r\n")
            if not sep:
                self.buf = head
                return
            if b" 101 " not in head.split(b"\r\n", 1)[0]:
                self.fail(f"upgrade refused: {head[:80]!r}")
                return
            self.upgraded = True
        pos = 0
        while len(buf) - pos >= 2:
            b0, n = buf[pos], buf[pos + 1] & 0x7F
            start = pos + 2
            if n == 126:
                n, start = int.from_bytes(buf[start : start + 2], "big"), start + 2
            elif n == 127:
                n, start = int.from_bytes(buf[start : start + 8], "big"), start + 8
            if len(buf) < start + n:
                break
            payload, pos = buf[start : start + n], start + n
            self.frame(b0 & 0x0F, payload)
        self.buf = buf[pos:]

    def frame(self, opcode: int, payload: bytes) -> None:
        if opcode == 0x8:
            self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            self.closed_at = time.time()
            self.transport.write(mask_frame(0x8, payload[:2]))
        elif opcode == 0x9:
            self.transport.write(mask_frame(0xA, payload))
        elif opcode == 0x1:
            self.text(payload)

    def text(self, p: bytes) -> None:
        if p.startswith(b'42["drone:event"'):
            if self.observer:
                self.harness.observed(p)
        elif p == b"2":
            self.send_text(b"3")
        elif p.startswith(b"0{"):
            self.send_text(b"40")
        elif p.startswith(b'42["connected"'):
            self.send_text(b'421["subscribe",{"droneSerial":"' + self.serial.encode() + b'"}]')
        elif p.startswith(b"431"):
            if not self.subscribed.done():
                ok = b'"ok":true' in p
                self.subscribed.set_result(ok)

    def fail(self, why: str) -> None:
        if not self.subscribed.done():
            self.subscribed.set_result(False)
        self.harness.failures.append(why)
        self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.subscribed.done():
            self.subscribed.set_result(False)


class Harness:
    """The client process: leavers and observers, and the publisher (same clock)."""

    def __init__(self, a: argparse.Namespace) -> None:
        self.a = a
        self.leavers: list[Client] = []
        self.observers: list[Client] = []
        self.failures: list[str] = []
        self.latencies: list[tuple[float, float]] = []  # (received at, latency ms)
        self.published = 0
        self.connect_cpu = 0.0

    def observed(self, p: bytes) -> None:
        at = p.find(b'"bt":')
        end = p.find(b",", at)
        now = time.time()
        self.latencies.append((now, now * 1000 - float(p[at + 5 : end])))

    async def connect(self, serial: str, observer: bool) -> Client:
        loop = asyncio.get_running_loop()
        _, client = await loop.create_connection(
            lambda: Client(self, serial, observer), "127.0.0.1", self.a.port
        )
        ok = await asyncio.wait_for(client.subscribed, 60)
        if not ok:
            raise SystemExit(f"a client could not subscribe: {self.failures[-1:]}")
        return client

    async def connect_all(self) -> None:
        gate = asyncio.Semaphore(200)

        async def one(serial: str, observer: bool) -> Client:
            async with gate:
                return await self.connect(serial, observer)

        self.observers = list(
            await asyncio.gather(*(one(OBSERVED, True) for _ in range(self.a.observers)))
        )
        self.leavers = list(
            await asyncio.gather(*(one(f"L{n}", False) for n in range(self.a.clients)))
        )

    async def publish(self, stop: asyncio.Event) -> None:
        from shared.broker import RedisBroker
        from shared.events import EventName, PendingEvent

        broker = RedisBroker(self.a.redis_url, 60, 10000)
        await broker.start()
        period = 1 / self.a.rate
        next_at = time.monotonic()
        try:
            while not stop.is_set():
                data = {"bt": time.time() * 1000, "bseq": self.published}
                await broker.publish(PendingEvent(EventName.DRONE_UPDATED, OBSERVED, data))
                self.published += 1
                next_at += period
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        finally:
            await broker.close()

    async def main(self) -> None:
        t0, cpu0 = time.time(), cpu_seconds(self.a.gateway_pid)
        await self.connect_all()
        # the gateway's CPU for the handshakes and subscribes (the path a storm takes)
        self.connect_cpu = round(cpu_seconds(self.a.gateway_pid) - cpu0, 3)
        log(
            f"{len(self.leavers)} leavers and {len(self.observers)} observers subscribed in "
            f"{time.time() - t0:.1f} s"
        )
        stop = asyncio.Event()
        publisher = asyncio.create_task(self.publish(stop))
        loop = asyncio.get_running_loop()
        print("READY", flush=True)
        command = (await loop.run_in_executor(None, sys.stdin.readline)).split()
        result: dict[str, Any] = {}
        if command[0] == "cut":
            result = await self.cut()
        else:  # "report <SIGTERM time>": the gateway was told to stop; say what clients saw
            await asyncio.sleep(0.5)
            term = float(command[1])
            everyone = self.leavers + self.observers
            codes: dict[str, int] = {}
            for client in everyone:
                codes[str(client.close_code)] = codes.get(str(client.close_code), 0) + 1
            closed = [c.closed_at - term for c in everyone if c.closed_at is not None]
            result = {
                "close_codes": codes,
                "last_close_frame_s": round(max(closed), 3) if closed else None,
                **self.latency_between(term, time.time()),
            }
            del result["observer_p99_ms_during"], result["observer_max_ms_during"]
        result["connect_cpu_s"] = self.connect_cpu
        stop.set()
        await publisher
        if command[0] == "cut":  # the observers stayed: each must have had every event
            await asyncio.sleep(0.5)
            result["observer_deliveries"] = len(self.latencies)
            result["observer_expected"] = self.published * len(self.observers)
        print(json.dumps(result), flush=True)

    async def cut(self) -> dict[str, Any]:
        await asyncio.sleep(self.a.warmup)
        pid, want = self.a.gateway_pid, len(self.observers)
        cpu0 = cpu_seconds(pid)
        t0 = time.time()
        for client in self.leavers:
            client.transport.abort()
        seen = -1.0
        while time.time() - t0 < 600:
            seen = await asyncio.get_running_loop().run_in_executor(None, self.connected)
            if seen == want:
                break
            await asyncio.sleep(0.05)
        t1 = time.time()
        cpu = cpu_seconds(pid) - cpu0
        await asyncio.sleep(1.0)  # the observers' latency just after, too
        return {
            "cut_cpu_s": round(cpu, 3),
            "cut_wall_s": round(t1 - t0, 3),
            "connected_after": seen,
            **self.latency_between(t0, t1),
        }

    def connected(self) -> float:
        url = f"http://127.0.0.1:{self.a.port}/metrics"
        with urllib.request.urlopen(url, timeout=600) as r:
            for line in r.read().decode().splitlines():
                if line.startswith("dronecast_gateway_clients "):
                    return float(line.split()[1])
        return -1.0

    def latency_between(self, t0: float, t1: float) -> dict[str, Any]:
        during = sorted(ms for at, ms in self.latencies if t0 <= at <= t1)
        before = sorted(ms for at, ms in self.latencies if at < t0)

        def pct(values: list[float], q: float) -> float | None:
            return round(values[min(len(values) - 1, int(q * len(values)))], 1) if values else None

        return {
            "observer_p50_ms_before": pct(before, 0.5),
            "observer_p99_ms_during": pct(during, 0.99),
            "observer_max_ms_during": pct(during, 1.0),
        }


def clients_process(a: argparse.Namespace) -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    asyncio.run(Harness(a).main())


def start_gateway(
    tree: str, port: int, env: dict[str, str], log_path: str
) -> subprocess.Popen[bytes]:
    cmd = f"exec {sys.executable} -m services.cli gateway --host 127.0.0.1 --port {port}"
    logf = open(log_path, "ab")  # the process keeps it
    proc = subprocess.Popen(
        ["taskset", "-c", bench.SERVER_CPU, "bash", "-c", cmd],
        cwd=tree,
        env={**os.environ, **env},
        stdout=logf,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"gateway exited ({proc.returncode}); see {log_path}")
        try:
            with urllib.request.urlopen(bench.eio_ready_url(port), timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            pass
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    raise SystemExit(f"gateway not ready; see {log_path}")


def leave_once(a: argparse.Namespace, label: str, tree: str, scenario: str, clients: int) -> None:
    run_id = f"{dt.datetime.now():%Y%m%dT%H%M%S}-leave-{scenario}-{label}-{clients}"
    os.makedirs(bench.LOGS, exist_ok=True)
    redis = bench.Redis(bench.free_port(), run_id).start()
    url = f"redis://127.0.0.1:{redis.port}/0"
    port = bench.free_port()
    log_path = os.path.join(bench.LOGS, f"{run_id}-gateway.log")
    proc = start_gateway(tree, port, settings_env(url, clients), log_path)
    harness = profiler = None
    try:
        harness = subprocess.Popen(
            [
                "taskset",
                "-c",
                bench.CLIENT_CPU,
                sys.executable,
                __file__,
                "_clients",
                "--port",
                str(port),
                "--redis-url",
                url,
                "--clients",
                str(clients),
                "--observers",
                str(a.observers),
                "--rate",
                str(a.rate),
                "--warmup",
                str(a.warmup),
                "--gateway-pid",
                str(proc.pid),
            ],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert harness.stdin is not None and harness.stdout is not None
        if harness.stdout.readline().strip() != "READY":
            raise SystemExit("the client process did not get ready")
        if a.profile:  # py-spy on the gateway from here on (bench/profile_top.py reads it)
            os.makedirs(a.profile, exist_ok=True)
            profiler = subprocess.Popen(
                [
                    *(os.path.join(bench.VENV_BIN, "py-spy"), "record", "--pid", str(proc.pid)),
                    *("--rate", "200", "--nonblocking", "--format", "raw"),
                    *("-o", os.path.join(a.profile, f"{run_id}.txt")),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(1)
        load = uptime()
        rec: dict[str, Any] = {
            "test": f"leave-{scenario}",
            "code": label,
            "clients": clients,
            "observers": a.observers,
            "rate": a.rate,
            "load_before": load,
        }
        if scenario == "cut":
            harness.stdin.write("cut\n")
            harness.stdin.flush()
        else:
            time.sleep(a.warmup)
            cpu0 = cpu_seconds(proc.pid)
            term = time.time()
            os.kill(proc.pid, signal.SIGTERM)
            _, status, usage = os.wait4(proc.pid, 0)
            exited = time.time()
            proc.returncode = os.waitstatus_to_exitcode(status)
            with open(log_path, errors="replace") as f:
                text = f.read()
            rec.update(
                {
                    "drain_s": round(exited - term, 3),
                    "drain_cpu_s": round(usage.ru_utime + usage.ru_stime - cpu0, 3),
                    "exit_code": proc.returncode,
                    "cancelled_by_drain_timeout": "timeout graceful shutdown exceeded" in text,
                    "stopped_cleanly": "gateway_stopped" in text,
                    "within_drain_seconds": exited - term <= 10,
                }
            )
            harness.stdin.write(f"report {term}\n")
            harness.stdin.flush()
        out = harness.stdout.readline()
        harness.wait(timeout=60)
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)
            profiler.wait(timeout=60)
        rec.update(json.loads(out))
        record(rec, a.no_save)
        log(json.dumps(rec))
    finally:
        for child in (harness, profiler):
            if child is not None and child.poll() is None:
                child.kill()
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        redis.stop()


def leave(a: argparse.Namespace) -> None:
    bench.raise_nofile()
    for clients in (int(n) for n in a.sizes.split(",")):
        for scenario in a.scenarios.split(","):
            for label, tree in trees(a):
                leave_once(a, label, tree, scenario, clients)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("command", choices=["disconnects", "leave", "_micro", "_clients"])
    ap.add_argument("--baseline-tree", help="DIR: another checkout, measured beside this one")
    ap.add_argument(
        "--sizes", help="clients leaving (default: disconnects 1000,5000,10000; leave 5000,10000)"
    )
    ap.add_argument("--shapes", default="own,shared", help="disconnects: own and/or shared")
    ap.add_argument("--scenarios", default="cut,sigterm", help="leave: cut and/or sigterm")
    ap.add_argument("--observers", type=int, default=50, help="leave: clients that stay")
    ap.add_argument("--rate", type=float, default=50, help="leave: events/s to the observers")
    ap.add_argument("--warmup", type=float, default=2, help="leave: seconds before the cut")
    ap.add_argument("--no-save", action="store_true", help="do not append to results/")
    ap.add_argument("--profile", help="leave: DIR for a py-spy profile of each gateway")
    # the child processes' own arguments
    ap.add_argument("--tree", default=REPO)
    ap.add_argument("--clients", type=int, default=1000)
    ap.add_argument("--shape", default="own")
    ap.add_argument("--redis-url", default="")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--gateway-pid", type=int, default=0)
    a = ap.parse_args()
    if a.command == "_micro":
        micro(a)
    elif a.command == "_clients":
        clients_process(a)
    else:
        a.sizes = a.sizes or ("1000,5000,10000" if a.command == "disconnects" else "5000,10000")
        log(f"load average before: {uptime()}")
        disconnects(a) if a.command == "disconnects" else leave(a)
        log(f"load average after: {uptime()}")


if __name__ == "__main__":
    main()
