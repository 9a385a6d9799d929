#!/usr/bin/env python3
"""DroneCast gateway benchmark (issue 7): `dronecast gateway` against the Node Socket.IO peer.

Every measurement starts a fresh redis-server (its own port, no persistence) or a fresh Redis
Cluster of 3 masters + 3 replicas (`cluster`, `storm`), the gateway(s) pinned with
`taskset -c 0`, and the load generator (`bench/loadgen/loadgen.js`) pinned with `taskset -c 1`,
then stops everything it started (by PID / own process group). The load generator publishes
and orchestrates; its receiving clients are, by default, the C receiver
(`bench/loadgen/creceiver.c`: every client on one epoll loop, the cheapest per message, so the
server is what saturates). `--client sio` makes them the official socket.io-client instead;
`clients` measures both implementations with both kinds side by side. Events for DroneCast go
through the product's publish path: `shared/broker/publish.lua` with RedisBroker.publish's keys
and arguments (retention stream, ids, snapshot, PUBLISH of the product envelope), or on a
cluster ClusterBroker.publish's; the Node peer gets the harness's raw JSON.
One JSON line per run goes to stdout and to bench/results/<impl>.jsonl.

    .venv/bin/python bench/run.py suite                  # the issue's table, side by side
    .venv/bin/python bench/run.py saturation --rates 100,200,300
    .venv/bin/python bench/run.py latency                # p99 at 10k and 100k deliveries/s
    .venv/bin/python bench/run.py capacity --steps 1000,5000,10000
    .venv/bin/python bench/run.py targeted
    .venv/bin/python bench/run.py patch                  # REST PATCH -> Socket.IO (DroneCast only)
    .venv/bin/python bench/run.py replicas               # 1 vs 2 gateway processes
    .venv/bin/python bench/run.py clients                # socket.io-client vs C receiver, both
    .venv/bin/python bench/run.py cluster                # 2 gateways: cluster 3+3 vs one Redis
    .venv/bin/python bench/run.py storm                  # 5000 clients: SIGKILL a gateway, resume
    .venv/bin/python bench/run.py smoke                  # a few seconds, used by the tests
    .venv/bin/python bench/run.py disconnects|leave      # N clients leaving (bench/drain.py)
    .venv/bin/python bench/run.py anomaly [report ...]   # telemetry detection (bench/anomaly.py)
    .venv/bin/python bench/run.py ingest [suite ...]     # telemetry ingestion (bench/ingest.py)

`--impl dronecast` (default) and/or `--impl node-socketio` (repeatable) choose what is measured;
`suite` runs both unless told otherwise. See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
RESULTS = os.path.join(BENCH, "results")
LOGS = os.path.join(RESULTS, "logs")
LOADGEN = os.path.join(BENCH, "loadgen", "loadgen.js")
CRECEIVER_SRC = os.path.join(BENCH, "loadgen", "creceiver.c")
CRECEIVER = os.path.join(BENCH, "loadgen", "creceiver")
PUBLISH_LUA = os.path.join(REPO, "shared", "broker", "publish.lua")
sys.path.insert(0, REPO)  # the product's token issuer and the tests' Redis Cluster launcher
VENV_BIN = os.path.join(REPO, ".venv", "bin")
SERVER_CPU, CLIENT_CPU = "0", "1"
PATH = "/ws/events"

# Generous limits so the product's per-client protections do not throttle the load generator
# (all its clients come from 127.0.0.1). The delivery guarantees stay on: ids, retention,
# per-client bounded queues (CLIENT_QUEUE_LIMIT keeps the product default).
DRONECAST_ENV = {
    "ENVIRONMENT": "test",
    "AUTH_ENABLED": "false",
    "LOG_LEVEL": "WARNING",
    "CONNECTIONS_PER_CLIENT": "1000000",
    "REQUESTS_PER_SECOND": "1000000",
    "REQUEST_BURST": "1000000",
    "CLIENT_MESSAGES_PER_SECOND": "1000000",
    "CLIENT_MESSAGE_BURST": "1000000",
    "CORS_ORIGINS": '["*"]',
}


@dataclass
class Impl:
    name: str
    cmd: str  # {port} substituted
    publish: str  # raw | lua
    env: dict[str, str] = field(default_factory=dict)
    cwd: str = REPO


def dronecast_impl(extra_env: dict[str, str]) -> Impl:
    return Impl(
        "dronecast",
        f"{VENV_BIN}/dronecast gateway --host 127.0.0.1 --port {{port}}",
        "lua",
        {**DRONECAST_ENV, **extra_env},
    )


def dronecast_tree_impl(a: argparse.Namespace) -> Impl:
    """Another checkout of the product (e.g. `git archive <rev> | tar -x -C DIR`), run with this
    venv, to measure before and after a change side by side."""
    if not a.baseline_tree:
        raise SystemExit("--impl dronecast-tree needs --baseline-tree DIR")
    impl = dronecast_impl(dict(kv.split("=", 1) for kv in a.env))
    impl.name = "dronecast-tree"
    impl.cmd = f"{VENV_BIN}/python -m services.cli gateway --host 127.0.0.1 --port {{port}}"
    impl.cwd = os.path.abspath(a.baseline_tree)
    return impl


IMPLS = {
    "dronecast": lambda a: dronecast_impl(dict(kv.split("=", 1) for kv in a.env)),
    "dronecast-tree": dronecast_tree_impl,
    "node-socketio": lambda a: Impl(
        "node-socketio", f"node {BENCH}/peers/node-socketio/server.js", "raw"
    ),
}


def build_creceiver() -> bool:
    """Compile the C receiving clients (--client c) when missing or stale."""
    if os.path.exists(CRECEIVER) and os.path.getmtime(CRECEIVER) >= os.path.getmtime(CRECEIVER_SRC):
        return True
    cc = subprocess.run(["cc", "-O2", "-o", CRECEIVER, CRECEIVER_SRC], capture_output=True)
    if cc.returncode != 0:
        log(f"cannot build {CRECEIVER_SRC}: {cc.stderr.decode()[:500]}")
    return cc.returncode == 0


def log(msg: str) -> None:
    print(f"[bench {dt.datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


def raise_nofile() -> tuple[int, int]:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for want in (1048576, 262144, 65536, hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(want, hard)))
            break
        except (ValueError, OSError):
            continue
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def git_rev() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", REPO, "status", "--porcelain", "--", "services/gateway", "shared"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        return out + ("+dirty" if dirty else "")
    except OSError:
        return ""


class Redis:
    def __init__(self, port: int, run_id: str) -> None:
        self.port = port
        self.pidfile = f"/tmp/dronecast-bench-redis-{port}.pid"
        self.logfile = os.path.join(LOGS, f"{run_id}-redis.log")
        self.pid: int | None = None

    def start(self) -> Redis:
        if port_open(self.port):
            raise SystemExit(f"port {self.port} in use; not starting Redis")
        if os.path.exists(self.pidfile):
            os.unlink(self.pidfile)
        subprocess.run(
            [
                "taskset",
                "-c",
                CLIENT_CPU,
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "yes",
                "--pidfile",
                self.pidfile,
                "--logfile",
                self.logfile,
            ],
            check=True,
        )
        for _ in range(200):
            if os.path.exists(self.pidfile) and port_open(self.port):
                with open(self.pidfile) as f:
                    self.pid = int(f.read().strip())
                return self
            time.sleep(0.05)
        raise SystemExit("redis did not start")

    @property
    def pids(self) -> list[int]:
        return [self.pid] if self.pid else []

    def stop(self) -> None:
        if not self.pid:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                break
            for _ in range(100):
                try:
                    os.kill(self.pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)
            else:
                continue
            break
        self.pid = None


class ClusterBus:
    """A Redis Cluster of 3 masters and 3 replicas on free ports, pinned beside the loadgen as
    the single Redis is: the tests' launcher (tests/fixtures/redis_cluster.py)."""

    def __init__(self) -> None:
        from tests.fixtures.redis_cluster import RedisCluster

        self.cluster = RedisCluster(launcher=["taskset", "-c", CLIENT_CPU])

    @property
    def url(self) -> str:
        return self.cluster.url

    @property
    def pids(self) -> list[int]:
        return self.cluster.pids

    def start(self) -> ClusterBus:
        self.cluster.start()
        return self

    def stop(self) -> None:
        self.cluster.stop()


