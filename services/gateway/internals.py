"""Every use of a private part of python-engineio, python-socketio and uvicorn, in one place.

The gateway's lean connection (`wire.py`), its frame lanes (`transport.py`) and its Socket.IO
client manager (`RoomIndexedManager`, which `server.py` gives python-socketio) reach past these
libraries' public APIs, for memory and speed. Each reliance is one name here, with what it
relies on. `check()` verifies them all: the gateway runs it when it starts (an incompatible
upgrade stops it with a message naming the reliance, instead of misbehaving later), and
`tests/services/gateway/test_internals.py` runs it and tries each behaviour. pyproject.toml caps
these packages at the majors this was tested on.

What the gateway relies on:

python-engineio (`engineio.AsyncServer` and its sockets)
- `AsyncServer._trigger_event(event, *args, run_async=...)` runs the `connect`, `message` and
  `disconnect` handlers that python-socketio installed, and returns the handler's result (a
  refused connect returns something other than None/True). `trigger_event` below.
- `AsyncServer._cors_allowed_origins(environ)` gives the origins a request may come from
  (None: any). `allowed_origins` below.
- `AsyncServer.sockets` maps engine.io session ids to socket objects, and python-engineio and
  python-socketio find a client's socket there: a lean connection puts itself in it.
  `AsyncServer.generate_id()` makes a session id. `engine_sockets`, `new_sid`.
- A socket takes its send queue from `server.create_queue()` when it is created, and its writer
  task waits with `asyncio.wait_for(queue.get(), ...)`: the lanes' queue replaces it.
  `use_queue_factory`.
- engine.io's ASGI app looks `engineio_server.handle_request` up on every request, so wrapping
  that attribute sees each WebSocket upgrade. `wrap_handle_request`.
- A socket has the plain attributes in `ENGINE_SOCKET_FIELDS` (`queue`, `upgraded`, `upgrading`,
  `connected`, `closed`, `closing`, `session`), which the upgrade from long-polling and the lanes
  read and set as python-engineio's own socket does.
- `engineio.packet.Packet.encode()` returns `encode_cache` when it is set, so a frame is
  encoded once for every recipient. `precoded`.
- `engineio.async_drivers.asgi.ASGIApp` (python-socketio's ASGIApp is one) keeps the server in
  `engineio_server` and its path in `engineio_path`. `socketio_app_parts`.

python-socketio (`socketio.AsyncServer`), for `protocol.py`'s Node-like answers
- The server registers its bound methods `_handle_eio_connect`, `_handle_eio_message` and
  `_handle_eio_disconnect` as engine.io's handlers when it is created, so a subclass that
  overrides them sees every connection, message and disconnection; it creates its engine.io
  server with `_engineio_server_class()`. It keeps a half-received binary packet in
  `_binary_packet` (by engine.io sid) and sends a packet with `_send_packet(eio_sid, pkt)`.
- python-engineio answers a long-polling POST with `_ok()`, a dict whose `response` is the
  body (`b"OK"`).

python-socketio's client manager (`socketio.AsyncManager`), for `RoomIndexedManager`
- The manager keeps `rooms[namespace][room]`, a bidict of sid -> engine.io sid, where the room
  `None` holds every connected client and each client also has a room named after its sid.
  Every change to it goes through `basic_enter_room(sid, namespace, room, eio_sid=None)` and
  `basic_leave_room(sid, namespace, room)` (connect, enter/leave/close room, disconnect all
  do), and a client's disconnect through `basic_disconnect(sid, namespace)`, which also forgets
  its `callbacks[sid]` and its entries in the `pending_connect[namespace]` and
  `pending_disconnect[namespace]` lists. `get_rooms(sid, namespace)` lists a client's rooms.
  check() runs the same connects, room changes and disconnects on python-socketio's own
  manager and on ours and requires the same state.

uvicorn
- `uvicorn.protocols.websockets.websockets_sansio_impl.WebSocketsSansIOProtocol(config,
  server_state, app_state)` is the WebSocket protocol every other upgrade falls back to.
  `fallback_protocol`.
- That protocol, behind an ASGI `send` (`send.__self__`), has `conn` (websockets' sans-I/O
  connection, with `extensions`), `transport`, `writable` (an Event cleared while the transport
  is paused), `close_sent` and `disconnected`. `sansio_protocol_behind`.
- `Config.loaded_app` is the app uvicorn serves, middlewares and all; `ProxyHeadersMiddleware`
  keeps its trusted proxies in `trusted_hosts` (with `get_trusted_client_address`).
  `loaded_app`, `proxy_trusted_hosts`.
- `ServerState.connections` is the set of live protocols; uvicorn calls `shutdown()` on each
  when it stops. `ServerState.default_headers` are the headers it adds to every response.
  `server_connections`, `server_default_headers`.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable, Coroutine
from importlib.metadata import version
from typing import TYPE_CHECKING, Any

import engineio
import socketio
from bidict import bidict
from engineio import packet as eio_packet
from engineio.async_drivers.asgi import ASGIApp as EngineIOASGIApp
from engineio.async_socket import AsyncSocket as EngineIOSocket
from uvicorn.config import Config
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState

if TYPE_CHECKING:
    from engineio.async_server import AsyncServer as EngineIOServer

ENGINE_SOCKET_FIELDS = (
    "queue",
    "upgraded",
    "upgrading",
    "connected",
    "closed",
    "closing",
    "session",
)
SANSIO_FIELDS = ("conn", "transport", "writable", "close_sent", "disconnected")


class IncompatibleDependency(RuntimeError):
    """An upgrade of python-engineio, python-socketio or uvicorn changed what the gateway
    relies on (this module's docstring lists it)."""


# --- python-engineio -----------------------------------------------------------------------


async def trigger_event(eio: EngineIOServer, event: str, *args: Any, run_async: bool) -> Any:
    """Run python-socketio's handler for an engine.io event, as engine.io's own socket does."""
    return await eio._trigger_event(event, *args, run_async=run_async)


def allowed_origins(eio: EngineIOServer, environ: dict[str, Any]) -> list[str] | None:
    """The origins this request may come from, by the server's CORS setting (None: any)."""
    allowed: list[str] | None = eio._cors_allowed_origins(environ)
    return allowed


def engine_sockets(eio: EngineIOServer) -> dict[str, Any]:
    """engine.io's sockets by session id (a lean connection is one of them)."""
    sockets: dict[str, Any] = eio.sockets
    return sockets


def new_sid(eio: EngineIOServer) -> str:
    return str(eio.generate_id())


def use_queue_factory(eio: EngineIOServer, factory: Callable[[], Any]) -> None:
    """Sockets created from now on get their send queue from `factory`."""
    eio.create_queue = lambda *args, **kwargs: factory()


def wrap_handle_request(
    eio: EngineIOServer, wrap: Callable[[Callable[..., Any]], Callable[..., Any]]
) -> None:
    """Put `wrap(handle_request)` in front of every request engine.io's ASGI app hands on."""
    eio.handle_request = wrap(eio.handle_request)


def socketio_app_parts(app: Any) -> tuple[EngineIOServer, str] | None:
    """The engine.io server and path of a python-socketio (or engine.io) ASGI app, else None."""
    if not isinstance(app, EngineIOASGIApp):
        return None
    # python-socketio's ASGIApp holds the Socket.IO server, which holds engine.io's.
    eio = getattr(app.engineio_server, "eio", app.engineio_server)
    return eio, app.engineio_path


class PrecodedPacket(eio_packet.Packet):
    """An engine.io packet whose encoding is given, so it is encoded once for everyone."""

    def __init__(self, packet_type: int, data: str, encoded: str) -> None:
        super().__init__(packet_type, data=data)
        self.encode_cache = encoded  # what `encode()` returns, and so what the writer sends


def precoded(packet_type: int, data: str, encoded: str) -> PrecodedPacket:
    return PrecodedPacket(packet_type, data, encoded)


# --- python-socketio -----------------------------------------------------------------------


class RoomIndexedManager(socketio.AsyncManager):
    """python-socketio's manager, with each client's rooms indexed by client.

    Upstream's `basic_disconnect` looks for the client in every room of the namespace, and
    every client has a room of its own: each disconnect costs O(clients), so N clients leaving
    at once cost O(N^2) (10k: seconds of CPU, during which nothing else is delivered). Here the
    rooms of each client are kept beside `rooms`, so a disconnect leaves just those. `rooms`
    itself stays as upstream keeps it: emits, `get_participants` and the sid <-> engine.io sid
    lookups read it. (`pending_connect`/`pending_disconnect` stay upstream's lists: they hold
    only the clients inside a connect or disconnect handler, which here do not wait.)
    """

    def __init__(self) -> None:
        super().__init__()
        # namespace -> sid -> the rooms it is in (a dict as an ordered set; None included)
        self.rooms_of: dict[str, dict[str, dict[Any, None]]] = {}

    def basic_enter_room(self, sid: str, namespace: str, room: Any, eio_sid: Any = None) -> None:
        super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)
        self.rooms_of.setdefault(namespace, {}).setdefault(sid, {})[room] = None

    def basic_leave_room(self, sid: str, namespace: str, room: Any) -> None:
        super().basic_leave_room(sid, namespace, room)
        by_sid = self.rooms_of.get(namespace)
        rooms = by_sid.get(sid) if by_sid is not None else None
        if by_sid is None or rooms is None:
            return
        rooms.pop(room, None)
        if not rooms:
            del by_sid[sid]
            if not by_sid:
                del self.rooms_of[namespace]

    def basic_disconnect(self, sid: str, namespace: str, **kwargs: Any) -> None:
        """Upstream's, leaving the client's own rooms instead of searching all of them."""
        if namespace not in self.rooms:
            return
        for room in list(self.rooms_of.get(namespace, {}).get(sid, ())):
            self.basic_leave_room(sid, namespace, room)
        self.callbacks.pop(sid, None)
        for pending in (self.pending_connect, self.pending_disconnect):
            sids = pending.get(namespace)
            if sids is not None and sid in sids:
                sids.remove(sid)
                if not sids:
                    del pending[namespace]

    def get_rooms(self, sid: str, namespace: str) -> list[Any]:
        """The rooms a client is in, in the order it entered them."""
        return [room for room in self.rooms_of.get(namespace, {}).get(sid, ()) if room is not None]


