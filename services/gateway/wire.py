"""Socket.IO clients on a lean WebSocket connection: one small object per client, no task.

A client connected through uvicorn's WebSocket protocol and python-engineio's socket costs about
37 KB while idle: an ASGI task and an engine.io writer task (each a stack of coroutines), a
ping task, queues and events, and uvicorn's and websockets' protocol state. Node's Socket.IO
needs about 13 KB. Here a client that opens `/ws/events/?EIO=4&transport=websocket` is served
by `EngineSocket`, an asyncio protocol that is at once the WebSocket connection and the
engine.io socket python-engineio keeps in `eio.sockets`:

- it reads and writes WebSocket frames itself (RFC 6455: masking, fragmentation, ping/pong,
  close, size limit, UTF-8), and speaks engine.io v4 (OPEN, PING/PONG, MESSAGE, CLOSE);
- every Socket.IO packet it receives goes to python-socketio's handlers through python-
  engineio's `_trigger_event`, exactly as python-engineio's own socket does it, so
  python-socketio remains the protocol and handler layer (namespaces, acks, connect/refuse,
  binary attachments);
- what python-socketio sends comes back through `send(pkt)`, and events from the hub are
  prebuilt frames: all go out through one ordered lane (`pending` bytes written once at the
  end of the event-loop tick, then a bounded `backlog` while the transport is paused);
- pings are two timer callbacks; a task exists only while received messages are handed on.

Everything else (long-polling, an upgrade from polling, an unknown path, a bad handshake, and
the api's device WebSockets) is left to uvicorn's websockets-sansio protocol and python-
engineio, as before: `WebSocketProtocol` looks at the upgrade request and picks one.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import weakref
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qs, unquote

import orjson
from engineio import packet as eio_packet

from services.gateway import internals

try:  # the C version that ships with websockets, if it was built
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover
    from websockets.utils import apply_mask

if TYPE_CHECKING:
    from engineio.async_server import AsyncServer as EngineIOServer
    from uvicorn.config import Config
    from uvicorn.server import ServerState

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

CLOSE_NORMAL = 1000
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_UNSUPPORTED = 1003
CLOSE_INVALID_DATA = 1007
CLOSE_TOO_BIG = 1009
CLOSE_SERVICE_RESTART = 1012
CLOSE_SLOW_CONSUMER = 3008  # Centrifugo's "slow" disconnect code
# The codes below 3000 an endpoint may put in a close frame (RFC 6455 section 7.4.1 and IANA's
# registry). 1004 is reserved, 1005, 1006 and 1015 only ever report a close locally, and the
# rest up to 2999 are kept for future RFCs; 3000-4999 belong to libraries and applications.
SENDABLE_CLOSE_CODES = frozenset((1000, 1001, 1002, 1003, *range(1007, 1015)))
SLOW_CONSUMER = "slow consumer"  # the close reason the gateway gives a client cut off as slow

CLOSE_TIMEOUT = 5.0  # how long a closing connection may keep its socket before it is aborted
INBOX_PAUSE = 64  # received messages waiting for their handler before reading pauses

# engine.io packets the server sends, prebuilt as WebSocket text frames.
PING_FRAME = b"\x81\x012"
CLOSE_PACKET_FRAME = b"\x81\x011"

_CONNECT = object()  # inbox marker: run engine.io's connect event first


def ws_frame(payload: bytes, opcode: int = OP_TEXT) -> bytes:
    """An unmasked, unfragmented, uncompressed WebSocket frame (server to client)."""
    n = len(payload)
    first = 0x80 | opcode
    if n < 126:
        header = bytes((first, n))
    elif n < 65536:
        header = bytes((first, 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((first, 127)) + n.to_bytes(8, "big")
    return header + payload


def close_answer(payload: bytes) -> tuple[int, str]:
    """How to answer a client's close frame: its own code echoed (1000 if it gave none), or,
    when the frame breaks RFC 6455, the error code and why (sections 5.5.1 and 7.4)."""
    if not payload:
        return CLOSE_NORMAL, ""
    if len(payload) == 1:
        return CLOSE_PROTOCOL_ERROR, "close payload of one byte"
    code = int.from_bytes(payload[:2], "big")
    if code not in SENDABLE_CLOSE_CODES and not 3000 <= code <= 4999:
        return CLOSE_PROTOCOL_ERROR, "invalid close code"
    try:
        payload[2:].decode()
    except UnicodeDecodeError:
        return CLOSE_INVALID_DATA, "close reason is not UTF-8"
    return code, ""


def close_frame(code: int, reason: str = "") -> bytes:
    return ws_frame(code.to_bytes(2, "big") + reason.encode()[:120], OP_CLOSE)


def packet_frame(pkt: eio_packet.Packet) -> bytes:
    """The WebSocket frame of any engine.io packet (prebuilt on gateway event frames)."""
    prebuilt = getattr(pkt, "ws", None)
    if prebuilt is not None:
        return prebuilt
    encoded = pkt.encode()
    if isinstance(encoded, bytes):  # a binary MESSAGE: a binary frame, as is
        return ws_frame(encoded, OP_BINARY)
    return ws_frame(encoded.encode())


class LaneOwner(Protocol):
    """Who feeds the lean connections (transport.FrameSink): it writes their pending frames
    at the end of the tick and hears when an upgrade from long-polling is done."""

    queue_limit: int

    def dirty(self, lane: PendingFrames) -> None: ...

    def replace(self, eio_sid: str, sock: EngineSocket) -> None: ...


class Endpoint:
    """What the lean connections to one Socket.IO app share."""

    __slots__ = ("connections", "default_headers", "eio", "loop", "path", "sink", "trusted")

    def __init__(
        self,
        eio: EngineIOServer,
        sink: LaneOwner,
        path: str,
        trusted: Any,
        server_state: ServerState,
    ) -> None:
        self.eio = eio
        self.sink = sink
        self.path = path
        self.trusted = trusted
        self.connections = internals.server_connections(server_state)
        self.default_headers = internals.server_default_headers(server_state)
        self.loop = asyncio.get_running_loop()

    def open_payload(self, sid: str) -> bytes:
        eio = self.eio
        return b"0" + orjson.dumps(
            {
                "sid": sid,
                "upgrades": [],
                "pingTimeout": int(eio.ping_timeout * 1000),
                # In milliseconds, sub-second intervals too (python-engineio rounds the
                # seconds down first, so 0.3 s becomes 0).
                "pingInterval": int((eio.ping_interval + eio.ping_interval_grace_period) * 1000),
                "maxPayload": eio.max_http_buffer_size,
            }
        )


# Socket.IO servers whose WebSocket clients may go lean, with the frame sink that feeds them.
_sinks: weakref.WeakKeyDictionary[Any, LaneOwner] = weakref.WeakKeyDictionary()
_endpoints: weakref.WeakKeyDictionary[Any, Endpoint | None] = weakref.WeakKeyDictionary()


def serve_lean(eio: EngineIOServer, sink: LaneOwner) -> None:
    """Let this engine.io server's WebSocket clients be served by `EngineSocket`."""
    _sinks[eio] = sink