class Server:
    """A server process in its own process group, pinned to `cpus`."""

    def __init__(
        self, cmd: str, port: int, env: dict[str, str], cpus: str, log_path: str, cwd: str = REPO
    ) -> None:
        self.cmd = cmd.format(port=port)
        self.cwd = cwd
        self.port = port
        self.env = env
        self.cpus = cpus
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, ready_url: str, timeout: float = 60) -> float:
        if port_open(self.port):
            raise SystemExit(f"port {self.port} in use; not starting server")
        env = dict(os.environ, PORT=str(self.port), HOST="127.0.0.1", **self.env)
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            ["taskset", "-c", self.cpus, "bash", "-c", "exec " + self.cmd],
            cwd=self.cwd,
            env=env,
            stdout=self.logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        t0 = time.time()
        while time.time() - t0 < timeout:
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited (rc={self.proc.returncode}); see {self.log_path}")
            try:
                with urllib.request.urlopen(ready_url, timeout=1) as r:
                    if r.status == 200:
                        return time.time() - t0
            except Exception:
                pass
            time.sleep(0.1)
        self.stop()
        raise SystemExit(f"server not ready after {timeout}s; see {self.log_path}")

    def stop(self) -> None:
        if not self.proc:
            return
        pgid = self.proc.pid
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if self.proc.poll() is not None:
                break
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                continue
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc = None
        self.logf.close()