def _rooms_by_scan(manager: socketio.AsyncManager) -> dict[str, dict[str, set[Any]]]:
    """Each client's rooms as upstream finds them: by looking through every room."""
    found: dict[str, dict[str, set[Any]]] = {}
    for namespace, rooms in manager.rooms.items():
        for room, members in rooms.items():
            for sid in members:
                found.setdefault(namespace, {}).setdefault(sid, set()).add(room)
    return found


async def _exercise_manager(manager: socketio.AsyncManager, snapshot: Callable[[], None]) -> None:
    """Connects, room changes and disconnects, each way python-socketio makes them, with a
    snapshot of the manager's state after each."""
    a = await manager.connect("eio-a", "/")
    b = await manager.connect("eio-b", "/")
    c = await manager.pre_connect("eio-c", "/")  # as while its connect handler runs
    await manager.connect("eio-b", "/chat")
    snapshot()
    for sid, room in ((a, "fleet"), (b, "fleet"), (a, "alerts"), (b, "alerts")):
        await manager.enter_room(sid, "/", room)
    snapshot()
    await manager.leave_room(b, "/", "fleet")
    await manager.close_room("alerts", "/")
    snapshot()
    manager.pre_disconnect(a, "/")
    snapshot()
    await manager.disconnect(a, "/", ignore_queue=True)
    await manager.disconnect(c, "/", ignore_queue=True)  # refused by its connect handler
    snapshot()


