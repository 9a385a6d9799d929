#!/usr/bin/env python3
"""The operations dashboard under load, in Debian's chromium: is it smooth with 200 drones and
100 events/s, and how much headroom is left?

It starts a redis-server (own port), `dronecast api` (embedded store) and `dronecast gateway`
as separate processes, registers the drones over REST, opens the dashboard in headless chromium
(Playwright driving /usr/bin/chromium), then, side by side in one run:

    idle     no events: the floor (what the page costs doing nothing)
    load     --rate events/s (default 100)
    stress   --stress events/s (default 300)

Events go through the product's publish path (RedisBroker.publish: publish.lua, ids,
retention, PUBLISH) and reach the page over Socket.IO like any other: drone updates and
presence, alerts through their lifecycle, tasks across the board, telemetry anomalies.

For each phase, measured in the page: frame intervals (requestAnimationFrame) p50/p95/p99/max,
frames over 50 ms, long tasks (PerformanceObserver 'longtask'), main-thread time by kind
(CDP Performance metrics: script, layout, style), event -> DOM latency (publish time to the
event's row in the log, one clock), rows of the drone table replaced (should be none: rows are
updated in place), DOM nodes and JS heap after a garbage collection (bounded memory). One JSON
line per phase on stdout and in bench/results/dashboard.jsonl.

    flock /tmp/dronecast-bench.lock .venv/bin/python bench/dashboard.py
    .venv/bin/python bench/dashboard.py --drones 20 --seconds 2 --stress 40   # smoke
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
sys.path.insert(0, REPO)

from playwright.async_api import Page, async_playwright  # noqa: E402

from shared.broker import RedisBroker  # noqa: E402
from shared.events import EventName, PendingEvent, format_timestamp  # noqa: E402
from tests.fixtures.browser import CHROMIUM  # noqa: E402
from tests.fixtures.browser import CHROMIUM_ARGS as TEST_CHROMIUM_ARGS  # noqa: E402

RESULTS = os.path.join(BENCH, "results")
# What --trace records: the renderer's main thread, phase by phase (open it in chrome://tracing).
TRACE = ["devtools.timeline", "disabled-by-default-devtools.timeline", "blink", "cc", "viz"]
# The same browser and flags as the browser tests, plus exact heap sizes.
CHROMIUM_ARGS = [*TEST_CHROMIUM_ARGS, "--enable-precise-memory-info"]
SERVICE_ENV = {
    "ENVIRONMENT": "test",
    "AUTH_ENABLED": "false",
    "LOG_LEVEL": "WARNING",
    "REQUESTS_PER_SECOND": "100000",
    "REQUEST_BURST": "100000",
}

# In the page, before any of its own code: frame times, long tasks, event -> DOM times, and the
# drone table's replaced rows.
PROBE = """
window.__bench = { frames: [], longTasks: [], shownAt: new Map(), rowsAdded: 0 };
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) window.__bench.longTasks.push(entry.duration);
}).observe({ type: "longtask", buffered: true });
(function tick(last) {
  requestAnimationFrame((now) => { window.__bench.frames.push(now - last); tick(now); });
})(performance.now());
document.addEventListener("DOMContentLoaded", () => {
  const epoch = () => performance.timeOrigin + performance.now();
  new MutationObserver((records) => {
    const at = epoch();
    for (const record of records) for (const node of record.addedNodes) {
      const id = node.dataset && node.dataset.eventId;
      if (id) window.__bench.shownAt.set(id, at);
    }
  }).observe(document.getElementById("event-log"), { childList: true });
  new MutationObserver((records) => {
    for (const record of records) window.__bench.rowsAdded += record.addedNodes.length;
  }).observe(document.querySelector("#drone-table tbody"), { childList: true });
});
"""

RESET = """() => {
  __bench.frames = []; __bench.longTasks = []; __bench.shownAt.clear(); __bench.rowsAdded = 0;
}"""
COLLECT = """() => ({
  frames: __bench.frames,
  longTasks: __bench.longTasks,
  shownAt: Object.fromEntries(__bench.shownAt),
  rowsAdded: __bench.rowsAdded,
  domNodes: document.getElementsByTagName("*").length,
  heapMb: performance.memory ? performance.memory.usedJSHeapSize / 1048576 : null,
  received: Number(document.querySelector("#log-title .count").textContent.split(" ")[0]) || 0,
})"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def now_iso() -> str:
    return format_timestamp(datetime.now(UTC))