def cpu_times() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine."""
    with open("/proc/stat") as f:
        parts = [float(x) for x in f.readline().split()[1:]]
    idle = parts[3] + parts[4]
    return sum(parts) - idle, sum(parts)


def machine_busy_pct(seconds: float) -> float:
    b0, t0 = cpu_times()
    time.sleep(seconds)
    b1, t1 = cpu_times()
    return 100.0 * (b1 - b0) / max(1.0, t1 - t0) * (os.cpu_count() or 1)


def wait_until_quiet(max_busy_pct: float, max_wait: float) -> float:
    """Other work on this machine (a test suite) skews every number: wait for a quiet moment.
    Returns the busy CPU% (of one core) seen last, so the record shows what it ran beside."""
    deadline = time.time() + max_wait
    busy = machine_busy_pct(1.0)
    while busy > max_busy_pct and time.time() < deadline:
        log(f"machine busy ({busy:.0f}% of a core outside the bench); waiting")
        busy = machine_busy_pct(2.0)
    return busy


def slow_disconnects(port: int) -> int:
    """dronecast_slow_client_disconnects_total from a gateway's /metrics."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            for line in r.read().decode().splitlines():
                if line.startswith("dronecast_slow_client_disconnects_total "):
                    return int(float(line.split()[1]))
    except Exception:
        pass
    return 0


def eio_ready_url(port: int) -> str:
    return f"http://127.0.0.1:{port}{PATH}/?EIO=4&transport=polling"


HOST_INFO: dict[str, Any] = {}


def host_info() -> dict[str, Any]:
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "node": node,
        "python": platform.python_version(),
    }