def _manager_state(manager: socketio.AsyncManager) -> dict[str, Any]:
    plain = {"rooms", "rooms_of", "callbacks", "pending_connect", "pending_disconnect"}
    return {
        "rooms": {
            ns: {room: dict(members) for room, members in rooms.items()}
            for ns, rooms in manager.rooms.items()
        },
        "get_rooms": {
            sid: sorted(manager.get_rooms(sid, "/"), key=str) for sid in ("sid-a", "sid-b")
        },
        "callbacks": dict(manager.callbacks),
        "pending_connect": {ns: list(sids) for ns, sids in manager.pending_connect.items()},
        "pending_disconnect": {ns: list(sids) for ns, sids in manager.pending_disconnect.items()},
        "attributes": sorted(set(vars(manager)) - plain),
    }


def _run_now(coro: Coroutine[Any, Any, None]) -> None:
    """Run a coroutine that never waits (check() may be called inside a running loop)."""
    try:
        coro.send(None)
    except StopIteration:
        return
    coro.close()
    _require(False, "socketio's manager updating its rooms without waiting")


def _check_manager() -> None:
    """The same operations on python-socketio's manager and on RoomIndexedManager must leave
    the same state after each step, with the index true to `rooms`."""
    used: list[str] = []

    class Probe(RoomIndexedManager):
        def basic_disconnect(self, sid: str, namespace: str, **kwargs: Any) -> None:
            used.append(sid)
            super().basic_disconnect(sid, namespace, **kwargs)

    upstream, probe = socketio.AsyncManager(), Probe()
    states: dict[int, list[dict[str, Any]]] = {id(upstream): [], id(probe): []}
    index_true = True

    for manager in (upstream, probe):
        sio = socketio.AsyncServer(async_mode="asgi", client_manager=manager)
        sio.eio.generate_id = iter(["sid-a", "sid-b", "sid-c", "sid-b2"]).__next__

        def snapshot(manager: socketio.AsyncManager = manager) -> None:
            nonlocal index_true
            states[id(manager)].append(_manager_state(manager))
            if isinstance(manager, RoomIndexedManager):
                indexed = {
                    ns: {sid: set(rooms) for sid, rooms in by_sid.items()}
                    for ns, by_sid in manager.rooms_of.items()
                }
                index_true = index_true and indexed == _rooms_by_scan(manager)

        _run_now(_exercise_manager(manager, snapshot))
    _require(
        all(isinstance(room, bidict) for rooms in probe.rooms.values() for room in rooms.values()),
        "socketio's manager keeping rooms[namespace][room] as a bidict of sid -> engine.io sid",
    )
    _require(
        used == ["sid-a", "sid-c"],
        "socketio's manager disconnecting a client through basic_disconnect(sid, namespace)",
    )
    _require(
        index_true and states[id(upstream)] == states[id(probe)],
        "socketio's manager changing rooms only through basic_enter_room/basic_leave_room and "
        "forgetting a client in basic_disconnect (RoomIndexedManager must keep the same state)",
    )


