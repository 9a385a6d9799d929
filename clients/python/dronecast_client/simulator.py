"""A simulated fleet against a running DroneCast: `dronecast simulate` (or `dronecast-simulate`).

Built only on this package's clients, as any application would be:

- Each drone is registered over REST and connected over its drone socket. It flies a plan
  (grounded, take-off, climb, cruise and hover legs, landing), switching its stream on while
  airborne, and measures battery, motor temperature, altitude and vibration once a second.
  The readings go to the telemetry API in batches. Now and then a fault (motor overheat,
  vibration, battery sag) shows in its readings and raises an alert; so do sightings.
- A simulated application answers each alert (`respond`); the drone carries out the command
  and sends its picture, which completes the alert. The application also sends processing
  tasks; the drones report progress and a result (some fail).

The same seed gives the same fleet, flights, readings, faults, alerts and tasks. Timing follows
the wall clock, one step a second. At `--duration` it starts nothing new, lets what is under
way finish (up to `--drain` seconds), and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import random
import struct
import sys
import time
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

from dronecast_client.devices import AsyncApplicationClient, AsyncDroneClient
from dronecast_client.errors import APIError, Conflict, DroneCastError
from dronecast_client.models import (
    AlertUpdate,
    Command,
    DeviceMessage,
    ProcessingResultReceived,
    ProcessingTask,
    TaskCancelled,
    TaskStatusUpdate,
)
from dronecast_client.rest import AsyncClient

SENSORS = {
    "battery": "percent",
    "motor_temperature": "celsius",
    "altitude": "meters",
    "vibration": "g",
}
SIGHTINGS = ["intrusion", "fire", "security_breach", "environmental", "accident"]
ACTIONS = {
    "intrusion": ["track_target", "capture_image", "notify_security"],
    "fire": ["hold_position", "capture_image", "notify_fire_department"],
    "security_breach": ["track_target", "capture_image"],
    "environmental": ["survey_area", "capture_image"],
    "accident": ["hold_position", "capture_image", "notify_emergency_services"],
    "other": ["return_to_base", "capture_image"],
}
TASK_TYPES = ["image_analysis", "object_detection", "thermal_scan", "area_survey"]
FAULTS = {
    "motor_overheat": "motor temperature rising fast",
    "vibration": "abnormal vibration on a rotor",
    "battery_sag": "sudden battery voltage drop",
}
# Per drone and second: how often things happen (about one sighting per drone every 40 s of
# flight, one task per drone every 30 s, one fault per drone every 3 minutes of flight).
SIGHTING_CHANCE = 1 / 40
TASK_CHANCE = 1 / 30
FAULT_CHANCE = 1 / 180
MAX_BATCH = 500
# Readings are measured every second and sent every few seconds, as a drone buffering its
# telemetry would: fewer, larger requests.
TELEMETRY_BATCH_SECONDS = 5


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def png_image(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A small valid PNG (a vertical gradient of `rgb`): the drone's 'picture'."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    rows = bytearray()
    for y in range(height):
        shade = 0.5 + 0.5 * y / max(height - 1, 1)
        pixel = bytes(int(c * shade) for c in rgb)
        rows += b"\x00" + pixel * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(rows), 9))
        + chunk(b"IEND", b"")
    )


# --- one drone's flight --------------------------------------------------------------------------


@dataclass
class Flight:
    """A drone's physical state, advanced one second at a time by its own random stream."""

    rng: random.Random
    home: tuple[float, float]
    phase: str = "grounded"
    phase_left: int = 0
    legs_left: int = 0
    altitude: float = 0.0
    cruise_altitude: float = 60.0
    climb_rate: float = 3.0
    battery: float = 100.0
    motor_temperature: float = 22.0
    vibration: float = 0.02
    heading: float = 0.0
    position: tuple[float, float] = (0.0, 0.0)
    fault: str | None = None
    fault_left: int = 0

    def __post_init__(self) -> None:
        self.battery = self.rng.uniform(80, 100)
        self.phase_left = self.rng.randint(1, 6)
        self.position = self.home
        self.heading = self.rng.uniform(0, 2 * math.pi)
        if self.rng.random() < 0.5:  # half the fleet is already out on a mission
            self.cruise_altitude = self.altitude = self.rng.uniform(30, 100)
            self.motor_temperature = self.rng.uniform(44, 50)
            self.legs_left = self.rng.randint(1, 4)
            self._enter("cruise")

    @property
    def airborne(self) -> bool:
        return self.phase != "grounded"

    def step(self) -> str | None:
        """One second. Returns the phase just entered, if it changed."""
        entered = None
        self.phase_left -= 1
        if self.phase == "takeoff" and self.altitude >= self.cruise_altitude:
            entered = self._enter("cruise")
        elif self.phase == "landing" and self.altitude <= 0.0:
            self.altitude = 0.0
            entered = self._enter("grounded")
        elif self.phase_left <= 0 and self.phase in ("grounded", "cruise", "hover"):
            entered = self._next_phase()
        if self.battery < 25 and self.phase in ("cruise", "hover", "takeoff"):
            entered = self._enter("landing")  # low battery: come home
        self._move()
        return entered

    def _next_phase(self) -> str:
        if self.phase == "grounded":
            if self.battery < 40:
                self.battery = self.rng.uniform(92, 100)  # swapped on the ground
            self.cruise_altitude = self.rng.uniform(30, 100)
            self.climb_rate = self.rng.uniform(4.0, 7.0)
            self.legs_left = self.rng.randint(2, 5)
            return self._enter("takeoff")
        self.legs_left -= 1
        if self.legs_left <= 0:
            return self._enter("landing")
        return self._enter("hover" if self.phase == "cruise" else "cruise")

    def _enter(self, phase: str) -> str:
        self.phase = phase
        self.phase_left = {
            "grounded": self.rng.randint(4, 12),
            "takeoff": 120,
            "cruise": self.rng.randint(15, 45),
            "hover": self.rng.randint(5, 15),
            "landing": 120,
        }[phase]
        if phase == "cruise":
            self.heading += self.rng.uniform(-1.2, 1.2)
        return phase

    def _move(self) -> None:
        rng = self.rng
        drain = {"grounded": 0.005, "takeoff": 0.12, "cruise": 0.07, "hover": 0.09, "landing": 0.05}
        heat = {"grounded": 24.0, "takeoff": 58.0, "cruise": 48.0, "hover": 52.0, "landing": 44.0}
        shake = {"grounded": 0.02, "takeoff": 0.35, "cruise": 0.25, "hover": 0.3, "landing": 0.28}
        if self.phase == "takeoff":
            self.altitude = min(self.cruise_altitude, self.altitude + self.climb_rate)
        elif self.phase == "landing":
            self.altitude = max(0.0, self.altitude - rng.uniform(1.5, 2.5))
        elif self.phase in ("cruise", "hover"):
            self.altitude += (self.cruise_altitude - self.altitude) * 0.2 + rng.gauss(0, 0.3)
        if self.phase == "cruise":
            speed = 12.0 / 111_000  # about 12 m/s in degrees
            self.position = (
                self.position[0] + speed * math.cos(self.heading),
                self.position[1] + speed * math.sin(self.heading),
            )
        self.battery = max(0.0, self.battery - drain[self.phase] - abs(rng.gauss(0, 0.01)))
        target = heat[self.phase] + (30.0 if self.fault == "motor_overheat" else 0.0)
        self.motor_temperature += (target - self.motor_temperature) / 15 + rng.gauss(0, 0.15)
        vibration = shake[self.phase] * (4.0 if self.fault == "vibration" else 1.0)
        self.vibration = max(0.0, vibration + rng.gauss(0, 0.015))
        if self.fault is not None:
            self.fault_left -= 1
            if self.fault_left <= 0:
                self.fault = None

    def start_fault(self, kind: str) -> None:
        self.fault, self.fault_left = kind, self.rng.randint(6, 14)
        if kind == "battery_sag":
            self.battery = max(5.0, self.battery - self.rng.uniform(12, 20))

    def readings(self) -> dict[str, float]:
        return {
            "battery": round(self.battery, 2),
            "motor_temperature": round(self.motor_temperature, 2),
            "altitude": round(max(self.altitude, 0.0), 2),
            "vibration": round(self.vibration, 3),
        }