def measure(
    args: argparse.Namespace,
    impl: Impl,
    lg_args: list[str],
    tag: str,
    *,
    replicas: int = 1,
    with_api: bool = False,
    loadgen_cpus: str = CLIENT_CPU,
    client: str | None = None,
    cluster: bool = False,
    server_env: dict[str, str] | None = None,
    replica_cpus: list[str] | None = None,
) -> list[dict[str, Any]]:
    """One isolated measurement: fresh Redis (or Redis Cluster), fresh server(s), one loadgen
    run. `server_env` replaces DroneCast's bench settings (e.g. the product's default limits);
    `replica_cpus` pins each replica (default: replica n on CPU n)."""
    run_id = f"{dt.datetime.now():%Y%m%dT%H%M%S}-{impl.name}-{tag}"
    os.makedirs(LOGS, exist_ok=True)
    redis_port = args.redis_port or free_port()
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    redis: Redis | ClusterBus = ClusterBus() if cluster else Redis(redis_port, run_id)
    servers: list[Server] = []
    api: Server | None = None
    lines: list[dict[str, Any]] = []
    busy_before = wait_until_quiet(args.quiet_pct, args.quiet_wait) if args.quiet_pct > 0 else None
    try:
        redis.start()
        if isinstance(redis, ClusterBus):
            redis_url = redis.url
        ports = [args.port + i if args.port else free_port() for i in range(replicas)]
        ready = []
        bus_env = {"REDIS_URL": redis_url, **({"REDIS_CLUSTER": "true"} if cluster else {})}
        for n, port in enumerate(ports):
            # replica n on CPU n: with two replicas on a 2-core machine the second shares CPU 1
            cpus = str(n % (os.cpu_count() or 1)) if replicas > 1 else SERVER_CPU
            if replica_cpus:
                cpus = replica_cpus[n]
            env = {**impl.env, **bus_env} if server_env is None else {**server_env, **bus_env}
            server = Server(
                impl.cmd,
                port,
                env,
                cpus,
                os.path.join(LOGS, f"{run_id}-server{n}.log"),
                impl.cwd,
            )
            servers.append(server)
            ready.append(server.start(eio_ready_url(port)))
        extra: list[str] = []
        if with_api:
            api_port = free_port()
            api = Server(
                f"{VENV_BIN}/dronecast api --host 127.0.0.1 --port {{port}}",
                api_port,
                {**DRONECAST_ENV, "REDIS_URL": redis_url, "MONGODB_URI": ""},
                # beside the gateway: CPU 1 is the loadgen's and Redis's, and the api (with
                # its embedded store) is CPU-heavy; the gateway needs little at 200 events/s
                SERVER_CPU,
                os.path.join(LOGS, f"{run_id}-api.log"),
            )
            api.start(f"http://127.0.0.1:{api_port}/health")
            assert api.proc is not None
            extra += ["--api-url", f"http://127.0.0.1:{api_port}", "--api-pid", str(api.proc.pid)]
        log(f"{impl.name} {tag}: {replicas} server(s) ready in {max(ready):.2f}s")
        pids = ",".join(str(s.proc.pid) for s in servers if s.proc)
        urls = ",".join(f"http://127.0.0.1:{p}" for p in ports)
        cmd = [
            "taskset",
            "-c",
            loadgen_cpus,
            "node",
            "--max-old-space-size=8192",
            "--max-semi-space-size=32",
            *shlex.split(args.loadgen_node_args),
            LOADGEN,
            "--impl",
            impl.name,
            "--url",
            f"http://127.0.0.1:{ports[0]}",
            "--urls",
            urls,
            "--path",
            PATH,
            "--redis-url",
            redis_url,
            "--server-pid",
            pids,
            "--redis-pid",
            ",".join(map(str, redis.pids)),
            "--publish",
            "lua-cluster" if cluster and impl.publish == "lua" else impl.publish,
            "--lua-script",
            PUBLISH_LUA,
            "--client",
            client or args.client,
            "--creceiver",
            CRECEIVER,
            *extra,
            *lg_args,
        ]
        profiler = None
        # py-spy samples the first gateway, or in a storm the survivor (collapsed stacks; see
        # bench/profile_top.py)
        profiled = servers[-1] if "storm" in lg_args else servers[0]
        if args.profile and profiled.proc is not None:
            os.makedirs(args.profile, exist_ok=True)
            profiler = subprocess.Popen(
                [
                    f"{VENV_BIN}/py-spy",
                    "record",
                    "--pid",
                    str(profiled.proc.pid),
                    "--rate",
                    "200",
                    "--nonblocking",
                    "--format",
                    "raw",
                    "-o",
                    os.path.join(args.profile, f"{run_id}.txt"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        c0 = cpu_times()
        with open(os.path.join(LOGS, f"{run_id}-loadgen.log"), "ab") as lgerr:
            p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=lgerr, timeout=args.timeout)
        c1 = cpu_times()
        slow_cut = None
        if impl.name.startswith("dronecast"):
            slow_cut = sum(slow_disconnects(port) for port in ports)
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)
            profiler.wait(timeout=30)
        machine_pct = 100.0 * (c1[0] - c0[0]) / max(1.0, c1[1] - c0[1]) * (os.cpu_count() or 1)
        if p.returncode != 0:
            log(f"loadgen rc={p.returncode}; see {LOGS}/{run_id}-loadgen.log")
        for s in servers[1:] if "--test storm" in " ".join(lg_args) else servers:
            if s.proc is not None and s.proc.poll() is not None:
                log(f"WARNING: a server died during the run (rc={s.proc.returncode})")
        for raw in p.stdout.decode().splitlines():
            raw = raw.strip()
            if raw.startswith("{"):
                rec = json.loads(raw)
                # machine CPU (% of one core) over the whole loadgen run, bench included;
                # compare with server + loadgen + redis to see whether anything else ran
                rec["machine_cpu_pct"] = round(machine_pct, 1)
                # clients the gateway cut off as too slow (its metric), during the whole run
                rec["server_slow_disconnects"] = slow_cut
                rec["busy_before_pct"] = None if busy_before is None else round(busy_before, 1)
                rec.update(
                    {
                        "bus": "cluster 3+3" if cluster else "redis",
                        "replicas": replicas,
                        "run_id": run_id,
                        "rev": git_rev(),
                        "at": dt.datetime.now().isoformat(timespec="seconds"),
                        "host": HOST_INFO,
                    }
                )
                if rec.get("server_cpu_pct"):
                    rec["deliveries_per_server_core_s"] = round(
                        rec.get("deliveries_per_s", 0) / (rec["server_cpu_pct"] / 100), 1
                    )
                lines.append(rec)
    finally:
        if api is not None:
            api.stop()
        for s in servers:
            s.stop()
        redis.stop()
    if lines and not args.no_save:
        os.makedirs(RESULTS, exist_ok=True)
        with open(os.path.join(RESULTS, f"{impl.name}.jsonl"), "a") as f:
            for rec in lines:
                f.write(json.dumps(rec) + "\n")
    for rec in lines:
        print(json.dumps(rec), flush=True)
        log(summarize(rec))
    return lines


def summarize(r: dict[str, Any]) -> str:
    if r.get("test") == "storm":
        return (
            f"{r['impl']} storm on {r['bus']}: {r['resumed']}/{r['storm_clients']} resumed, all "
            f"after {r['all_resumed_s']} s (p50 {r['resume_p50_s']} s), recovered false "
            f"{r['recovered_false']}, lost {r['lost']}, duplicated {r['duplicated']}, survivor p99 "
            f"{r['survivor_p99_ms_during_storm']} ms at {r['survivor_cpu_pct_during_storm']}% CPU"
        )
    if r.get("test") == "capacity":
        return (
            f"{r['impl']} capacity N={r['clients']}: ok {r['connected']}, "
            f"rss {r['server_rss_mb']} MB, {r['rss_per_conn_kb']} KB/conn"
        )
    return (
        f"{r['impl']} {r['test']} {r.get('mode')} N={r['clients']} R={r['rate']}/s "
        f"x{r.get('replicas')}: delivered {r['delivered']}/{r['expected']} lost {r['lost']} "
        f"dup/ooo {r.get('dup_or_ooo')}, {r['deliveries_per_s']} deliv/s, "
        f"p50 {r['p50_ms']} p99 {r['p99_ms']} max {r['max_ms']} ms, "
        f"server cpu {r['server_cpu_pct']}% rss {r['server_rss_mb']} MB, "
        f"loadgen cpu {r['loadgen_cpu_pct']}%{' LOADGEN-BOUND' if r.get('loadgen_bound') else ''}"
        f" redis {r.get('redis_cpu_pct')}% machine {r.get('machine_cpu_pct')}%"
        f"{' SATURATED' if r.get('saturated') else ''}"
    )


def fanout_args(
    mode: str, clients: int, rate: float, duration: float, serials: int = 100
) -> list[str]:
    return [
        "--test",
        "fanout",
        "--mode",
        mode,
        "--clients",
        str(clients),
        "--serials",
        str(serials),
        "--rate",
        str(rate),
        "--duration",
        str(duration),
    ]


def rates(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x]


# --- scenarios -------------------------------------------------------------------------------


def sc_saturation(a: argparse.Namespace, impls: list[Impl]) -> list[dict[str, Any]]:
    """All mode, 1000 clients, rising event rates until saturated; per rate, impls side by side."""
    out: list[dict[str, Any]] = []
    left = {impl.name: a.past_saturation + 1 for impl in impls}  # runs left once saturated
    live = list(impls)
    for rate in rates(a.rates):
        for impl in list(live):
            recs = measure(
                a, impl, fanout_args("all", a.clients, rate, a.duration), f"sat-r{rate:g}"
            )
            out += recs
            if not recs or recs[-1].get("saturated") or left[impl.name] <= a.past_saturation:
                left[impl.name] -= 1
            if left[impl.name] <= 0:
                live.remove(impl)
        if not live:
            break
    return out


def sc_latency(a: argparse.Namespace, impls: list[Impl]) -> list[dict[str, Any]]:
    out = []
    for rate in rates(a.latency_rates):
        for impl in impls:
            out += measure(
                a, impl, fanout_args("all", a.clients, rate, a.duration), f"lat-r{rate:g}"
            )
    return out


def sc_capacity(a: argparse.Namespace, impls: list[Impl]) -> list[dict[str, Any]]:
    out = []
    for impl in impls:
        lg = ["--test", "capacity", "--mode", "all", "--steps", a.steps]
        out += measure(a, impl, lg, "cap", client="tcp" if a.client == "c" else a.client)
    return out


def sc_targeted(a: argparse.Namespace, impls: list[Impl]) -> list[dict[str, Any]]:
    out = []
    for impl in impls:
        out += measure(
            a, impl, fanout_args("targeted", 1000, a.targeted_rate, a.duration, 100), "tgt"
        )
    return out


def sc_patch(a: argparse.Namespace, impls: list[Impl]) -> list[dict[str, Any]]:
    impl = next((i for i in impls if i.name == "dronecast"), None)
    if impl is None:
        log("patch: only DroneCast has the REST api; skipped")
        return []
    lg = [
        "--test",
        "patch",
        "--mode",
        "all",
        "--clients",
        str(a.patch_clients),
        "--serials",
        "100",
        "--rate",
        str(a.patch_rate),
        "--duration",
        str(a.duration),
    ]
    client = "tcp" if a.client == "c" else a.client
    return measure(a, impl, lg, "patch", with_api=True, client=client)


def sc_replicas(a: argparse.Namespace, impls: list[Impl]) -> list[dict[str, Any]]:
    """1 vs 2 gateway processes at the same offered load; compare deliveries/s per server core.
    With 2 replicas on this 2-core machine they take CPU 0 and 1, and the loadgen floats."""
    out = []
    for impl in impls:
        if impl.name != "dronecast":
            continue
        for n in (1, 2):
            lg = fanout_args("all", a.clients, a.replica_rate, a.duration)
            out += measure(
                a, impl, lg, f"replicas{n}", replicas=n, loadgen_cpus="0,1" if n > 1 else CLIENT_CPU
            )
    return out


def sc_slow(a: argparse.Namespace, impls: list[Impl]) -> list[dict[str, Any]]:
    """Fanout under load while some clients stop reading: they must be cut off (bounded queue)
    and the others must lose nothing and keep their latency. C receiver only."""
    out = []
    for impl in impls:
        if impl.name != "dronecast":
            continue
        # 2 KB of padding per event, so the stalled clients outgrow the kernel's socket
        # buffers (several MB on loopback) within the run and reach the gateway's bound
        lg = [
            *fanout_args("all", a.clients, a.slow_rate, a.slow_duration),
            *("--stalled", str(a.stalled), "--pad-bytes", "2000"),
        ]
        out += measure(a, impl, lg, "slow", client="c")
    return out


# The product's own limits, auth on: what a real deployment runs with (no raised limits).
STORM_SECRET = "bench-storm-secret-key-0123456789abcdef"
STORM_ENV = {
    "ENVIRONMENT": "test",
    "AUTH_ENABLED": "true",
    "SECRET_KEY": STORM_SECRET,
    "LOG_LEVEL": "WARNING",
}


def storm_tokens(count: int) -> str:
    """One detector token per client, each its own subject (as each detector pod has), so the
    per-client limits apply as they would to real clients."""
    from shared.auth import Role, issue_token
    from shared.settings import Settings

    settings = Settings(environment="test", secret_key=STORM_SECRET)
    path = os.path.join(LOGS, f"storm-tokens-{count}.txt")
    os.makedirs(LOGS, exist_ok=True)
    with open(path, "w") as f:
        for n in range(count):
            serial = f"SN{n % 100:05d}"
            f.write(issue_token(settings, Role.DETECTOR, f"detector-{n}", [serial], 3600) + "\n")
    return path


def sc_storm(a: argparse.Namespace, impls: list[Impl]) -> list[dict[str, Any]]:
    """5000 clients on one gateway replica, SIGKILL it: they reconnect to the other with
    lastEventId while events keep flowing; on one Redis and on a Redis Cluster. Auth on, the
    product's default limits, one token (subject) per client. The killed replica runs on CPU 1
    beside the load generator and Redis; the survivor has CPU 0 to itself."""
    out: list[dict[str, Any]] = []
    # DroneCast only; with `--impl dronecast-tree --baseline-tree DIR` too, alternating.
    measured = [i for i in impls if i.name.startswith("dronecast")]
    if not measured:
        log("storm: DroneCast only")
        return out
    total = a.storm_clients + a.storm_observers
    tokens = storm_tokens(total)
    for cluster in [bus == "cluster" for bus in a.storm_bus.split(",")]:
        lg = [
            *fanout_args("targeted", total, a.storm_rate, 0, 100),
            *("--test", "storm", "--observers", str(a.storm_observers), "--tokens", tokens),
            *("--warmup", "3", "--after", "3", "--connect-concurrency", "500"),
        ]
        for impl in measured:
            out += measure(
                a,
                impl,
                lg,
                f"storm-{'cluster' if cluster else 'redis'}",
                replicas=2,
                cluster=cluster,
                client="c",
                server_env=STORM_ENV,
                replica_cpus=[CLIENT_CPU, SERVER_CPU],
            )
    storm_table(out)
    return out


def sc_cluster(a: argparse.Namespace, impls: list[Impl]) -> list[dict[str, Any]]:
    """Two gateway replicas, events over 100 drones spread over the 3 shards of a Redis
    Cluster, against one Redis in the same run: all-mode fan-out and per-drone subscribers."""
    out: list[dict[str, Any]] = []
    impl = next((i for i in impls if i.name == "dronecast"), None)
    if impl is None:
        log("cluster: DroneCast only (the Node peer's adapter is for one Redis)")
        return out
    for mode, rate in (("all", a.cluster_rate), ("targeted", a.targeted_rate)):
        for cluster in (False, True):
            out += measure(
                a,
                impl,
                fanout_args(mode, a.clients, rate, a.duration),
                f"{'cluster' if cluster else 'redis'}-{mode}",
                replicas=2,
                cluster=cluster,
                loadgen_cpus="0,1",
            )
    cluster_table(out)
    return out


def sc_clients(a: argparse.Namespace, impls: list[Impl]) -> list[dict[str, Any]]:
    """Both implementations with both kinds of receiving clients, same runs: the official
    socket.io-client (Node, in the load generator) and the C receiver. The official client
    is slow per message, so it lowers every ceiling it meets; the ratio of deliveries per
    server core-second between the implementations is what both kinds must agree on."""
    out: list[dict[str, Any]] = []
    by_name = {impl.name: impl for impl in impls}
    for name in ("node-socketio", "dronecast"):
        if name not in by_name:
            by_name[name] = IMPLS[name](a)
    for rate in rates(a.clients_rates):
        for name in ("node-socketio", "dronecast"):
            for client in ("sio", "c"):
                out += measure(
                    a,
                    by_name[name],
                    fanout_args("all", a.clients, rate, a.duration),
                    f"clients-{client}-r{rate:g}",
                    client=client,
                )
    clients_table(out)
    return out


def _save_table(name: str, text: str) -> None:
    print("\n" + text, file=sys.stderr)
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, f"{name}-{dt.datetime.now():%Y%m%dT%H%M%S}.md"), "w") as f:
        f.write(text + "\n")