# --- uvicorn -------------------------------------------------------------------------------


def fallback_protocol(config: Config, server_state: ServerState, app_state: dict[str, Any]) -> Any:
    """uvicorn's own WebSocket protocol, for the upgrades that do not go lean."""
    return WebSocketsSansIOProtocol(config=config, server_state=server_state, app_state=app_state)


def sansio_protocol_behind(send: Any) -> Any:
    """uvicorn's websockets-sansio protocol behind an ASGI `send`, if that is what it is and
    the connection negotiated no extension (a prebuilt frame must go out as it is)."""
    proto = getattr(send, "__self__", None)
    if not isinstance(proto, WebSocketsSansIOProtocol):
        return None
    if getattr(proto.conn, "extensions", None):
        return None
    return proto


def loaded_app(config: Config) -> Any:
    return config.loaded_app


def proxy_trusted_hosts(app: Any) -> Any:
    """The trusted proxies of uvicorn's proxy-headers middleware, if `app` is one."""
    return app.trusted_hosts if isinstance(app, ProxyHeadersMiddleware) else None


def server_connections(server_state: ServerState) -> set[Any]:
    return server_state.connections


def server_default_headers(server_state: ServerState) -> list[tuple[bytes, bytes]]:
    return server_state.default_headers


# --- the check -----------------------------------------------------------------------------


def _versions() -> str:
    names = ("python-engineio", "python-socketio", "uvicorn", "websockets")
    return ", ".join(f"{name} {version(name)}" for name in names)


def _require(ok: bool, what: str) -> None:
    if not ok:
        raise IncompatibleDependency(
            f"the gateway relies on {what}, which the installed versions ({_versions()}) no "
            "longer provide; install the versions pyproject.toml allows, or update "
            "services/gateway/internals.py (its docstring lists every reliance)"
        )


