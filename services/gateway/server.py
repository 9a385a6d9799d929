"""Socket.IO handlers at `/ws/events` (seed 001): connect, subscribe, unsubscribe.

`subscribe` may carry `lastEventId` (replay what was missed, from any replica) and `snapshot`
(the drone's current state first). While a client is caught up, its live events are held and
merged after the catch-up, so nothing is lost or sent twice across the switch.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any
from urllib.parse import parse_qs

import socketio
from pydantic import ValidationError
from redis.exceptions import RedisError

from services.gateway import internals, metrics
from services.gateway.hub import Client, Hub
from services.gateway.protocol import SocketIOServer
from services.gateway.relay import Relay
from services.gateway.schemas import SubscribeRequest
from services.gateway.transport import FrameSink, event_frame, json_frame
from services.gateway.wire import CLOSE_SLOW_CONSUMER, SLOW_CONSUMER
from shared.auth import ANONYMOUS_ADMIN, Action, Principal, bearer_token, verify_token
from shared.broker import Broker, BrokerUnavailable, Snapshot
from shared.broker.base import LostScope, id_after
from shared.channels import parse_channel
from shared.drones.repository import drone_repository
from shared.errors import DroneCastError
from shared.events import PublishedEvent, sio_event_for_kind
from shared.limits import RateLimiter
from shared.logging import get_logger
from shared.runtime import Runtime
from shared.settings import Settings

log = get_logger(__name__)

SOCKETIO_PATH = "ws/events"
REPLAY_STALL_SECONDS = 10.0


def allowed_origins(origins: list[str]) -> str | list[str] | None:
    """Settings -> engine.io: it checks `Origin` whenever a browser sends one. None is "same
    origin only" (our safe default); engine.io's own [] would switch the check off."""
    if "*" in origins:
        return "*"
    return origins or None


def token_from(environ: dict[str, Any], auth: Any) -> str | None:
    """The handshake's `auth: {"token"}`, else `Authorization: Bearer`, else `?token=`."""
    if isinstance(auth, dict) and isinstance(auth.get("token"), str):
        return str(auth["token"])
    token = bearer_token(environ.get("HTTP_AUTHORIZATION"))
    if token:
        return token
    values = parse_qs(environ.get("QUERY_STRING", "")).get("token")
    return values[0] if values else None


def refusal(error: str, detail: str) -> socketio.exceptions.ConnectionRefusedError:
    """A refused handshake. Clients get CONNECT_ERROR `{"message": detail, "data": {"error",
    "detail"}}`, as Node's `next(err)` with `err.data` sends it: socket.io-client makes it an
    Error whose `message` is the detail and whose `data` is our error object."""
    return socketio.exceptions.ConnectionRefusedError(detail, {"error": error, "detail": detail})


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ()))
    return f"{where}: {first['msg']}" if where else str(first["msg"])