def storm_table(recs: list[dict[str, Any]]) -> None:
    rows = [
        f"| {r['impl']} | {r['bus']} | {r['storm_clients']} + {r['observers']} | "
        f"{r['all_resumed_s']} s "
        f"(p50 {r['resume_p50_s']} s) | {r['never_resumed']} | {r['recovered_false']} | "
        f"{r['expected']} | {r['delivered']} | {r['lost']} | {r['duplicated']} | {r['replayed']} | "
        f"{r['survivor_p99_ms_during_storm']} ms | {r['survivor_cpu_pct_during_storm']}% |"
        for r in recs
        if r.get("test") == "storm"
    ]
    _save_table(
        "storm",
        "| impl | bus | clients (moved + already there) | all resumed after the SIGKILL "
        "| never | recovered false | expected | received | lost | duplicated | replayed "
        "| survivor p99 during the storm | survivor CPU during the storm |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows),
    )


def cluster_table(recs: list[dict[str, Any]]) -> None:
    rows = [
        f"| {r['mode']} | {r['bus']} | {r['rate']} ev/s | {r['deliveries_per_s']} | "
        f"{r['p50_ms']} / {r['p99_ms']} ms | {r['lost']} | {r['dup_or_ooo']} | "
        f"{r['server_cpu_pct']}% | {r.get('redis_cpu_pct')}% |"
        for r in recs
        if r.get("test") == "fanout"
    ]
    _save_table(
        "cluster",
        "| subscribers | bus | events | deliveries/s | p50 / p99 | lost | dup/ooo "
        "| 2 gateways CPU | Redis CPU (all nodes) |\n|---|---|---|---|---|---|---|---|---|\n"
        + "\n".join(rows),
    )