@functools.cache
def check() -> None:
    """Raise IncompatibleDependency, naming the reliance, if any of the above is gone (once
    per process: the frame sink runs it when a gateway is built)."""
    server = engineio.AsyncServer(async_mode="asgi")
    trigger = getattr(server, "_trigger_event", None)
    _require(
        trigger is not None and inspect.iscoroutinefunction(trigger),
        "engineio.AsyncServer._trigger_event (a coroutine method)",
    )
    _require(
        callable(getattr(server, "_cors_allowed_origins", None)),
        "engineio.AsyncServer._cors_allowed_origins(environ)",
    )
    _require(
        isinstance(getattr(server, "sockets", None), dict) and callable(server.generate_id),
        "engineio.AsyncServer.sockets (a dict) and generate_id()",
    )
    _require(
        callable(getattr(server, "handle_request", None)) and callable(server.create_queue),
        "engineio.AsyncServer.handle_request and create_queue",
    )
    marker = object()
    use_queue_factory(server, lambda: marker)
    socket = EngineIOSocket(server, "sid")
    _require(
        socket.queue is marker,
        "engine.io sockets taking their queue from server.create_queue()",
    )
    _require(
        all(hasattr(socket, field) for field in ENGINE_SOCKET_FIELDS),
        f"engine.io socket attributes {', '.join(ENGINE_SOCKET_FIELDS)}",
    )
    packet = precoded(eio_packet.MESSAGE, "x", "4precoded")
    _require(
        packet.encode() == "4precoded", "engineio.packet.Packet.encode() returning encode_cache"
    )
    app = EngineIOASGIApp(server, engineio_path="probe")
    parts = socketio_app_parts(app)
    _require(
        parts is not None and parts[0] is server and parts[1].strip("/") == "probe",
        "engine.io's ASGIApp keeping engineio_server and engineio_path",
    )
    sio = socketio.AsyncServer(async_mode="asgi")
    _require(
        all(
            sio.eio.handlers.get(event) == getattr(sio, f"_handle_eio_{event}", None)
            for event in ("connect", "message", "disconnect")
        ),
        "socketio.AsyncServer registering _handle_eio_connect/message/disconnect with engine.io",
    )
    _require(
        callable(getattr(sio, "_engineio_server_class", None))
        and isinstance(getattr(sio, "_binary_packet", None), dict)
        and inspect.iscoroutinefunction(getattr(sio, "_send_packet", None)),
        "socketio.AsyncServer._engineio_server_class, _binary_packet and _send_packet",
    )
    _require(server._ok().get("response") == b"OK", "engineio.AsyncServer._ok() (a POST's answer)")
    params = inspect.signature(WebSocketsSansIOProtocol.__init__).parameters
    _require(
        {"config", "server_state", "app_state"} <= set(params),
        "uvicorn's WebSocketsSansIOProtocol(config, server_state, app_state)",
    )
    state = ServerState()
    _require(
        isinstance(getattr(state, "connections", None), set)
        and isinstance(getattr(state, "default_headers", None), list),
        "uvicorn's ServerState.connections and default_headers",
    )
    _check_manager()
    config = Config(app=app, ws="websockets-sansio", log_config=None)
    config.load()
    _require(hasattr(config, "loaded_app"), "uvicorn's Config.loaded_app")
    proxy = ProxyHeadersMiddleware(app, trusted_hosts="127.0.0.1")
    trusted = proxy_trusted_hosts(proxy)
    _require(
        trusted is not None
        and "127.0.0.1" in trusted
        and callable(getattr(trusted, "get_trusted_client_address", None)),
        "uvicorn's ProxyHeadersMiddleware.trusted_hosts",
    )
    loop = asyncio.new_event_loop()
    try:
        proto = WebSocketsSansIOProtocol(
            config=config, server_state=state, app_state={}, _loop=loop
        )
        _require(
            all(hasattr(proto, field) for field in SANSIO_FIELDS)
            and isinstance(proto.writable, asyncio.Event),
            f"uvicorn's websockets-sansio protocol attributes {', '.join(SANSIO_FIELDS)}",
        )
        _require(callable(getattr(proto, "shutdown", None)), "uvicorn calling shutdown()")
    finally:
        loop.close()