def loadavg() -> list[float]:
    with open("/proc/loadavg") as handle:
        return [float(part) for part in handle.read().split()[:3]]


@dataclass
class Processes:
    """What this run started; stopped by process group at the end, nothing else."""

    started: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            args,
            cwd=REPO,
            env={**os.environ, **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.started.append(process)
        return process

    def stop(self) -> None:
        for process in reversed(self.started):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.started:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def wait_ready(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/ready", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not become ready")


def register_drones(api: str, count: int) -> list[dict[str, Any]]:
    drones = []
    for n in range(count):
        body = json.dumps(
            {
                "deviceSerialNumber": f"BENCH-{n:04d}",
                "deviceName": f"Drone {n}",
                "deviceCategory": random.choice(["Surveillance", "Mapping", "Delivery"]),
                "detectionClasses": [0, 1],
            }
        ).encode()
        request = urllib.request.Request(
            f"{api}/api/v1/drones/register",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            drones.append(json.loads(response.read()))
    return drones


class Fleet:
    """Events as the product publishes them, for a fleet that keeps changing."""

    def __init__(self, drones: list[dict[str, Any]], seed: int) -> None:
        self.random = random.Random(seed)
        self.drones = {drone["deviceSerialNumber"]: dict(drone) for drone in drones}
        self.serials = list(self.drones)
        self.alerts: list[dict[str, Any]] = []
        self.tasks: list[dict[str, Any]] = []
        self.ids = itertools.count()

    def next_event(self) -> PendingEvent:
        roll = self.random.random()
        if roll < 0.55:
            return self.drone_update()
        if roll < 0.65:
            return self.presence()
        if roll < 0.80:
            return self.alert()
        if roll < 0.95:
            return self.task()
        return self.anomaly()

    def drone_update(self) -> PendingEvent:
        serial = self.random.choice(self.serials)
        drone = self.drones[serial]
        field_name = self.random.choice(["streamIsOn", "aiDetectionEnabled", "detectionClasses"])
        old = drone[field_name]
        new: Any = (
            not old
            if isinstance(old, bool)
            else sorted(self.random.sample(range(10), self.random.randint(1, 4)))
        )
        drone[field_name] = new
        drone["updatedAt"] = now_iso()
        return PendingEvent(
            EventName.DRONE_UPDATED,
            serial,
            {"full": dict(drone), "changes": {field_name: {"old": old, "new": new}}},
            snapshot=dict(drone),
        )

    def presence(self) -> PendingEvent:
        serial = self.random.choice(self.serials)
        drone = self.drones[serial]
        drone["online"] = not drone["online"]
        drone["lastSeenAt"] = now_iso()
        name = EventName.DRONE_ONLINE if drone["online"] else EventName.DRONE_OFFLINE
        return PendingEvent(
            name,
            serial,
            {
                "online": drone["online"],
                "reason": "connected" if drone["online"] else "closed",
                "lastSeenAt": drone["lastSeenAt"],
            },
        )

    def alert(self) -> PendingEvent:
        open_alerts = [alert for alert in self.alerts if alert["status"] != "completed"]
        if open_alerts and self.random.random() < 0.6:
            alert = self.random.choice(open_alerts)
            if alert["status"] == "pending":
                alert.update(status="responded", response=1, actions=["hover", "take_photo"])
                name = EventName.ALERT_RESPONDED
            else:
                alert.update(status="completed", image_received=1, image_url="/static/x.jpg")
                name = EventName.ALERT_COMPLETED
        else:
            score = round(self.random.random(), 2)
            alert = {
                "alert_id": f"alert_bench_{next(self.ids)}",
                "alert_type": self.random.choice(["intrusion", "fire", "accident", "other"]),
                "score": score,
                "image_url": None,
                "location": {"lat": 48.85, "lng": 2.35},
                "drone_id": self.random.choice(self.serials),
                "timestamp": now_iso(),
                "response": 0,
                "image_received": 0,
                "actions": [],
                "status": "pending",
                "description": "bench",
                "severity": "critical" if score >= 0.9 else "high" if score >= 0.7 else "medium",
            }
            self.alerts = [*self.alerts[-300:], alert]
            name = EventName.ALERT_CREATED
        return PendingEvent(name, alert["drone_id"], {"full": dict(alert)})

    def task(self) -> PendingEvent:
        moving = [task for task in self.tasks if task["status"] not in ("completed", "failed")]
        if moving and self.random.random() < 0.7:
            task = self.random.choice(moving)
            task["updated_at"] = now_iso()
            if task["status"] == "pending":
                task["status"] = "dispatched"
                name = EventName.TASK_DISPATCHED
            elif task["status"] == "dispatched":
                task["status"] = "processing"
                name = EventName.TASK_STATUS
            elif self.random.random() < 0.8:
                task["status"] = "completed"
                name = EventName.TASK_COMPLETED
            else:
                task.update(status="failed", error_message="camera obstructed")
                name = EventName.TASK_FAILED
        else:
            task = {
                "task_id": f"task_bench_{next(self.ids)}",
                "app_id": "bench",
                "drone_id": self.random.choice(self.serials),
                "task_type": self.random.choice(["detect", "map", "scan"]),
                "input_data": {},
                "status": "pending",
                "priority": self.random.randint(1, 5),
                "created_at": now_iso(),
                "updated_at": now_iso(),
                "error_message": None,
                "attempts": 0,
            }
            self.tasks = [*self.tasks[-300:], task]
            name = EventName.TASK_CREATED
        return PendingEvent(name, task["drone_id"], {"task": dict(task)})

    def anomaly(self) -> PendingEvent:
        serial = self.random.choice(self.serials)
        value = round(80 + self.random.random() * 20, 1)
        return PendingEvent(
            EventName.TELEMETRY_ANOMALY,
            serial,
            {
                "id": f"reading_bench_{next(self.ids)}",
                "sensor_id": f"temp-{serial}",
                "severity": "high",
                "message": f"temperature {value} celsius is far from its history",
                "timestamp": now_iso(),
                "resolved": False,
                "resolved_at": None,
                "value": value,
                "unit": "celsius",
                "anomaly_score": 6.2,
                "sensor_type": "temperature",
                "location": None,
                "drone_serial": serial,
            },
        )


async def publish_for(
    broker: RedisBroker, fleet: Fleet, rate: float, seconds: float
) -> dict[str, float]:
    """`rate` events/s for `seconds`, on a schedule (no drift); publish time by event id."""
    published: dict[str, float] = {}
    if rate <= 0:
        await asyncio.sleep(seconds)
        return published
    interval = 1 / rate
    start = time.monotonic()
    for n in itertools.count():
        due = start + n * interval
        if due - start >= seconds:
            break
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        sent = await broker.publish(fleet.next_event())
        published[sent.id] = time.time() * 1000
    return published


async def main_thread_metrics(session: Any) -> dict[str, float]:
    metrics = (await session.send("Performance.getMetrics"))["metrics"]
    return {metric["name"]: metric["value"] for metric in metrics}


async def phase(
    page: Page,
    session: Any,
    broker: RedisBroker,
    fleet: Fleet,
    name: str,
    rate: float,
    seconds: float,
) -> dict[str, Any]:
    await page.evaluate(RESET)
    before = await main_thread_metrics(session)
    received_before = (await page.evaluate(COLLECT))["received"]
    load_before = loadavg()
    started = time.monotonic()
    published = await publish_for(broker, fleet, rate, seconds)
    await asyncio.sleep(1.0)  # the last events reach the page
    wall = time.monotonic() - started
    after = await main_thread_metrics(session)
    await session.send("HeapProfiler.collectGarbage")  # the heap that is live, not garbage
    page_side = await page.evaluate(COLLECT)
    frames = page_side["frames"]
    long_tasks = page_side["longTasks"]
    latencies = [
        page_side["shownAt"][event_id] - at
        for event_id, at in published.items()
        if event_id in page_side["shownAt"]
    ]

    def busy(metric: str) -> float:
        return round(100 * (after.get(metric, 0) - before.get(metric, 0)) / wall, 1)

    return {
        "phase": name,
        "drones": len(fleet.serials),
        "rate_target": rate,
        "seconds": seconds,
        "published": len(published),
        "received": page_side["received"] - received_before,
        "shown_in_log": len(latencies),
        "frames": len(frames),
        "fps": round(len(frames) / wall, 1),
        "frame_p50_ms": round(percentile(frames, 0.50), 1),
        "frame_p95_ms": round(percentile(frames, 0.95), 1),
        "frame_p99_ms": round(percentile(frames, 0.99), 1),
        "frame_max_ms": round(max(frames, default=float("nan")), 1),
        "frames_over_50ms": sum(1 for frame in frames if frame > 50),
        "long_tasks": len(long_tasks),
        "long_task_ms_total": round(sum(long_tasks), 1),
        "long_task_max_ms": round(max(long_tasks, default=0), 1),
        "main_thread_busy_pct": busy("TaskDuration"),
        "main_thread_cpu_pct": busy("ThreadTime"),
        "cpu_ms_per_event": round(
            1000 * (after["ThreadTime"] - before["ThreadTime"]) / len(published), 2
        )
        if published
        else None,
        "script_pct": busy("ScriptDuration"),
        "layout_pct": busy("LayoutDuration"),
        "style_pct": busy("RecalcStyleDuration"),
        "event_to_dom_p50_ms": round(statistics.median(latencies), 1) if latencies else None,
        "event_to_dom_p95_ms": round(percentile(latencies, 0.95), 1) if latencies else None,
        "event_to_dom_max_ms": round(max(latencies), 1) if latencies else None,
        "other_main_thread_pct": busy("TaskOtherDuration"),
        "drone_rows_replaced": page_side["rowsAdded"],
        "dom_nodes": page_side["domNodes"],
        "js_heap_mb": round(page_side["heapMb"], 1) if page_side["heapMb"] else None,
        "loadavg_before": load_before,
        "loadavg_after": loadavg(),
    }


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    processes = Processes()
    redis_port, api_port, gateway_port = free_port(), free_port(), free_port()
    redis_dir = tempfile.mkdtemp(prefix="dronecast-bench-redis-")
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    api_url, gateway_url = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{gateway_port}"
    records: list[dict[str, Any]] = []
    try:
        processes.start(
            ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", redis_dir]
        )  # fmt: skip
        env = {**SERVICE_ENV, "REDIS_URL": redis_url}
        python = sys.executable
        processes.start(
            [python, "-m", "services.cli", "api", "--host", "127.0.0.1", "--port", str(api_port)],
            {**env, "PUBLIC_EVENTS_URL": gateway_url},
        )
        processes.start(
            [python, "-m", "services.cli", "gateway", "--host", "127.0.0.1", "--port",
             str(gateway_port)],
            {**env, "CORS_ORIGINS": json.dumps([api_url])},
        )  # fmt: skip
        wait_ready(api_url)
        wait_ready(gateway_url)
        drones = register_drones(api_url, args.drones)
        fleet = Fleet(drones, args.seed)
        broker = RedisBroker(redis_url)
        await broker.start()
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = await browser.new_page(viewport={"width": 1600, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            await page.add_init_script(PROBE)
            await page.goto(f"{api_url}/")
            await page.wait_for_selector('#connection[data-state="live"]')
            await page.wait_for_selector("body[data-loaded]")
            listed = await page.locator("#drones-title .count").text_content()
            assert listed == str(args.drones), f"{listed} drones listed for {args.drones}"
            session = await page.context.new_cdp_session(page)
            await session.send("Performance.enable")
            await asyncio.sleep(2)  # settle after the first load
            for name, rate in (("idle", 0.0), ("load", args.rate), ("stress", args.stress)):
                if args.trace and name == "load":
                    await browser.start_tracing(page=page, path=args.trace, categories=TRACE)
                record = await phase(page, session, broker, fleet, name, rate, args.seconds)
                if args.trace and name == "load":
                    await browser.stop_tracing()
                record["page_errors"] = len(errors)
                record["rev"] = args.rev
                records.append(record)
                print(json.dumps(record), flush=True)
            await browser.close()
        await broker.close()
    finally:
        processes.stop()
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--drones", type=int, default=200)
    parser.add_argument("--rate", type=float, default=100.0, help="events/s in the load phase")
    parser.add_argument("--stress", type=float, default=300.0, help="events/s in the stress phase")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each phase")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--trace", help="write a Chromium trace of the load phase to this file")
    parser.add_argument("--no-save", action="store_true", help="do not append to bench/results")
    args = parser.parse_args()
    args.rev = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    records = asyncio.run(run(args))
    if not args.no_save:
        os.makedirs(RESULTS, exist_ok=True)
        with open(os.path.join(RESULTS, "dashboard.jsonl"), "a") as out:
            for record in records:
                out.write(json.dumps(record) + "\n")
    lost = [record for record in records if record["received"] < record["published"]]
    if lost or any(record["page_errors"] for record in records):
        raise SystemExit(f"events lost or page errors: {lost or records}")


if __name__ == "__main__":
    main()