def _endpoint(config: Config, server_state: ServerState) -> Endpoint | None:
    """The Socket.IO app uvicorn serves (through its middlewares), if it may go lean."""
    try:
        return _endpoints[config]
    except KeyError:
        pass
    app, trusted, endpoint = internals.loaded_app(config), None, None
    for _ in range(16):
        trusted = internals.proxy_trusted_hosts(app) or trusted
        parts = internals.socketio_app_parts(app)
        if parts is not None:
            eio, path = parts
            sink = _sinks.get(eio)
            if sink is not None and path:
                endpoint = Endpoint(eio, sink, path, trusted, server_state)
            break
        app = getattr(app, "app", None)
    _endpoints[config] = endpoint
    return endpoint


class _Request:
    """The WebSocket upgrade request, as uvicorn hands it on (re-serialized, names lowercase)."""

    __slots__ = ("headers", "path", "query", "raw_path", "target")

    def __init__(self, data: bytes) -> None:
        head, _, _ = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        self.target = parts[1] if len(parts) == 3 else "/"
        self.raw_path, _, self.query = self.target.partition("?")
        self.path = unquote(self.raw_path)
        self.headers: list[tuple[str, str]] = []
        for line in lines[1:]:
            name, sep, value = line.partition(": ")
            if sep:
                self.headers.append((name.lower(), value))

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


