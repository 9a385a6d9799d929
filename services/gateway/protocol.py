"""Socket.IO and engine.io servers that answer as the Node reference server does.

The official protocol test suites (`test-suite/` in socketio/socket.io-protocol and
socketio/engine.io-protocol) run against python-socketio and python-engineio find a few places
where they answer differently from Node's `socket.io` and `engine.io`. Where a client could
tell, these subclasses answer as Node does:

- a Socket.IO packet that Node's parser refuses (an unknown type, a payload of the wrong shape
  such as `42{}`, a bad ack id such as `42abc[...]`, a binary attachment nobody announced)
  closes the connection, as Node's "parse error" does; python-socketio logs it and goes on;
- a CONNECT to a namespace the server does not have gets `{"message": "Invalid namespace"}`
  (python-socketio: the bare string "Unable to connect", which socket.io-client turns into an
  error without a message);
- a connection that joins no namespace within `connect_timeout` is closed (Node's
  `connectTimeout`, 45 s); python-socketio keeps it as long as it answers pings;
- a request without a known `transport` gets 400 `{"code": 0, "message": "Transport unknown"}`
  (python-engineio opens a long-polling session when `transport` is missing), a handshake
  that is not a GET gets 400 `Bad handshake method` (python-engineio: 405), and a long-polling
  POST is answered `ok` (python-engineio: `OK`).

The README lists the differences that remain, and why. These are worth sending upstream; until
then they live here, on the hooks python-socketio registers with engine.io.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qs

import engineio
import orjson
import socketio
from socketio import packet as sio_packet

# Event names a client may not emit (socket.io-parser's RESERVED_EVENTS).
RESERVED_EVENTS = frozenset(
    ("connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener")
)
CONNECT_TIMEOUT = 45.0  # Node's default connectTimeout, in seconds
TRANSPORTS = ("polling", "websocket")


def payload_is_valid(pkt: sio_packet.Packet) -> bool:
    """What socket.io-parser's `isPayloadValid` accepts, for each packet type."""
    data = pkt.data
    kind = pkt.packet_type
    if kind == sio_packet.CONNECT:
        return data is None or isinstance(data, dict)
    if kind == sio_packet.DISCONNECT:
        return data is None
    if kind == sio_packet.CONNECT_ERROR:
        return isinstance(data, str | dict)
    if kind in (sio_packet.EVENT, sio_packet.BINARY_EVENT):
        if not isinstance(data, list) or not data:
            return False
        name = data[0]
        if isinstance(name, str):
            return name not in RESERVED_EVENTS
        return isinstance(name, int | float) and not isinstance(name, bool)
    if kind in (sio_packet.ACK, sio_packet.BINARY_ACK):
        return isinstance(data, list)
    return False


class EngineIOServer(engineio.AsyncServer):
    async def handle_request(self, scope: Any, receive: Any, send: Any) -> Any:
        """As Node's engine.io: a request without a known transport, or a handshake that is
        not a GET, is a 400 with engine.io's JSON error (python-engineio takes a missing
        `transport` as long-polling, and answers a POST or PUT handshake with 405)."""
        if isinstance(scope, dict) and scope.get("type") == "http":
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            if query.get("transport", [""])[0] not in TRANSPORTS:
                return await _engineio_error(send, 0, "Transport unknown")
            if "sid" not in query and scope.get("method") not in ("GET", "OPTIONS"):
                return await _engineio_error(send, 2, "Bad handshake method")
        return await super().handle_request(scope, receive, send)

    def _ok(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """A long-polling POST is answered `ok`, as Node's engine.io does (python-engineio:
        `OK`)."""
        response: dict[str, Any] = super()._ok(*args, **kwargs)
        if response.get("response") == b"OK":
            response["response"] = b"ok"
        return response


async def _engineio_error(send: Any, code: int, message: str) -> None:
    """engine.io's error answer: 400 with `{"code", "message"}` (Node's codes and words)."""
    await send(
        {
            "type": "http.response.start",
            "status": 400,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send(
        {"type": "http.response.body", "body": orjson.dumps({"code": code, "message": message})}
    )


class SocketIOServer(socketio.AsyncServer):
    """python-socketio's server, answering malformed packets, unknown namespaces and clients
    that never join as Node's does (see the module's docstring)."""

    def __init__(self, *, connect_timeout: float = CONNECT_TIMEOUT, **kwargs: Any) -> None:
        self.connect_timeout = connect_timeout
        self._connect_timers: dict[str, asyncio.TimerHandle] = {}
        super().__init__(**kwargs)

    def _engineio_server_class(self) -> type[engineio.AsyncServer]:
        return EngineIOServer

    async def _handle_eio_connect(self, eio_sid: str, environ: dict[str, Any]) -> Any:
        ret = await super()._handle_eio_connect(eio_sid, environ)
        loop = asyncio.get_running_loop()
        self._connect_timers[eio_sid] = loop.call_later(
            self.connect_timeout, self._connect_timed_out, eio_sid
        )
        return ret

    async def _handle_eio_disconnect(self, eio_sid: str, reason: Any) -> None:
        timer = self._connect_timers.pop(eio_sid, None)
        if timer is not None:
            timer.cancel()
        await super()._handle_eio_disconnect(eio_sid, reason)

    def _connect_timed_out(self, eio_sid: str) -> None:
        self._connect_timers.pop(eio_sid, None)
        manager = self.manager
        if not any(manager.sid_from_eio_sid(eio_sid, ns) for ns in manager.get_namespaces()):
            self._close_connection(eio_sid)

    def _close_connection(self, eio_sid: str) -> None:
        """Close the client's engine.io connection (not just a namespace), as Node's
        `client.close()` does."""
        task = asyncio.get_running_loop().create_task(self.eio.disconnect(eio_sid))
        self._connect_timers.pop(eio_sid, None)
        _closing.add(task)
        task.add_done_callback(_closing.discard)

    async def _handle_eio_message(self, eio_sid: str, data: str | bytes) -> None:
        if isinstance(data, bytes):
            if eio_sid not in self._binary_packet:  # an attachment nobody announced
                self._close_connection(eio_sid)
                return
            await super()._handle_eio_message(eio_sid, data)
            return
        try:
            pkt = self.packet_class(encoded_packet=data)
        except ValueError:  # not a Socket.IO packet (json's errors are ValueErrors too)
            self._close_connection(eio_sid)
            return
        if not payload_is_valid(pkt):
            self._close_connection(eio_sid)
            return
        if pkt.packet_type == sio_packet.CONNECT and not self._serves(pkt.namespace or "/"):
            await self._send_packet(
                eio_sid,
                self.packet_class(
                    sio_packet.CONNECT_ERROR,
                    data={"message": "Invalid namespace"},
                    namespace=pkt.namespace,
                ),
            )
            return
        await super()._handle_eio_message(eio_sid, data)

    def _serves(self, namespace: str) -> bool:
        """python-socketio's own test in `_handle_connect`."""
        return (
            namespace in self.handlers
            or namespace in self.namespace_handlers
            or self.namespaces == "*"
            or namespace in self.namespaces
        )


_closing: set[asyncio.Task[Any]] = set()