def clients_table(recs: list[dict[str, Any]]) -> None:
    rows = []
    per_core: dict[tuple[str, float], dict[str, float]] = {}
    for r in recs:
        if r.get("test") != "fanout":
            continue
        core = r.get("deliveries_per_server_core_s") or 0
        per_core.setdefault((r["client"], r["rate"]), {})[r["impl"]] = core
        rows.append(
            f"| {r['impl']} | {r['client']} | {r['rate']} ev/s | {r['deliveries_per_s']} | "
            f"{r['p99_ms']} ms | {r['lost']} | {r['server_cpu_pct']}% | {core} | "
            f"{r['loadgen_cpu_pct']}%{' (bound)' if r.get('loadgen_bound') else ''} |"
        )
    text = (
        "| implementation | receiving clients | events | deliveries/s | p99 | lost | server CPU "
        "| deliveries per server core-s | load generator CPU |\n"
        "|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n"
    )
    for (client, rate), cores in sorted(per_core.items()):
        if cores.get("dronecast") and cores.get("node-socketio"):
            text += (
                f"\nper-core ratio with {client} clients at {rate:g} ev/s: DroneCast "
                f"{cores['dronecast'] / cores['node-socketio']:.1f}x the Node peer"
            )
    _save_table("clients", text)


def sc_smoke(a: argparse.Namespace, impls: list[Impl]) -> list[dict[str, Any]]:
    out = []
    for impl in impls:
        lg = [*fanout_args("all", 20, 20, 1.5, 10), "--settle-ms", "200", "--drain-idle-ms", "500"]
        out += measure(a, impl, lg, "smoke", client="sio")
    return out