def _switching(endpoint: Endpoint, key: str) -> bytes:
    """The 101 response to a WebSocket upgrade request with this Sec-WebSocket-Key."""
    accept = base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest())
    response = [
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept + b"\r\n"
    ]
    for name, value in endpoint.default_headers:
        response.append(name + b": " + value + b"\r\n")
    response.append(b"\r\n")
    return b"".join(response)


class WebSocketProtocol(asyncio.Protocol):
    """uvicorn's `ws` protocol class: lean for a gateway's Socket.IO WebSocket clients, and
    uvicorn's websockets-sansio protocol for everything else.

    uvicorn creates it on an upgrade, calls `connection_made` and `data_received(request)`,
    and then makes it the transport's protocol; on the next tick the chosen protocol takes
    over the transport. Until then this object passes every call on to it.
    """

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self._config = config
        self._server_state = server_state
        self._app_state = app_state
        self._transport: Any = None
        self._target: Any = None

    def connection_made(self, transport: Any) -> None:
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        if self._target is not None:
            self._target.data_received(data)
            return
        endpoint = _endpoint(self._config, self._server_state)
        target: Any = None
        if endpoint is not None:
            target = EngineSocket.accept(endpoint, self._transport, data)
        if target is None:
            target = internals.fallback_protocol(self._config, self._server_state, self._app_state)
            target.connection_made(self._transport)
            target.data_received(data)
        self._target = target
        asyncio.get_running_loop().call_soon(self._hand_over)

    def _hand_over(self) -> None:
        transport = self._transport
        if transport.get_protocol() is self:
            transport.set_protocol(self._target)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._target is not None:
            self._target.connection_lost(exc)

    def eof_received(self) -> bool | None:
        return self._target.eof_received() if self._target is not None else None

    def pause_writing(self) -> None:
        if self._target is not None:
            self._target.pause_writing()

    def resume_writing(self) -> None:
        if self._target is not None:
            self._target.resume_writing()


class PendingFrames:
    """A client's frames waiting for the end of the event-loop tick, when the frame sink writes
    them in one `transport.write`: one frame's bytes as they are (shared by all recipients, no
    copy), or a bytearray once a second one joins. Neither is tracked by the garbage collector,
    so a broadcast allocates no GC object per recipient. Both kinds of lane have it."""

    __slots__ = ("direct", "pending", "sink")

    direct: bool
    pending: bytes | bytearray | None
    sink: LaneOwner

    def push(self, ws: bytes) -> None:
        """Append a frame to what goes out at the end of this tick (only while `direct`)."""
        pending = self.pending
        if pending is None:
            self.pending = ws
            self.sink.dirty(self)
        elif pending.__class__ is bytearray:
            pending += ws
        else:
            joined = bytearray(pending)
            joined += ws
            self.pending = joined

    def flush(self) -> None:
        """Write what is pending (the frame sink calls it at the end of the tick)."""
        raise NotImplementedError


