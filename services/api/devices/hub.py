"""This replica's device sockets, and everything that crosses replicas for them.

- **Commands** wait in MongoDB (in the alert). Whoever writes one nudges
  `device_nudge_channel("drone", serial)`; the replica holding that drone's socket claims each
  pending command atomically (so exactly one connection gets it) and writes it. A drone that
  connects gets every pending command. Each lease renewal also looks for pending commands of
  local drones, so a lost nudge only delays a command.
- **Application updates**: every replica watches `drone:*:incident` (the alert events, with ids)
  and sends each as `alert_update` to its own applications. The subscription hands each event
  over once and refills the gap from retention after the bus reconnects; what it cannot refill
  the applications hear of as `EventsLost`. One path: events, never nudges.
- **Presence and liveness**: see `presence.py`. The hub pings devices, closes the half-open,
  renews leases and sweeps lapsed ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from collections.abc import Coroutine
from typing import Any

from pydantic import TypeAdapter, ValidationError
from pymongo.errors import PyMongoError
from starlette.websockets import WebSocket

from services.api.devices.connection import CloseReason, Connection, DeviceKind, encode
from services.api.devices.messages import handle_frame
from services.api.devices.tasks import (
    application_messages,
    deliver_tasks,
    task_cancelled_message,
)
from shared.aio import cancel_and_wait
from shared.alerts.service import alert_service
from shared.auth import ANONYMOUS_ADMIN, Action, Principal, bearer_token, verify_token
from shared.broker import Broker, Subscription
from shared.broker.base import LostScope
from shared.channels import (
    ChannelKind,
    device_nudge_channel,
    drone_kind_pattern,
    parse_device_nudge_channel,
)
from shared.devices.schemas import (
    command_message,
    error_message,
    ping_message,
    welcome_message,
)
from shared.devices.service import presence_service
from shared.drones.schemas import Serial
from shared.errors import DroneCastError, Forbidden, InvalidInput, Unauthorized
from shared.events import EventName, PublishedEvent
from shared.limits import RateLimiter
from shared.logging import get_logger
from shared.models.task import TaskStatus
from shared.nudges import COMMANDS, DRONE, SESSION, nudge_drone, parse_nudge
from shared.runtime import Runtime
from shared.settings import Settings
from shared.tasks.repository import task_repository

log = get_logger(__name__)

_DEVICE_ID = TypeAdapter(Serial)
_STOP_WAIT_SECONDS = 3.0


class DeviceHub:
    def __init__(self, settings: Settings, runtime: Runtime) -> None:
        self.settings = settings
        self.runtime = runtime
        self.replica_id = uuid.uuid4().hex[:12]
        self.drones: dict[str, Connection] = {}  # serial -> its connection on this replica
        self.applications: dict[str, Connection] = {}  # session -> connection
        self._active: set[Connection] = set()
        self._idle = asyncio.Event()  # set while no socket is open
        self._idle.set()
        self._subscription: Subscription | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ticker: asyncio.Task[None] | None = None
        self._last_renewal = 0.0
        self._per_client: Counter[str] = Counter()  # open sockets by token subject (or device)
        self._limiter = RateLimiter(
            settings.client_messages_per_second, settings.client_message_burst
        )
        self._stopping = False

    @property
    def broker(self) -> Broker:
        return self.runtime.broker

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self._subscription = self.broker.subscription(
            self._on_bus, self._on_resume, self._on_events_lost
        )
        await self._subscription.add(drone_kind_pattern(ChannelKind.INCIDENT))
        await self._subscription.add(drone_kind_pattern(ChannelKind.TASK))
        self._last_renewal = time.monotonic()
        self._ticker = asyncio.create_task(self._tick_forever(), name="device-hub-ticker")
        log.info("device_hub_started", replica=self.replica_id)

    async def stop(self) -> None:
        """Close every device socket with 1001 (going away): drones keep their presence for
        the grace period and reconnect to another replica without flapping offline."""
        self._stopping = True
        if self._ticker is not None:
            await cancel_and_wait(self._ticker)
        for connection in list(self._active):
            connection.close(CloseReason.SHUTDOWN)
        if self._active:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), _STOP_WAIT_SECONDS)
        for task in list(self._tasks):
            task.cancel()
        if self._subscription is not None:
            await self._subscription.close()
            self._subscription = None
        with contextlib.suppress(PyMongoError):
            await presence_service.forget_replica(self.replica_id)
        log.info("device_hub_stopped", replica=self.replica_id)

    def _spawn(self, coroutine: Coroutine[Any, Any, Any], what: str) -> None:
        async def guarded() -> None:
            try:
                await coroutine
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a background duty must not take the replica down
                log.warning("device_task_failed", task=what, error=str(exc))

        task = asyncio.create_task(guarded(), name=what)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- one socket --------------------------------------------------------------------------

    async def serve(self, websocket: WebSocket, kind: DeviceKind, device_id: str) -> None:
        """Run one device socket until it closes (the WebSocket endpoint's whole body)."""
        await websocket.accept()
        try:
            principal = self._admit(websocket, kind, device_id)
        except DroneCastError as exc:
            with contextlib.suppress(Exception):
                await websocket.send_text(encode(error_message(exc.error, exc.detail)))
                await websocket.close(1008, exc.error)
            return
        connection = Connection(websocket, kind, device_id, self.settings)
        connection.principal = principal
        key = connection.rate_key
        if self._per_client[key] >= self.settings.connections_per_client:
            limit = self.settings.connections_per_client
            with contextlib.suppress(Exception):
                refusal = error_message("TooManyConnections", f"at most {limit} per client")
                await websocket.send_text(encode(refusal))
                await websocket.close(1008, "TooManyConnections")
            return
        self._per_client[key] += 1
        try:
            await self._serve_admitted(websocket, connection)
        finally:
            self._per_client[key] -= 1
            if self._per_client[key] <= 0:
                del self._per_client[key]

    async def _serve_admitted(self, websocket: WebSocket, connection: Connection) -> None:
        kind, device_id = connection.kind, connection.device_id
        writer = asyncio.create_task(connection.write_forever())
        # Only on request (`?welcome=1`): seed 003's clients read their first message as the
        # task (or result) they wait for, so nothing else may come first unasked.
        if websocket.query_params.get("welcome") in ("1", "true"):
            connection.extended = True
            connection.send(
                welcome_message(
                    kind.value,
                    device_id,
                    connection.session,
                    self.settings.device_ping_interval,
                    self.settings.device_heartbeat_timeout,
                )
            )
        self._active.add(connection)
        self._idle.clear()
        try:
            if self._stopping:
                connection.close(CloseReason.SHUTDOWN)
            else:
                await self._attach(connection)
                await self._run(connection)
        except Exception:
            log.exception("device_socket_failed", kind=kind.value, device_id=device_id)
            connection.close(CloseReason.CLIENT)
        finally:
            self._active.discard(connection)
            await self._detach(connection)
            if not self._active:
                self._idle.set()
            await cancel_and_wait(writer)
            await connection.close_socket()
            log.info(
                "device_disconnected",
                kind=kind.value,
                device_id=device_id,
                reason=str(connection.close_reason),
            )

    def _admit(self, websocket: WebSocket, kind: DeviceKind, device_id: str) -> Principal:
        """Who the socket speaks as. A drone may speak only as itself; an application needs a
        token that may subscribe (each response is checked on its own)."""
        try:
            _DEVICE_ID.validate_python(device_id)
        except ValidationError as exc:
            raise InvalidInput(
                f"{kind.value} id must be 1-64 of [A-Za-z0-9_.-] and not 'all'"
            ) from exc
        origin = websocket.headers.get("origin")
        if not self.settings.origin_allowed(origin, websocket.headers.get("host")):
            raise Forbidden(f"origin '{origin}' is not allowed (CORS_ORIGINS)")
        if not self.settings.auth_enabled:
            return ANONYMOUS_ADMIN
        token = bearer_token(websocket.headers.get("authorization")) or websocket.query_params.get(
            "token"
        )
        if not token:
            raise Unauthorized("a bearer token is required (Authorization header or ?token=)")
        principal = verify_token(self.settings, token)
        if kind is DeviceKind.DRONE:
            principal.require(Action.ACT_AS_DRONE, device_id)
        else:
            principal.require(Action.SUBSCRIBE)
        return principal

    async def _run(self, connection: Connection) -> None:
        reader = asyncio.create_task(self._read_forever(connection))
        closing = asyncio.create_task(connection.closing.wait())
        done, pending = await asyncio.wait({reader, closing}, return_when=asyncio.FIRST_COMPLETED)
        await cancel_and_wait(*pending)
        if reader in done and not reader.cancelled() and reader.exception() is not None:
            log.warning("device_read_failed", error=str(reader.exception()))
        connection.close(CloseReason.CLIENT)  # keeps a reason set earlier

    async def _read_forever(self, connection: Connection) -> None:
        websocket = connection.websocket
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            connection.heard()
            text = message.get("text")
            if text is None:
                connection.send(
                    error_message("UnsupportedFrame", "binary frames are not accepted; send JSON")
                )
                continue
            limit = (
                self.settings.max_frame_bytes  # a drone's image message carries the picture
                if connection.kind is DeviceKind.DRONE
                else self.settings.max_body_bytes
            )
            if len(text) > limit:
                connection.send(error_message("PayloadTooLarge", f"a frame may hold {limit} chars"))
                continue
            if not self._limiter.allow(connection.rate_key):
                connection.send(error_message("RateLimited", "too many messages; slow down"))
                continue
            try:
                reply = await handle_frame(self.broker, connection, text)
            except Exception as exc:  # e.g. MongoDB unreachable: say so, keep the socket
                log.warning("device_message_failed", device_id=connection.device_id, error=str(exc))
                reply = error_message(
                    "ServiceUnavailable", "the message could not be processed now; send it again"
                )
            if reply is not None:
                connection.send(reply)

    async def _attach(self, connection: Connection) -> None:
        if connection.kind is DeviceKind.APPLICATION:
            self.applications[connection.session] = connection
            log.info("application_connected", app_id=connection.device_id)
            return
        drone_id = connection.device_id
        previous = self.drones.get(drone_id)
        self.drones[drone_id] = connection
        if previous is not None:
            previous.close(CloseReason.REPLACED)
        assert self._subscription is not None
        await self._subscription.add(device_nudge_channel(DRONE, drone_id))
        version = await presence_service.connected(
            self.broker, drone_id, connection.session, self.settings.presence_lease_seconds
        )
        connection.presence_version = version
        if connection.newest_seen_version > version:
            connection.close(CloseReason.REPLACED)  # a newer connection elsewhere already won
            return
        await nudge_drone(
            self.broker, drone_id, SESSION, version=version, session=connection.session
        )
        log.info("drone_connected", drone_id=drone_id, session=connection.session)
        self._spawn(self.deliver_commands(connection), "deliver-commands")
        self._spawn(deliver_tasks(connection), "deliver-tasks")

    async def _detach(self, connection: Connection) -> None:
        if connection.kind is DeviceKind.APPLICATION:
            self.applications.pop(connection.session, None)
            return
        drone_id, session = connection.device_id, connection.session
        if self.drones.get(drone_id) is connection:
            del self.drones[drone_id]
            if self._subscription is not None:
                with contextlib.suppress(Exception):
                    await self._subscription.remove(device_nudge_channel(DRONE, drone_id))
        reason = connection.close_reason or CloseReason.CLIENT
        try:
            if reason is CloseReason.REPLACED:
                return  # the newer connection owns the presence
            if reason is CloseReason.HEARTBEAT:
                await presence_service.lost(self.broker, drone_id, session, reason.value)
                released = await alert_service.release_unconfirmed(
                    session, connection.last_heard_at
                )
                if released:
                    log.warning("commands_requeued", drone_id=drone_id, commands=released)
            else:
                await presence_service.closed(
                    self.broker,
                    drone_id,
                    session,
                    reason.value,
                    self.settings.presence_grace_seconds,
                )
        except Exception as exc:  # the lease lapses and any replica marks it offline
            log.warning("presence_close_failed", drone_id=drone_id, error=str(exc))

    # --- commands ----------------------------------------------------------------------------

    async def deliver_commands(self, connection: Connection) -> int:
        """Write every pending command of this drone to this connection, oldest first."""
        delivered = 0
        async with connection.command_lock:
            while not connection.closing.is_set():
                alert = await alert_service.claim_command(connection.device_id, connection.session)
                if alert is None:
                    break
                if not await connection.send_confirmed(command_message(alert)):
                    await alert_service.release_command(alert.alert_id, connection.session)
                    break
                delivered += 1
                log.info(
                    "command_delivered", drone_id=connection.device_id, alert_id=alert.alert_id
                )
        return delivered

    # --- the bus -----------------------------------------------------------------------------

    def _on_bus(self, event: PublishedEvent) -> None:
        nudge = parse_device_nudge_channel(event.channel)
        if nudge is not None:
            self._on_nudge(nudge[1], parse_nudge(event.envelope))
            return
        if event.channel.endswith(f":{ChannelKind.TASK.value}"):
            self._on_task_event(event)
            return
        if not self.applications:
            return
        serial = event.serial or ""
        envelope = event.to_dict()
        data = envelope.get("data") or {}
        text = encode(
            {
                "type": "alert_update",
                "id": envelope.get("id"),
                "event": envelope.get("event"),
                "data": data.get("full", data),
            }
        )
        for connection in list(self.applications.values()):
            if connection.principal.may_see(serial):
                connection.send_text(text)

    def _on_task_event(self, event: PublishedEvent) -> None:
        envelope = event.to_dict()
        name, data = envelope.get("event", ""), envelope.get("data") or {}
        task = data.get("task") or {}
        drone = self.drones.get(task.get("drone_id", ""))
        if drone is not None:
            if name == EventName.TASK_DISPATCHED.value:
                self._spawn(deliver_tasks(drone), "deliver-tasks")
            elif data.get("status") == TaskStatus.CANCELLED.value and data.get("was_delivered"):
                drone.send(task_cancelled_message(task, data.get("reason") or "cancelled"))
        if not self.applications:
            return
        messages = application_messages(name, data)
        if not messages:
            return
        for connection in list(self.applications.values()):
            if connection.device_id == task.get("app_id"):
                for message in messages:
                    connection.send(message)

    def _on_nudge(self, drone_id: str, nudge: dict[str, Any]) -> None:
        connection = self.drones.get(drone_id)
        if connection is None:
            return
        what = nudge.get("what")
        if what == COMMANDS:
            self._spawn(self.deliver_commands(connection), "deliver-commands")
        elif what == SESSION:
            version = nudge.get("version")
            if not isinstance(version, int) or nudge.get("session") == connection.session:
                return
            connection.newest_seen_version = max(connection.newest_seen_version, version)
            if connection.presence_version and version > connection.presence_version:
                connection.close(CloseReason.REPLACED)

    def _on_events_lost(self, scope: LostScope) -> None:
        """The bus lost alert events it cannot replay: applications that may have missed some
        reload. (Which drones is not worth narrowing: applications see alerts of many.)"""
        log.error("alert_updates_lost", slots=None if scope.slots is None else len(scope.slots))
        for connection in list(self.applications.values()):
            connection.send(
                error_message(
                    "EventsLost", "some alert updates were lost; reload with GET /api/alerts"
                )
            )

    async def _on_resume(self) -> None:
        """The bus connection came back (its gap refilled): look for commands and tasks whose
        nudges or events went by meanwhile."""
        for connection in list(self.drones.values()):
            self._spawn(self.deliver_commands(connection), "deliver-commands")
            self._spawn(deliver_tasks(connection), "deliver-tasks")

    # --- liveness, leases, sweeps -------------------------------------------------------------

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.presence_check_interval)
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # MongoDB away: try again next tick
                log.warning("device_tick_failed", error=str(exc))

    async def tick(self) -> None:
        now = time.monotonic()
        ping_text: str | None = None
        for connection in list(self._active):
            if (
                connection.heartbeat_tracked
                and connection.silent_for() > self.settings.device_heartbeat_timeout
            ):
                log.warning(
                    "device_heartbeat_timeout",
                    kind=connection.kind.value,
                    device_id=connection.device_id,
                    silent_for=round(connection.silent_for(), 3),
                )
                connection.close(CloseReason.HEARTBEAT)
                continue
            if (
                connection.extended
                and now - connection.last_ping >= self.settings.device_ping_interval
            ):
                connection.last_ping = now
                ping_text = ping_text or encode(ping_message())
                connection.send_text(ping_text)
        if now - self._last_renewal >= self.settings.presence_lease_seconds / 3:
            self._last_renewal = now
            await self._renew()
        await presence_service.sweep(self.broker)

    async def _renew(self) -> None:
        lease = self.settings.presence_lease_seconds
        drones = [c for c in self.drones.values() if c.presence_version]
        for connection in drones:
            outcome = await presence_service.renew(
                self.broker, connection.device_id, connection.session, lease
            )
            if outcome == "taken":
                connection.close(CloseReason.REPLACED)
            elif outcome == "lost" and not connection.closing.is_set():
                connection.presence_version = await presence_service.connected(
                    self.broker, connection.device_id, connection.session, lease
                )
        waiting = await alert_service.drones_with_pending_commands(
            [connection.device_id for connection in drones]
        )
        for drone_id in waiting:
            holder = self.drones.get(drone_id)
            if holder is not None:
                self._spawn(self.deliver_commands(holder), "deliver-commands")
        # The backstop for a lost `task.dispatched` event, like the commands' lost nudge.
        for drone_id in await task_repository.drones_with_undelivered(
            [connection.device_id for connection in drones]
        ):
            holder = self.drones.get(drone_id)
            if holder is not None:
                self._spawn(deliver_tasks(holder), "deliver-tasks")
        await presence_service.report_replica(self.replica_id, self.local_counts(), lease)

    # --- counts ------------------------------------------------------------------------------

    def local_counts(self) -> dict[str, int]:
        return {"drones": len(self.drones), "applications": len(self.applications)}

    async def connection_counts(self) -> dict[str, Any]:
        local = self.local_counts()
        try:
            online: int | None = await presence_service.count_online()
            others = await presence_service.other_replicas(self.replica_id)
        except PyMongoError as exc:
            log.warning("connection_counts_unavailable", error=str(exc))
            online, others = None, []
        return {
            "drones_online": online,
            "drones": local["drones"] + sum(o.get("drones", 0) for o in others),
            "applications": local["applications"] + sum(o.get("applications", 0) for o in others),
            "this_replica": local,
        }