# --- the simulation ------------------------------------------------------------------------------


@dataclass
class Counters:
    drones_online: int = 0
    readings: int = 0
    alerts: int = 0
    alerts_responded: int = 0
    alerts_completed: int = 0
    tasks: int = 0
    tasks_completed: int = 0
    tasks_failed: int = 0
    faults: int = 0
    errors: int = 0
    last_error: str = ""


@dataclass
class SimDrone:
    serial: str
    flight: Flight
    client: AsyncDroneClient | None = None
    busy: set[asyncio.Task[Any]] = field(default_factory=set)


class Simulation:
    def __init__(
        self,
        api: str,
        drones: int,
        duration: float,
        seed: int,
        token: str | None = None,
        drain: float = 15.0,
        activity: float = 1.0,
        out: TextIO = sys.stderr,
    ) -> None:
        self.api_url = api.rstrip("/")
        self.duration = duration
        self.seed = seed
        self.token = token
        self.drain = drain
        self.activity = activity  # scales how often sightings, faults and tasks happen
        self.out = out
        self.counters = Counters()
        self.prefix = f"SIM{seed}-"
        self.app_id = f"sim-app-{seed}"
        self.rng = random.Random(f"dronecast-sim:{seed}")
        self.drones = [
            SimDrone(
                serial=f"{self.prefix}{index + 1:03d}",
                flight=Flight(
                    random.Random(f"dronecast-sim:{seed}:{index}"),
                    home=(40.70 + index * 0.004, -74.01 + (index % 7) * 0.004),
                ),
            )
            for index in range(drones)
        ]
        self.by_serial = {drone.serial: drone for drone in self.drones}
        self.open_alerts: set[str] = set()
        self.open_tasks: set[str] = set()
        self.alert_ids: list[str] = []
        self.task_ids: list[str] = []
        self.finishing = False
        self._background: set[asyncio.Task[Any]] = set()
        self._pending_readings: list[dict[str, Any]] = []
        self._started = 0.0
        self._tty = hasattr(out, "isatty") and out.isatty()
        self._last_line = 0.0

    # --- running ----------------------------------------------------------------------------

    async def run(self) -> Counters:
        self._started = time.monotonic()
        async with AsyncClient(self.api_url, token=self.token, timeout=30.0) as api:
            self.api = api
            await self._register(api)
            app = AsyncApplicationClient(self.api_url, self.app_id, token=self.token)
            await app.connect()
            self.app = app
            try:
                await asyncio.gather(*(self._connect(drone) for drone in self.drones))
                # Listeners run until the end; they are not work "under way".
                listeners = [asyncio.ensure_future(self._listen_app(app))]
                listeners += [asyncio.ensure_future(self._listen_drone(d)) for d in self.drones]
                try:
                    await self._fly()
                    self.finishing = True
                    await self._finish()
                finally:
                    for listener in listeners:
                        listener.cancel()
                    await asyncio.gather(*listeners, return_exceptions=True)
            finally:
                for task in list(self._background):
                    task.cancel()
                await asyncio.gather(*self._background, return_exceptions=True)
                await asyncio.gather(
                    *(d.client.close() for d in self.drones if d.client is not None),
                    return_exceptions=True,
                )
                await app.close()
        self._progress(final=True)
        return self.counters

    async def _register(self, api: AsyncClient) -> None:
        async def one(drone: SimDrone) -> None:
            rng = random.Random(f"dronecast-sim:{self.seed}:{drone.serial}:profile")
            classes = sorted(rng.sample(range(10), rng.randint(1, 4)))
            try:
                await api.register_drone(
                    drone.serial,
                    name=f"Simulated drone {drone.serial[len(self.prefix) :]}",
                    category=rng.choice(["Surveillance", "Inspection", "Delivery"]),
                    detection_classes=classes,
                    ai_detection_enabled=True,
                )
            except Conflict:
                await api.update_drone(drone.serial, stream_is_on=False)  # a re-run

        await asyncio.gather(*(one(drone) for drone in self.drones))

    async def _connect(self, drone: SimDrone) -> None:
        drone.client = AsyncDroneClient(self.api_url, drone.serial, token=self.token)
        await drone.client.connect()
        self.counters.drones_online += 1

    async def _fly(self) -> None:
        """One step a second for every drone, in a fixed order, until the duration is up."""
        steps = max(1, round(self.duration))
        takeoff = time.monotonic()
        for step in range(steps):
            tick_at = takeoff + step + 1
            for drone in self.drones:
                self._step(drone, step)
            if (step + 1) % TELEMETRY_BATCH_SECONDS == 0 or step == steps - 1:
                self._spawn(self._flush_readings())
            self._progress()
            await asyncio.sleep(max(0.0, tick_at - time.monotonic()))

    def _step(self, drone: SimDrone, step: int) -> None:
        flight = drone.flight
        entered = flight.step()
        if entered == "takeoff":
            self._spawn(self._rest(self.api.update_drone(drone.serial, stream_is_on=True)))
        elif entered == "grounded":
            self._spawn(self._rest(self.api.update_drone(drone.serial, stream_is_on=False)))
        stamp = utc_now()
        for sensor, value in flight.readings().items():
            self._pending_readings.append(
                {
                    "sensor_id": f"{drone.serial}.{sensor}",
                    "sensor_type": sensor,
                    "value": value,
                    "unit": SENSORS[sensor],
                    "location": f"{flight.position[0]:.5f},{flight.position[1]:.5f}",
                    "drone_serial": drone.serial,
                    "timestamp": stamp,
                    "metadata": {"phase": flight.phase, "step": step},
                }
            )
        rng = flight.rng
        # Draw every chance each step, so that the stream of draws (and so the whole
        # simulation) does not depend on what happened to earlier messages.
        fault_roll, sighting_roll, task_roll = rng.random(), rng.random(), rng.random()
        fault_kind, sighting = rng.choice(sorted(FAULTS)), rng.choice(SIGHTINGS)
        score, task_type, priority = (
            round(rng.uniform(0.45, 0.99), 2),
            rng.choice(TASK_TYPES),
            rng.randint(1, 5),
        )
        # On the ground too: a drone processes the data it holds.
        if task_roll < TASK_CHANCE * self.activity:
            self._spawn(self._send_task(drone, task_type, priority, step))
        if flight.phase not in ("cruise", "hover"):
            return
        if flight.fault is None and fault_roll < FAULT_CHANCE * self.activity:
            flight.start_fault(fault_kind)
            self.counters.faults += 1
            self._spawn(self._raise(drone, "other", 0.75, FAULTS[fault_kind], flight.position))
        elif sighting_roll < SIGHTING_CHANCE * self.activity:
            self._spawn(self._raise(drone, sighting, score, f"{sighting} sighted", flight.position))

    # --- alerts -----------------------------------------------------------------------------

    async def _raise(
        self,
        drone: SimDrone,
        kind: str,
        score: float,
        description: str,
        where: tuple[float, float],
    ) -> None:
        assert drone.client is not None
        lat, lng = where
        try:
            alert = await drone.client.raise_alert(
                kind, score, lat=round(lat, 6), lng=round(lng, 6), description=description
            )
        except DroneCastError as exc:
            self._error(exc)
            return
        self.counters.alerts += 1
        self.alert_ids.append(alert.alert_id)
        self.open_alerts.add(alert.alert_id)

    async def _listen_app(self, app: AsyncApplicationClient) -> None:
        async for message in app:
            self._spawn(self._on_app_message(app, message))

    async def _on_app_message(self, app: AsyncApplicationClient, message: DeviceMessage) -> None:
        if isinstance(message, AlertUpdate):
            alert = message.data
            if alert.drone_id not in self.by_serial:
                return  # not one of ours
            if message.event == "alert.created":
                think = random.Random(f"{self.seed}:{alert.alert_id}").uniform(0.3, 1.5)
                await asyncio.sleep(think)
                actions = ACTIONS.get(alert.alert_type, ACTIONS["other"])
                try:
                    await app.respond(alert.alert_id, actions)
                    self.counters.alerts_responded += 1
                except DroneCastError as exc:
                    self._error(exc)
            elif message.event == "alert.completed":
                self.counters.alerts_completed += 1
                self.open_alerts.discard(alert.alert_id)
        elif isinstance(message, ProcessingResultReceived) and not message.late:
            self._task_ended(message.task_id, message.success)
        elif isinstance(message, TaskStatusUpdate) and message.status in ("failed", "cancelled"):
            self._task_ended(message.task_id, False)

    def _task_ended(self, task_id: str, success: bool) -> None:
        if task_id not in self.open_tasks:
            return
        self.open_tasks.discard(task_id)
        if success:
            self.counters.tasks_completed += 1
        else:
            self.counters.tasks_failed += 1

    async def _listen_drone(self, drone: SimDrone) -> None:
        assert drone.client is not None
        async for message in drone.client:
            if isinstance(message, Command):
                self._spawn(self._carry_out(drone, message))
            elif isinstance(message, ProcessingTask):
                self._spawn(self._process(drone, message))
            elif isinstance(message, TaskCancelled):
                pass  # nothing running to stop in the simulation

    async def _carry_out(self, drone: SimDrone, command: Command) -> None:
        assert drone.client is not None
        rng = random.Random(f"{self.seed}:{command.alert_id}:image")
        await asyncio.sleep(rng.uniform(0.3, 1.2))
        colour = (rng.randint(40, 255), rng.randint(40, 255), rng.randint(40, 255))
        try:
            await drone.client.send_image(command.alert_id, png_image(64, 48, colour))
        except DroneCastError as exc:
            self._error(exc)

    # --- tasks ------------------------------------------------------------------------------

    async def _send_task(self, drone: SimDrone, task_type: str, priority: int, step: int) -> None:
        input_data = {"area": drone.serial, "step": step, "resolution": "1080p"}
        try:
            accepted = await self.app.create_task(
                drone.serial, task_type, input_data, priority=priority, deadline_seconds=120
            )
        except DroneCastError as exc:
            self._error(exc)
            return
        self.counters.tasks += 1
        self.task_ids.append(accepted.task_id)
        self.open_tasks.add(accepted.task_id)

    async def _process(self, drone: SimDrone, task: ProcessingTask) -> None:
        assert drone.client is not None
        # Seeded by what the task is (its drone and step), not by its server-made id, so that
        # the same seed gives the same outcomes.
        rng = random.Random(f"{self.seed}:{sorted(task.input_data.items())}:{task.task_type}")
        seconds = rng.uniform(0.5, 3.0)
        try:
            await drone.client.report_status(task.task_id, "processing", {"progress": 0})
            await asyncio.sleep(seconds / 2)
            await drone.client.report_status(task.task_id, "processing", {"progress": 50})
            await asyncio.sleep(seconds / 2)
            if rng.random() < 0.1:
                await drone.client.report_result(
                    task.task_id,
                    {},
                    success=False,
                    error_message="sensor obstructed",
                    processing_time=round(seconds, 3),
                )
            else:
                detections = [
                    {"class": rng.choice(["person", "vehicle", "animal"]),
                     "confidence": round(rng.uniform(0.5, 0.99), 2)}
                    for _ in range(rng.randint(0, 3))
                ]  # fmt: skip
                await drone.client.report_result(
                    task.task_id,
                    {"detections": detections, "task_type": task.task_type},
                    processing_time=round(seconds, 3),
                )
        except DroneCastError as exc:
            self._error(exc)

    # --- telemetry --------------------------------------------------------------------------

    async def _flush_readings(self) -> None:
        batch, self._pending_readings = self._pending_readings, []
        for start in range(0, len(batch), MAX_BATCH):
            chunk = batch[start : start + MAX_BATCH]
            try:
                stored = await self.api.send_readings(chunk)
            except DroneCastError as exc:
                self._error(exc)
                continue
            self.counters.readings += len(stored)

    # --- the end ----------------------------------------------------------------------------

    async def _finish(self) -> None:
        """Start nothing new; let alerts and tasks under way finish, up to `drain` seconds."""
        deadline = time.monotonic() + self.drain
        while time.monotonic() < deadline:
            busy = [t for t in self._background if not t.done()]
            if not self.open_alerts and not self.open_tasks and not busy:
                break
            self._progress()
            await asyncio.sleep(0.2)

    # --- helpers ----------------------------------------------------------------------------

    def _spawn(self, coroutine: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def _rest(self, call: Any) -> None:
        try:
            await call
        except DroneCastError as exc:
            self._error(exc)

    def _error(self, exc: Exception) -> None:
        self.counters.errors += 1
        self.counters.last_error = f"{type(exc).__name__}: {exc}"[:200]

    def _progress(self, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self._last_line < (0.5 if self._tty else 10.0):
            return
        self._last_line = now
        c = self.counters
        elapsed = min(now - self._started, self.duration)
        state = "done" if final else ("finishing" if self.finishing else f"{elapsed:4.0f}s")
        line = (
            f"[{state}/{self.duration:.0f}s] drones {c.drones_online} · "
            f"readings {c.readings} ({c.faults} faults injected) · "
            f"alerts {c.alerts} ({c.alerts_completed} completed) · "
            f"tasks {c.tasks} ({c.tasks_completed} done, {c.tasks_failed} failed) · "
            f"errors {c.errors}"
        )
        if self._tty:
            self.out.write("\r\x1b[2K" + line + ("\n" if final else ""))
        else:
            self.out.write(line + "\n")
        self.out.flush()

    def summary(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "drones": [drone.serial for drone in self.drones],
            "application": self.app_id,
            "alerts": self.alert_ids,
            "tasks": self.task_ids,
            "unfinished_alerts": sorted(self.open_alerts),
            "unfinished_tasks": sorted(self.open_tasks),
            "counters": vars(self.counters),
        }


# --- command line --------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--api", default="http://127.0.0.1:8000", help="DroneCast's base URL")
    parser.add_argument("--drones", type=int, default=10, help="fleet size (default 10)")
    parser.add_argument(
        "--duration", type=float, default=60.0, help="seconds of flight (default 60)"
    )
    parser.add_argument("--seed", type=int, default=1, help="same seed, same fleet (default 1)")
    parser.add_argument("--token", default=None, help="bearer token (an admin's) when auth is on")
    parser.add_argument(
        "--drain",
        type=float,
        default=15.0,
        help="after the duration, seconds to let alerts and tasks under way finish (default 15)",
    )
    parser.add_argument(
        "--activity",
        type=float,
        default=1.0,
        help="how busy the fleet is: scales how often alerts, faults and tasks happen "
        "(default 1: per drone, a sighting every ~40 s of flight, a task every ~30 s)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print a JSON summary (ids of what it made) on stdout"
    )


def run(args: argparse.Namespace) -> int:
    if args.drones < 1 or args.duration <= 0 or args.activity < 0:
        print(
            "simulate: --drones must be at least 1, --duration above 0, --activity at least 0",
            file=sys.stderr,
        )
        return 2
    simulation = Simulation(
        args.api,
        args.drones,
        args.duration,
        args.seed,
        token=args.token,
        drain=args.drain,
        activity=args.activity,
    )
    try:
        asyncio.run(simulation.run())
    except KeyboardInterrupt:
        return 130
    except APIError as exc:
        print(f"\nsimulate: DroneCast refused: {exc}", file=sys.stderr)
        return 1
    except DroneCastError as exc:
        print(f"\nsimulate: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(simulation.summary()))
    if simulation.counters.errors:
        print(f"simulate: last error: {simulation.counters.last_error}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="dronecast-simulate", description=(__doc__ or "").split("\n\n")[0]
    )
    add_arguments(parser)
    with contextlib.suppress(BrokenPipeError):
        raise SystemExit(run(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