class Gateway:
    def __init__(self, settings: Settings, broker: Broker, runtime: Runtime | None = None) -> None:
        self.settings = settings
        self.broker = broker
        # With a database (production sets MONGODB_URI; `dronecast dev` shares its store) a
        # snapshot lost with Redis's data is read from MongoDB instead.
        self.runtime = runtime
        self.sio = SocketIOServer(
            async_mode="asgi",
            cors_allowed_origins=allowed_origins(settings.cors_origins),
            max_http_buffer_size=64 * 1024,
            ping_interval=20,
            ping_timeout=20,
            logger=False,
            engineio_logger=False,
            # python-socketio's own looks through every room on each disconnect: O(clients).
            client_manager=internals.RoomIndexedManager(),
        )
        self.sink = FrameSink(self.sio, settings.client_queue_limit)
        self.hub = Hub(self.sink, self._cut_off_slow_client)
        self.relay = Relay(broker, self.hub, self._tell_everyone_events_were_lost)
        self._locks: dict[str, asyncio.Lock] = {}
        self._principals: dict[str, Principal] = {}
        self._client_keys: dict[str, str] = {}
        self._connections: Counter[str] = Counter()
        self._limiter = RateLimiter(
            settings.client_messages_per_second, settings.client_message_burst
        )
        self._tasks: set[asyncio.Task[Any]] = set()
        self.sio.on("connect", self.on_connect)
        self.sio.on("disconnect", self.on_disconnect)
        self.sio.on("subscribe", self.on_subscribe)
        self.sio.on("unsubscribe", self.on_unsubscribe)

    async def start(self) -> None:
        await self.relay.start()

    async def stop(self) -> None:
        await self.relay.stop()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- handlers ---------------------------------------------------------------------------

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        principal = self._authenticate(environ, auth)
        key = (
            f"sub:{principal.sub}"
            if principal is not ANONYMOUS_ADMIN
            else f"ip:{environ.get('REMOTE_ADDR', 'unknown')}"
        )
        if self._connections[key] >= self.settings.connections_per_client:
            raise refusal("TooManyConnections", "too many connections for this client")
        self._connections[key] += 1
        self._client_keys[sid] = key
        self._principals[sid] = principal
        eio_sid = self.sio.manager.eio_sid_from_sid(sid, "/")
        client = self.hub.connect(sid, eio_sid)
        self._locks[sid] = asyncio.Lock()
        # Runs after python-socketio has queued its CONNECT packet, so `connected` follows it.
        self._spawn(self._greet(client))

    async def _greet(self, client: Client) -> None:
        self.hub.send(client, json_frame("connected", {"clientId": client.sid}))

    def _authenticate(self, environ: dict[str, Any], auth: Any) -> Principal:
        """Refuse the handshake (connect_error) without a valid token, before anything else."""
        if not self.settings.auth_enabled:
            return ANONYMOUS_ADMIN
        token = token_from(environ, auth)
        if token is None:
            raise refusal("Unauthorized", "send auth: {token: <bearer token>}")
        try:
            principal = verify_token(self.settings, token)
            principal.require(Action.SUBSCRIBE)
        except DroneCastError as exc:
            raise refusal(exc.error, exc.detail) from exc
        return principal

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        self._locks.pop(sid, None)
        self._principals.pop(sid, None)
        key = self._client_keys.pop(sid, None)
        if key is not None:
            self._connections[key] -= 1
            if self._connections[key] <= 0:
                del self._connections[key]
        if self.hub.disconnect(sid) is not None:
            self.relay.release_unwanted()

    async def on_subscribe(self, sid: str, data: Any = None) -> dict[str, Any]:
        client = self.hub.clients.get(sid)
        if client is None:
            return {"ok": False, "error": "not connected"}
        if not self._limiter.allow(self._client_keys.get(sid, sid)):
            return await self._refuse(client, "RateLimited", "too many messages; slow down")
        try:
            request = SubscribeRequest.model_validate(data if data is not None else {})
        except ValidationError as exc:
            return await self._refuse(client, "InvalidSubscribe", _describe(exc))
        principal = self._principals[sid]
        if request.all and principal.drones is not None:
            # "All" for a token limited to some drones means all of *its* drones.
            request = request.model_copy(
                update={"all": False, "droneSerials": sorted(principal.drones)}
            )
        serials = request.serials
        hidden = sorted(serial for serial in serials if not principal.may_see(serial))
        if hidden:
            return await self._refuse(
                client, "Forbidden", f"the token may not subscribe to {', '.join(hidden[:5])}"
            )
        if len(client.serials | serials) > self.settings.subscriptions_per_client:
            limit = self.settings.subscriptions_per_client
            return await self._refuse(
                client, "TooManySubscriptions", f"at most {limit} drone subscriptions per client"
            )
        async with self._locks[sid]:
            try:
                return await self._subscribe(client, request, serials)
            except (BrokerUnavailable, RedisError, OSError) as exc:
                # The bus is away: say so plainly rather than leave the client waiting.
                self.hub.unsubscribe(client, request.all, serials)
                self.relay.release_unwanted()
                log.warning("subscribe_failed_bus_unavailable", sid=sid, error=str(exc))
                return await self._refuse(
                    client, "ServiceUnavailable", "the event bus is unavailable; try again"
                )

    async def on_unsubscribe(self, sid: str, data: Any = None) -> dict[str, Any]:
        client = self.hub.clients.get(sid)
        if client is None:
            return {"ok": False, "error": "not connected"}
        if not self._limiter.allow(self._client_keys.get(sid, sid)):
            return await self._refuse(client, "RateLimited", "too many messages; slow down")
        try:
            request = SubscribeRequest.model_validate(data if data is not None else {})
        except ValidationError as exc:
            return await self._refuse(client, "InvalidUnsubscribe", _describe(exc))
        self.hub.unsubscribe(client, request.all, request.serials)
        self.relay.release_unwanted()
        return {"ok": True, **self._subscribed(client)}

    # --- subscribe with catch-up ------------------------------------------------------------

    async def _subscribe(
        self, client: Client, request: SubscribeRequest, serials: set[str]
    ) -> dict[str, Any]:
        client.held = []
        replayed_to = ""
        floors: dict[str, str] = {}
        ack: dict[str, Any] = {"ok": True}
        try:
            self.hub.subscribe(client, request.all, serials)
            await self.relay.watch(request.all, serials)
            # Every event after this one reaches the client (live, or replayed below): a client
            # that receives none before it reconnects resumes from here.
            latest = await self.broker.latest_id()
            if latest:  # none yet: resume from the start of the retained stream
                ack["latestEventId"] = latest
            if request.snapshot and serials:
                ack["snapshots"] = {}
                for serial in sorted(serials):
                    snapshot = await self._snapshot(serial)
                    payload = {
                        "serial": serial,
                        "eventId": snapshot.event_id if snapshot else None,
                        "state": snapshot.state if snapshot else None,
                    }
                    self.hub.send(client, json_frame("drone:snapshot", payload))
                    ack["snapshots"][serial] = payload
                    if snapshot is not None and snapshot.event_id:
                        floors[serial] = snapshot.event_id
            if request.lastEventId:
                scope = None if request.all else frozenset(serials)
                history = await self.broker.history(request.lastEventId, scope)
                ack["recovered"] = history.recovered
                metrics.REPLAYS.labels("recovered" if history.recovered else "gap").inc()
                if history.recovered:
                    replayed_to = request.lastEventId
                    for event in history.events:
                        if not await self._paced(client):
                            break
                        self._send_event(client, event)
                        replayed_to = event.id
                    ack["replayed"] = len(history.events)
                    metrics.REPLAYED_EVENTS.inc(len(history.events))
        finally:
            held, client.held = client.held or [], None
            in_scope = (lambda serial: True) if request.all else serials.__contains__
            for event, pkt in held:
                if event.serial is not None and in_scope(event.serial) and event.id:
                    if not id_after(event.id, replayed_to):
                        continue  # already sent by the replay
                    floor = floors.get(event.serial, "")
                    if not id_after(event.id, floor):
                        continue  # already part of the snapshot
                self.hub.send(client, pkt)
        ack.update(self._subscribed(client))
        return ack

    async def _snapshot(self, serial: str) -> Snapshot | None:
        snapshot = await self.broker.snapshot(serial)
        if snapshot is not None or self.runtime is None or self.runtime.database is None:
            return snapshot
        # Redis lost it (restart without persistence). Events newer than `floor` may also be in
        # the state read below; they are sent anyway, and they are never older than it.
        floor = await self.broker.latest_id(serial)
        drone = await drone_repository.get_by_serial(serial)
        if drone is None:
            return None
        return Snapshot(event_id=floor or None, state=drone.public())

    async def _paced(self, client: Client) -> bool:
        """Before each replayed frame: wait while the client's queue is over half full, so a
        long replay goes at the client's reading speed instead of overflowing its bound.
        False when the client stopped reading altogether (it is then cut off as slow)."""
        limit = self.settings.client_queue_limit // 2
        waited = 0.0
        while self.sink.backlog(client.eio_sid) >= limit:
            # Looked up each time: an upgrade from long-polling replaces the socket.
            socket = self.sio.eio.sockets.get(client.eio_sid)
            if socket is None or client.cut_off or socket.closed:
                return False
            if waited > REPLAY_STALL_SECONDS:
                self.hub.send(client, json_frame("error", {"error": "SlowConsumer"}))
                return False
            await asyncio.sleep(0.005)
            waited += 0.005
        return not client.cut_off

    def _send_event(self, client: Client, event: PublishedEvent) -> None:
        _, kind = parse_channel(event.channel)
        self.hub.send(client, event_frame(sio_event_for_kind(kind), event.envelope))

    @staticmethod
    def _subscribed(client: Client) -> dict[str, Any]:
        return {"all": client.all, "droneSerials": sorted(client.serials)}

    async def _refuse(self, client: Client, error: str, detail: str) -> dict[str, Any]:
        """Tell a client what was wrong: in the ack, and as an `error` event for clients
        that emit without an ack callback (seed 001's snippets do)."""
        self.hub.send(client, json_frame("error", {"error": error, "detail": detail}))
        return {"ok": False, "error": error, "detail": detail}

    def _tell_everyone_events_were_lost(self, scope: LostScope) -> None:
        """The bus lost events we cannot replay (Redis lost its data, the outage outlasted
        retention, or a cluster master failed over before it replicated them). Subscribers whose
        drones they may concern could hold stale state: say so, so they can reload it. Events
        after the notice follow as usual."""
        notice = json_frame(
            "error",
            {
                "error": "EventsLost",
                "detail": "the event bus lost events that cannot be replayed; reload state",
            },
        )
        for client in list(self.hub.clients.values()):
            if (client.all and scope.covers(None)) or any(map(scope.covers, client.serials)):
                self.hub.send(client, notice)

    # --- slow clients -----------------------------------------------------------------------

    def _cut_off_slow_client(self, client: Client) -> None:
        self._spawn(self._disconnect_slow(client))

    async def _disconnect_slow(self, client: Client) -> None:
        dropped = self.sink.discard_queued(client.eio_sid)
        log.warning("slow_client_disconnected", sid=client.sid, dropped_frames=dropped)
        reason = {
            "error": "SlowConsumer",
            "code": CLOSE_SLOW_CONSUMER,
            "detail": "too many undelivered events; reconnect and subscribe with lastEventId",
        }
        self.sink.send(client.eio_sid, json_frame("error", reason))
        # Close at the engine.io level, without waiting for the queue to drain (it will not):
        # clients see a transport close and reconnect by themselves, then resume with
        # lastEventId. A Socket.IO DISCONNECT would tell them not to come back.
        socket = self.sio.eio.sockets.get(client.eio_sid)
        if socket is not None:
            await socket.close(wait=False, reason=SLOW_CONSUMER)