def sc_suite(a: argparse.Namespace, impls: list[Impl]) -> list[dict[str, Any]]:
    out = []
    out += sc_saturation(a, impls)
    out += sc_latency(a, impls)
    out += sc_targeted(a, impls)
    out += sc_capacity(a, impls)
    out += sc_patch(a, impls)
    out += sc_replicas(a, impls)
    if a.client == "c":
        out += sc_slow(a, impls)
    table(out)
    return out


SCENARIOS = {
    "saturation": sc_saturation,
    "latency": sc_latency,
    "capacity": sc_capacity,
    "targeted": sc_targeted,
    "patch": sc_patch,
    "replicas": sc_replicas,
    "slow": sc_slow,
    "clients": sc_clients,
    "cluster": sc_cluster,
    "storm": sc_storm,
    "smoke": sc_smoke,
    "suite": sc_suite,
}


def table(recs: list[dict[str, Any]]) -> None:
    """The issue's table from this run's records (stderr, markdown)."""
    rows = []
    for name in dict.fromkeys(r["impl"] for r in recs):
        mine = [r for r in recs if r["impl"] == name]
        sat = [
            r
            for r in mine
            if r["test"] == "fanout"
            and r["mode"] == "all"
            and r["replicas"] == 1
            and r["lost"] == 0
            and r["rate"] >= 100
        ]
        best = max(sat, key=lambda r: r["deliveries_per_s"], default=None)

        def p99_at(rate: float, mine: list[dict[str, Any]] = mine) -> str:
            hit = [
                r
                for r in mine
                if r["test"] == "fanout"
                and r["mode"] == "all"
                and r["rate"] == rate
                and r["replicas"] == 1
            ]
            return f"{hit[-1]['p99_ms']} ms (lost {hit[-1]['lost']})" if hit else "-"

        cap = [r for r in mine if r["test"] == "capacity" and r["clients"] == 10000]
        tgt = [r for r in mine if r["test"] == "fanout" and r["mode"] == "targeted"]
        sat_cell = f"{best['deliveries_per_s']} (p99 {best['p99_ms']} ms)" if best else "-"
        cap_cell = f"{cap[-1]['rss_per_conn_kb']} KB" if cap else "-"
        tgt_cell = f"{tgt[-1]['p99_ms']} ms" if tgt else "-"
        rows.append(
            f"| {name} | {sat_cell} | {p99_at(10)} | {p99_at(100)} | {cap_cell} | {tgt_cell} |"
        )
    text = (
        "| implementation | deliveries/s at saturation | p99 at 10k/s | p99 at 100k/s "
        "| RSS per idle client at 10k | targeted p99 |\n|---|---|---|---|---|---|\n"
        + "\n".join(rows)
        + "\n"
    )
    for r in recs:
        if r["test"] == "patch":
            text += (
                f"\nREST PATCH -> Socket.IO at {r['patch_actual_rate']} PATCH/s, {r['clients']} "
                f"clients: p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms (HTTP response p50 "
                f"{r['http_p50_ms']} / p99 {r['http_p99_ms']} ms), lost {r['lost']}\n"
            )
    for r in recs:
        if r.get("stalled_clients"):
            text += (
                f"\nSlow consumers: {r['stalled_clients']} of {r['clients']} clients stop reading "
                f"at {r['rate']} events/s: the gateway cut off {r['server_slow_disconnects']}; "
                f"the others lost "
                f"{r['lost']}, dup/ooo {r['dup_or_ooo']}, p99 {r['p99_ms']} ms\n"
            )
    for r in recs:
        if r["test"] == "fanout" and r["run_id"].endswith(("replicas1", "replicas2")):
            text += (
                f"\n{r['replicas']} gateway process(es) at {r['rate']} events/s: "
                f"{r['deliveries_per_s']} deliveries/s, server CPU {r['server_cpu_pct']}%, "
                f"{r.get('deliveries_per_server_core_s')} deliveries per server core-second, "
                f"p99 {r['p99_ms']} ms, lost {r['lost']}"
            )
    print("\n" + text, file=sys.stderr)
    if recs:
        os.makedirs(RESULTS, exist_ok=True)
        with open(os.path.join(RESULTS, f"table-{dt.datetime.now():%Y%m%dT%H%M%S}.md"), "w") as f:
            f.write(text + "\n")