class EngineSocket(PendingFrames, asyncio.Protocol):
    """One Socket.IO client over WebSocket: the connection, its engine.io socket and its lane.

    As a lane (see transport.Lane) it has `direct`, `pending`, `push`, `offer`, `flush` and
    `discard`: frames go to `pending` and out at the end of the tick while the transport takes
    them, then to `backlog`, at most `queue_limit` frames, while it is paused.
    """

    __slots__ = (
        "_session",
        "backlog",
        "close_timer",
        "closed",
        "closing",
        "drainer",
        "endpoint",
        "environ",
        "failed",
        "fragments",
        "inbox",
        "ponged",
        "probed",
        "reading",
        "rx",
        "sid",
        "timer",
        "transport",
        "upgrade_from",
        "ws_closing",
    )

    connected = True
    upgraded = True
    upgrading = False

    def __init__(
        self, endpoint: Endpoint, transport: Any, sid: str, environ: dict[str, Any] | None
    ) -> None:
        self.endpoint = endpoint
        self.sink = endpoint.sink
        self.transport = transport
        self.sid = sid
        self.environ: dict[str, Any] | None = environ  # until engine.io's connect event has it
        self._session: dict[str, Any] | None = None
        self.closing = False  # the disconnect event has begun
        self.closed = False  # engine.io-closed: nothing more is sent
        self.ws_closing = False  # a close frame went out, or the transport is gone
        self.failed = False  # the client broke the protocol: what it sends is dropped
        self.direct = True
        self.pending: bytes | bytearray | None = None
        self.backlog: list[bytes] | None = None
        self.rx: bytearray | None = None
        self.fragments: list[Any] | None = None
        self.inbox: list[Any] = [_CONNECT]
        self.drainer: asyncio.Task[None] | None = None
        self.reading = True
        self.ponged = True
        self.probed = False  # an upgrade's `2probe` was answered
        # The long-polling socket this connection is upgrading (until the upgrade is done).
        self.upgrade_from: Any = None
        self.timer: asyncio.TimerHandle | None = None
        self.close_timer: asyncio.TimerHandle | None = None

    # --- the handshake ----------------------------------------------------------------------

    @classmethod
    def accept(cls, endpoint: Endpoint, transport: Any, data: bytes) -> EngineSocket | None:
        """Take over a new engine.io WebSocket connection, or None to leave it to engine.io
        (which also answers every bad request with its own error)."""
        request = _Request(data)
        path = request.path if request.path.endswith("/") else request.path + "/"
        if not path.startswith(endpoint.path):
            return None
        query = parse_qs(request.query)
        key = request.header("sec-websocket-key")
        if (
            query.get("transport") != ["websocket"]
            or "j" in query
            or (request.header("upgrade") or "").lower() != "websocket"
            or request.header("sec-websocket-version") != "13"
            or not key
        ):
            return None
        environ = cls._environ(endpoint, transport, request)
        eio = endpoint.eio
        origin = environ.get("HTTP_ORIGIN")
        if origin and eio.cors_allowed_origins != []:
            allowed = internals.allowed_origins(eio, environ)
            if allowed is not None and origin not in allowed:
                return None  # engine.io refuses it, and logs why
        if "sid" in query:
            return cls._accept_upgrade(endpoint, transport, key, query["sid"][0])
        if query.get("EIO") != ["4"]:
            return None
        sid = internals.new_sid(eio)
        sock = cls(endpoint, transport, sid, environ)
        transport.write(_switching(endpoint, key) + ws_frame(endpoint.open_payload(sid)))
        internals.engine_sockets(eio)[sid] = sock
        endpoint.connections.add(sock)
        sock.timer = endpoint.loop.call_later(eio.ping_interval, sock._ping)
        sock._wake()
        return sock

    @classmethod
    def _accept_upgrade(
        cls, endpoint: Endpoint, transport: Any, key: str, sid: str
    ) -> EngineSocket | None:
        """A long-polling client upgrading to WebSocket: it becomes lean once the upgrade is
        done (`2probe`, `3probe`, `5`, as python-engineio's socket does it). Until then its
        polling socket stays in charge; a failed upgrade leaves it polling."""
        old = internals.engine_sockets(endpoint.eio).get(sid)
        if (
            old is None
            or isinstance(old, EngineSocket)
            or not old.connected
            or old.upgraded
            or old.upgrading
            or old.closed
            or old.closing
        ):
            return None  # engine.io answers it (bad session, already upgraded, ...)
        sock = cls(endpoint, transport, sid, None)
        sock.inbox = []
        sock.upgrade_from = old
        old.upgrading = True  # as engine.io: polls get NOOP from now on
        transport.write(_switching(endpoint, key))
        endpoint.connections.add(sock)
        # An upgrade that does not finish within a ping timeout is given up.
        sock.timer = endpoint.loop.call_later(endpoint.eio.ping_timeout, sock._upgrade_expired)
        return sock

    @staticmethod
    def _environ(endpoint: Endpoint, transport: Any, request: _Request) -> dict[str, Any]:
        """The WSGI-style environ python-engineio's ASGI driver builds, for the handlers."""
        peer = transport.get_extra_info("peername")
        local = transport.get_extra_info("sockname")
        peer = peer if isinstance(peer, tuple) else (peer or "", 0)
        local = local if isinstance(local, tuple) else (local or "", 0)
        environ: dict[str, Any] = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": request.path,
            "QUERY_STRING": request.query,
            "RAW_URI": request.target,
            "SCRIPT_NAME": "",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": str(peer[0]),
            "REMOTE_PORT": str(peer[1]),
            "SERVER_NAME": str(local[0]),
            "SERVER_PORT": str(local[1]),
        }
        for name, value in request.headers:
            key = "HTTP_" + name.upper().replace("-", "_")
            environ[key] = f"{environ[key]},{value}" if key in environ else value
        trusted = endpoint.trusted
        if trusted is not None and environ["REMOTE_ADDR"] in trusted:
            forwarded = environ.get("HTTP_X_FORWARDED_FOR")
            if forwarded:
                host, port = trusted.get_trusted_client_address(forwarded)
                if host:
                    environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = host, str(port)
        environ["wsgi.url_scheme"] = environ.get("HTTP_X_FORWARDED_PROTO", "http")
        return environ

    # --- engine.io's socket interface (python-engineio and python-socketio call these) ------

    @property
    def session(self) -> dict[str, Any]:
        if self._session is None:
            self._session = {}
        return self._session

    @session.setter
    def session(self, value: dict[str, Any]) -> None:
        self._session = value

    async def send(self, pkt: eio_packet.Packet) -> None:
        if not self.closed:
            self.send_frame(packet_frame(pkt))

    async def check_ping_timeout(self) -> bool:
        return not self.closed  # pings are this socket's own timers

    async def close(self, wait: bool = True, abort: bool = False, reason: Any = None) -> None:
        """Close as engine.io does: the disconnect event, then CLOSE unless aborted."""
        if self.closed or self.closing:
            return
        self.closing = True
        eio = self.endpoint.eio
        await internals.trigger_event(
            eio, "disconnect", self.sid, reason or eio.reason.SERVER_DISCONNECT, run_async=False
        )
        code = CLOSE_SLOW_CONSUMER if reason == SLOW_CONSUMER else CLOSE_NORMAL
        if not abort:
            self.send_frame(CLOSE_PACKET_FRAME)
        self.closed = True
        self._forget()
        self.close_ws(code)

    def shutdown(self) -> None:
        """uvicorn is shutting down: tell the client to come back elsewhere (1012)."""
        self.close_ws(CLOSE_SERVICE_RESTART)

    # --- the lane ---------------------------------------------------------------------------

    def offer(self, pkt: eio_packet.Packet) -> bool:
        """The lane's send: False when the client is too slow (its backlog is full)."""
        if self.closed:
            return True
        if self.direct:
            self.push(packet_frame(pkt))
            return True
        backlog = self.backlog
        if backlog is not None and len(backlog) >= self.endpoint.sink.queue_limit:
            return False
        self.send_frame(packet_frame(pkt))
        return True

    def send_frame(self, ws: bytes) -> None:
        """Send a frame after everything sent before it, whatever the transport's state."""
        if self.ws_closing:
            return
        if self.direct:
            self.push(ws)
        elif self.backlog is None:
            self.backlog = [ws]
        elif len(self.backlog) < 2 * self.endpoint.sink.queue_limit:
            self.backlog.append(ws)
        else:
            # Not reading at all, while its own messages (pings, acks) still ask for answers:
            # let it go rather than hold what it will not take.
            self.discard()
            self.transport.abort()

    def flush(self) -> None:
        pending = self.pending
        if pending is None:
            return
        self.pending = None
        if not self.ws_closing:
            self.transport.write(pending)

    def discard(self) -> int:
        """Drop what the client has not been sent yet (before cutting a slow client off)."""
        dropped = (0 if self.pending is None else 1) + len(self.backlog or ())
        self.pending = None
        self.backlog = None
        return dropped

    def backlog_size(self) -> int:
        return len(self.backlog or ())

    def pause_writing(self) -> None:
        self.direct = False

    def resume_writing(self) -> None:
        if self.ws_closing:
            return
        backlog, self.backlog = self.backlog, None
        self.direct = True
        if backlog:
            self.transport.write(b"".join(backlog))  # may pause again; later frames wait

    # --- reading ----------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.failed:
            return
        rx = self.rx
        if rx is not None:
            rx += data
            buf: bytes | bytearray = rx
        else:
            buf = data
        size = len(buf)
        pos = 0
        max_size = self.endpoint.eio.max_http_buffer_size
        transport = self.transport
        while size - pos >= 2 and not self.failed and not transport.is_closing():
            b0, b1 = buf[pos], buf[pos + 1]
            length = b1 & 0x7F
            start = pos + 2
            if length == 126:
                if size - start < 2:
                    break
                length = int.from_bytes(buf[start : start + 2], "big")
                start += 2
            elif length == 127:
                if size - start < 8:
                    break
                length = int.from_bytes(buf[start : start + 8], "big")
                start += 8
            if b0 & 0x70 or not b1 & 0x80:  # reserved bits (no extension) or unmasked
                self.fail(CLOSE_PROTOCOL_ERROR, "unmasked frame or reserved bits set")
                return
            if length > max_size:
                self.fail(CLOSE_TOO_BIG, "message too big")
                return
            end = start + 4 + length
            if size < end:
                break
            payload = apply_mask(buf[start + 4 : end], buf[start : start + 4])
            pos = end
            self._frame(b0 & 0x80, b0 & 0x0F, payload)
        if self.failed or transport.is_closing() or pos == size:
            self.rx = None
        elif rx is None:
            self.rx = bytearray(buf[pos:])
        else:
            del rx[:pos]

    def _frame(self, fin: int, opcode: int, payload: bytes) -> None:
        if self.ws_closing and opcode != OP_CLOSE:
            return  # after our close frame only the client's close frame matters
        if opcode >= OP_CLOSE:
            if not fin or len(payload) > 125:
                self.fail(CLOSE_PROTOCOL_ERROR, "bad control frame")
            elif opcode == OP_PING:
                self.send_frame(ws_frame(payload, OP_PONG))
            elif opcode == OP_CLOSE:
                self._closed_by_client(payload)
            elif opcode != OP_PONG:
                self.fail(CLOSE_PROTOCOL_ERROR, "unknown opcode")
            return
        fragments = self.fragments
        if opcode == OP_CONTINUATION:
            if fragments is None:
                self.fail(CLOSE_PROTOCOL_ERROR, "continuation without a message")
                return
            fragments.append(payload)
            if sum(len(part) for part in fragments[1:]) > self.endpoint.eio.max_http_buffer_size:
                self.fail(CLOSE_TOO_BIG, "message too big")
                return
            if not fin:
                return
            self.fragments = None
            opcode, payload = fragments[0], b"".join(fragments[1:])
        elif opcode not in (OP_TEXT, OP_BINARY):
            self.fail(CLOSE_PROTOCOL_ERROR, "unknown opcode")
            return
        elif fragments is not None:
            self.fail(CLOSE_PROTOCOL_ERROR, "new message inside a fragmented one")
            return
        elif not fin:
            self.fragments = [opcode, payload]
            return
        if opcode == OP_BINARY:
            self._packet(eio_packet.MESSAGE, payload)
            return
        try:
            text = payload.decode()
        except UnicodeDecodeError:
            self.fail(CLOSE_INVALID_DATA, "invalid UTF-8")
            return
        if not text or text[0] not in "0123456":
            self.fail(CLOSE_UNSUPPORTED, "not an engine.io packet")
            return
        self._packet(ord(text[0]) - 48, text[1:])

    def _packet(self, kind: int, data: str | bytes) -> None:
        """One engine.io packet from the client (v4: MESSAGE, PONG, CLOSE, and the rest)."""
        if self.upgrade_from is not None:
            self._upgrade_packet(kind, data)
            return
        if self.closing:
            return
        if kind == eio_packet.MESSAGE:
            self.inbox.append(data)
            if len(self.inbox) >= INBOX_PAUSE and self.reading:
                self.reading = False
                self.transport.pause_reading()
            self._wake()
        elif kind == eio_packet.PONG:
            self.ponged = True
        elif kind == eio_packet.PING:
            self.send_frame(ws_frame(b"3" + (data.encode() if isinstance(data, str) else data)))
        elif kind == eio_packet.CLOSE:
            self._end(self.endpoint.eio.reason.CLIENT_DISCONNECT)
        elif kind == eio_packet.UPGRADE:
            self.send_frame(ws_frame(b"6"))  # as engine.io answers it: NOOP
        # OPEN and NOOP from a client mean nothing

    # --- the upgrade from long-polling ------------------------------------------------------

    def _upgrade_packet(self, kind: int, data: str | bytes) -> None:
        old = self.upgrade_from
        if kind == eio_packet.PING and data == "probe" and not self.probed:
            self.probed = True
            self.send_frame(ws_frame(b"3probe"))
            old.queue.put_nowait(eio_packet.Packet(eio_packet.NOOP))  # ends the pending poll
        elif kind == eio_packet.UPGRADE and self.probed and not (old.closed or old.closing):
            self._take_over(old)
        else:  # as engine.io: the upgrade failed, the client goes on polling
            self._abandon_upgrade()
            self.close_ws(CLOSE_NORMAL)

    def _take_over(self, old: Any) -> None:
        """Become the client's engine.io socket: what waits in the polling socket's queue
        goes out first, in order; the polling socket is closed without a disconnect event."""
        self.upgrade_from = None
        old.upgraded = True
        old.upgrading = False
        queue = old.queue
        while not queue.empty():
            item = queue.get_nowait()
            queue.task_done()
            if item is not None and item.packet_type != eio_packet.NOOP:
                self.send_frame(packet_frame(item))
        old.closed = True  # its ping task and any late poll end quietly
        self._session = old.session
        endpoint = self.endpoint
        internals.engine_sockets(endpoint.eio)[self.sid] = self
        endpoint.sink.replace(self.sid, self)
        self._cancel_timer()
        self.timer = endpoint.loop.call_later(endpoint.eio.ping_interval, self._ping)

    def _upgrade_expired(self) -> None:
        self.timer = None
        if self.upgrade_from is not None:
            self._abandon_upgrade()
            self.close_ws(CLOSE_NORMAL)

    def _abandon_upgrade(self) -> None:
        old, self.upgrade_from = self.upgrade_from, None
        self.closing = self.closed = True  # never this client's socket: no disconnect event
        if old is not None and not old.upgraded:
            old.upgrading = False

    # --- handing messages to python-socketio ------------------------------------------------

    def _wake(self) -> None:
        if self.drainer is None and self.inbox:
            self.drainer = self.endpoint.loop.create_task(self._drain())

    async def _drain(self) -> None:
        """Pass received messages on, in order, as python-engineio's socket does."""
        eio = self.endpoint.eio
        inbox = self.inbox
        try:
            while inbox and not self.closing:
                item = inbox.pop(0)
                if item is _CONNECT:
                    environ, self.environ = self.environ, None
                    ret = await internals.trigger_event(
                        eio, "connect", self.sid, environ, run_async=False
                    )
                    if ret is not None and ret is not True:  # the application refused it
                        self.closing = self.closed = True
                        self._forget()
                        self.close_ws(CLOSE_NORMAL)
                else:
                    await internals.trigger_event(
                        eio, "message", self.sid, item, run_async=eio.async_handlers
                    )
                if not self.reading and len(inbox) < INBOX_PAUSE // 2 and not self.ws_closing:
                    self.reading = True
                    self.transport.resume_reading()
        finally:
            self.drainer = None
        if self.ws_closing and not self.closing:
            await self._disconnected(eio.reason.TRANSPORT_CLOSE)

    # --- keepalive --------------------------------------------------------------------------

    def _ping(self) -> None:
        if self.closing or self.ws_closing:
            return
        self.ponged = False
        self.send_frame(PING_FRAME)
        self.timer = self.endpoint.loop.call_later(self.endpoint.eio.ping_timeout, self._check)

    def _check(self) -> None:
        if self.closing or self.ws_closing:
            return
        eio = self.endpoint.eio
        if not self.ponged:
            # As engine.io does: CLOSE, which also settles a half-open connection.
            self.endpoint.loop.create_task(self.close(wait=False, reason=eio.reason.PING_TIMEOUT))
            return
        delay = max(0.0, eio.ping_interval - eio.ping_timeout)
        self.timer = self.endpoint.loop.call_later(delay, self._ping)

    # --- closing ----------------------------------------------------------------------------

    def fail(self, code: int, reason: str) -> None:
        """A protocol error from the client: close with its code (RFC 6455 section 7.1.7).

        What the client sends from here on cannot be parsed and is dropped unread, and the
        socket is half-closed rather than closed: closing it with unread input would reset
        the connection and lose the close frame on its way to the client."""
        self.close_ws(code, reason)
        self.failed = True
        self.rx = self.fragments = None
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._end(self.endpoint.eio.reason.TRANSPORT_ERROR)

    def _closed_by_client(self, payload: bytes) -> None:
        if self.ws_closing:  # the answer to our close frame: done
            self.transport.close()
            return
        code, reason = close_answer(payload)
        self.close_ws(code, reason)
        self.transport.close()
        eio = self.endpoint.eio
        self._end(eio.reason.TRANSPORT_ERROR if reason else eio.reason.TRANSPORT_CLOSE)

    def close_ws(self, code: int, reason: str = "") -> None:
        """Send the WebSocket close frame after what is pending, and let the socket go."""
        if self.ws_closing:
            return
        self.flush()
        backlog, self.backlog = self.backlog, None
        self.ws_closing = True
        self.direct = False
        self._cancel_timer()
        transport = self.transport
        transport.write(b"".join(backlog or ()) + close_frame(code, reason))
        self.close_timer = self.endpoint.loop.call_later(CLOSE_TIMEOUT, transport.abort)

    def _end(self, reason: Any) -> None:
        """The client is gone or going: run the disconnect event once, after its messages."""
        if self.upgrade_from is not None:
            self._abandon_upgrade()
        if not self.ws_closing:
            self.close_ws(CLOSE_NORMAL)
        if self.drainer is None and not self.closing:
            self.endpoint.loop.create_task(self._disconnected(reason))

    async def _disconnected(self, reason: Any) -> None:
        if self.closing:
            return
        self.closing = True
        self.inbox.clear()
        await internals.trigger_event(
            self.endpoint.eio, "disconnect", self.sid, reason, run_async=False
        )
        self.closed = True
        self._forget()

    def _forget(self) -> None:
        sockets = internals.engine_sockets(self.endpoint.eio)
        if sockets.get(self.sid) is self:
            del sockets[self.sid]

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.upgrade_from is not None:
            self._abandon_upgrade()
        self._cancel_timer()
        if self.close_timer is not None:
            self.close_timer.cancel()
            self.close_timer = None
        self.endpoint.connections.discard(self)
        self.ws_closing = True
        self.direct = False
        self.pending = self.backlog = self.rx = self.fragments = None
        if not self.closing and self.drainer is None:
            self.endpoint.loop.create_task(
                self._disconnected(self.endpoint.eio.reason.TRANSPORT_CLOSE)
            )

    def eof_received(self) -> bool | None:
        return None  # the transport closes itself; connection_lost follows