# Telemetry (issue 14) has its own scripts; `run.py anomaly|ingest ...` hands them its arguments.
TELEMETRY_SCRIPTS = {
    "anomaly": ("anomaly.py", "report"),  # detection quality, baselines side by side
    "ingest": ("ingest.py", "suite"),  # readings/s (empty store, 1M stored) and POST -> event p99
}
# So do many clients leaving a gateway at once (bench/drain.py): `run.py disconnects|leave ...`.
DRAIN_SCENARIOS = ("disconnects", "leave")


def main() -> None:
    global HOST_INFO
    if len(sys.argv) > 1 and sys.argv[1] in DRAIN_SCENARIOS:
        script = os.path.join(BENCH, "drain.py")
        raise SystemExit(subprocess.call([sys.executable, script, *sys.argv[1:]], cwd=REPO))
    if len(sys.argv) > 1 and sys.argv[1] in TELEMETRY_SCRIPTS:
        script, default = TELEMETRY_SCRIPTS[sys.argv[1]]
        rest = sys.argv[2:] or [default]
        raise SystemExit(
            subprocess.call([sys.executable, os.path.join(BENCH, script), *rest], cwd=REPO)
        )
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("scenario", choices=sorted(SCENARIOS))
    ap.add_argument(
        "--impl",
        action="append",
        choices=sorted(IMPLS),
        help="what to measure (repeatable); default dronecast, suite: both",
    )
    ap.add_argument("--baseline-tree", help="DIR with another checkout, for --impl dronecast-tree")
    ap.add_argument(
        "--env", action="append", default=[], help="KEY=VALUE for the DroneCast gateway"
    )
    ap.add_argument(
        "--client",
        choices=["c", "tcp", "raw", "sio"],
        default="c",
        help="loadgen clients for fanout runs: c (C epoll receiver, the cheapest), tcp (lean, "
        "bare socket), raw (lean, on `ws`) or sio (the official socket.io-client); capacity and "
        "patch runs use tcp instead of c",
    )
    ap.add_argument("--clients", type=int, default=1000)
    ap.add_argument("--duration", type=float, default=10)
    ap.add_argument("--rates", default="100,200,400,600,900,1200,1600", help="saturation: events/s")
    ap.add_argument(
        "--past-saturation",
        type=int,
        default=1,
        help="saturation: rates still measured after the first saturated one (throughput "
        "under overload)",
    )
    ap.add_argument("--latency-rates", default="10,100", help="events/s (x1000 clients)")
    ap.add_argument("--steps", default="1000,5000,10000", help="capacity steps")
    ap.add_argument("--targeted-rate", type=float, default=1000)
    ap.add_argument("--patch-rate", type=float, default=200)
    ap.add_argument("--patch-clients", type=int, default=100)
    ap.add_argument("--replica-rate", type=float, default=1200, help="replicas: events/s offered")
    ap.add_argument("--slow-rate", type=float, default=200, help="slow: events/s")
    ap.add_argument("--slow-duration", type=float, default=15, help="slow: seconds")
    ap.add_argument("--stalled", type=int, default=5, help="slow: clients that stop reading")
    ap.add_argument("--clients-rates", default="100,400", help="clients: events/s (all mode)")
    ap.add_argument("--cluster-rate", type=float, default=400, help="cluster: all-mode events/s")
    ap.add_argument("--storm-clients", type=int, default=5000, help="storm: clients moved")
    ap.add_argument("--storm-observers", type=int, default=500, help="storm: on the survivor")
    ap.add_argument("--storm-rate", type=float, default=200, help="storm: events/s, 100 drones")
    ap.add_argument("--storm-bus", default="redis,cluster", help="storm: redis and/or cluster")
    ap.add_argument("--port", type=int, default=0, help="gateway port (default: a free one)")
    ap.add_argument("--redis-port", type=int, default=0, help="default: a free one")
    ap.add_argument("--timeout", type=int, default=900, help="seconds per loadgen run")
    ap.add_argument("--loadgen-node-args", default="", help="extra node flags, e.g. --cpu-prof")
    ap.add_argument("--no-save", action="store_true", help="do not append to results/")
    ap.add_argument("--profile", help="DIR: py-spy the (first) DroneCast gateway during each run")
    ap.add_argument(
        "--quiet-pct",
        type=float,
        default=25,
        help="before each run wait until the machine uses less than this %% of a core "
        "(0: do not wait)",
    )
    ap.add_argument("--quiet-wait", type=float, default=300, help="longest wait for quiet, s")
    a = ap.parse_args()
    if a.client == "c" and not build_creceiver():
        log("falling back to --client tcp")
        a.client = "tcp"
    names = a.impl or (["node-socketio", "dronecast"] if a.scenario == "suite" else ["dronecast"])
    impls = [IMPLS[n](a) for n in names]
    log(f"RLIMIT_NOFILE {raise_nofile()}")
    HOST_INFO = host_info()
    SCENARIOS[a.scenario](a, impls)


if __name__ == "__main__":
    main()
