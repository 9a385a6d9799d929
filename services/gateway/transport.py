"""Socket.IO frames built once per event and written to each recipient's connection.

python-socketio's own room emit creates one asyncio task per recipient and waits for all of
them; here an event's frame is encoded once and handed to every recipient. This is the one
module that feeds python-engineio's sockets; what it relies on in python-engineio and uvicorn
is named in `internals.py`.

A client on a lean connection (services/gateway/wire.py, how `dronecast` serves WebSocket
clients) is its own lane: one ordered way out. What follows is for clients on python-
engineio's sockets: long-polling, and WebSockets when the app runs behind another server.

Two lanes lead to such a client, and they keep one order:

- The queue: engine.io's per-socket queue, drained by engine.io's writer task (or a polling
  GET). Every packet python-socketio itself sends (CONNECT, acks, pings, CLOSE) goes this way.
  A slow client is noticed here: it is bounded to `queue_limit` frames.
- The direct lane, for WebSocket clients served by uvicorn's websockets-sansio protocol: the
  event's WebSocket frame (header + payload, built once per event) is appended to the client's
  pending bytes, and at the end of the event-loop tick each client's pending bytes go out in
  one `transport.write`. No task wake-up, no ASGI message, no per-client encoding. Under load
  many events share one write (one syscall) per client.

The direct lane is used only while nothing is ahead of it: the engine.io queue is empty, its
writer is idle (waiting on the queue, so everything it took has been written) and the
transport is not paused. Otherwise a frame goes on the queue, and before anything is put on
the queue the client's pending direct bytes are written first. A client that stops reading
fills its socket buffers, its transport pauses, frames go to the bounded queue, and it is cut
off as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

import orjson
import socketio
from engineio import packet as eio_packet

from services.gateway import internals
from services.gateway.wire import EngineSocket, PendingFrames, serve_lean, ws_frame


class Frame(internals.PrecodedPacket):
    """An engine.io MESSAGE packet, pre-encoded, that also carries its WebSocket frame."""

    ws: bytes

    def __init__(self, payload: bytes) -> None:
        super().__init__(eio_packet.MESSAGE, payload[1:].decode(), payload.decode())
        self.ws = ws_frame(payload)


def event_frame(sio_event: str, envelope: bytes) -> Frame:
    """The engine.io MESSAGE carrying the Socket.IO EVENT `[sio_event, envelope]`."""
    # engine.io MESSAGE (4) + Socket.IO EVENT on the default namespace (2): `42["name",<json>]`.
    return Frame(b'42["' + sio_event.encode() + b'",' + envelope + b"]")


def json_frame(sio_event: str, payload: Any) -> Frame:
    return event_frame(sio_event, orjson.dumps(payload))


class _SocketQueue:
    """engine.io's send queue for one socket: lean, and it opens and closes the direct lane.

    It replaces `asyncio.Queue` (three deques and an Event per client) with a list and one
    future. `get()` returns that future rather than a coroutine, so engine.io's
    `asyncio.wait_for(queue.get(), ...)` needs no task for the wait of each idle client.
    The writer is `idle` while it waits on an empty queue: everything it took before has been
    written, and only then may the lane be direct. Putting anything on the queue closes the
    lane, after writing what it has pending, so the order holds.
    """

    __slots__ = ("_finished", "_getter", "_items", "_unfinished", "lane")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._getter: asyncio.Future[Any] | None = None
        self._unfinished = 0
        self._finished: asyncio.Event | None = None
        self.lane: Lane | None = None

    @property
    def idle(self) -> bool:
        getter = self._getter
        return getter is not None and not getter.done()

    def qsize(self) -> int:
        return len(self._items)

    def empty(self) -> bool:
        return not self._items

    def get(self) -> asyncio.Future[Any]:
        future = asyncio.get_running_loop().create_future()
        if self._items:
            future.set_result(self._take())
            return future
        self._getter = future
        lane = self.lane
        if lane is not None:
            lane.reopen()
        return future

    def _take(self) -> Any:
        lane = self.lane
        if lane is not None:
            lane.direct = False
        return self._items.pop(0)

    def get_nowait(self) -> Any:
        if not self._items:
            raise asyncio.QueueEmpty
        return self._take()

    def put_nowait(self, item: Any) -> None:
        lane = self.lane
        if lane is not None:
            lane.direct = False
            if lane.pending is not None:
                lane.flush()
        self._unfinished += 1
        getter = self._getter
        if getter is not None:
            self._getter = None
            if not getter.done():
                getter.set_result(item)  # handed straight to the waiting writer
                return
        self._items.append(item)

    async def put(self, item: Any) -> None:
        self.put_nowait(item)

    def task_done(self) -> None:
        self._unfinished = max(0, self._unfinished - 1)
        if self._unfinished == 0 and self._finished is not None:
            self._finished.set()

    async def join(self) -> None:
        if self._unfinished > 0:
            if self._finished is None:
                self._finished = asyncio.Event()
            self._finished.clear()
            await self._finished.wait()


class Lane(PendingFrames):
    """One client's way out: its engine.io socket and queue, and the direct lane if any."""

    __slots__ = ("proto", "queue", "resolved", "sid", "socket", "transport")

    sink: FrameSink

    def __init__(self, sink: FrameSink, sid: str, socket: Any) -> None:
        self.sink = sink
        self.sid = sid
        self.socket = socket
        queue = socket.queue
        self.queue: _SocketQueue | None = queue if isinstance(queue, _SocketQueue) else None
        if self.queue is not None:
            self.queue.lane = self
        self.proto: Any = None
        self.transport: Any = None
        self.pending = None
        self.resolved = False
        # True while frames may skip the queue: the queue is empty, its writer idle, the
        # transport not paused. Cleared by the queue and by `flush`; see `reopen`.
        self.direct = False
        if socket.upgraded:
            self._resolve()
            self.reopen()

    def reopen(self) -> None:
        """Open the direct lane if nothing is ahead of it."""
        if not self.resolved and self.socket.upgraded:
            self._resolve()
        proto = self.proto
        queue = self.queue
        self.direct = (
            proto is not None
            and queue is not None
            and queue.idle
            and not queue._items
            and proto.writable.is_set()
            and not proto.close_sent
            and not self.socket.closed
        )

    def _resolve(self) -> None:
        """Find the client's WebSocket connection once engine.io has upgraded to it."""
        self.resolved = True
        if self.queue is None:
            return
        proto = self.sink.ws_protocol(self.sid)
        if proto is not None:
            self.proto = proto
            self.transport = proto.transport

    def offer(self, pkt: eio_packet.Packet) -> bool:
        """Queue or write one frame. False when the client's queue is full (too slow)."""
        ws = getattr(pkt, "ws", None)
        if self.direct and ws is not None:
            self.push(ws)
            return True
        socket = self.socket
        if socket.closed:
            return True
        if ws is not None and self.queue is not None and self.queue.idle:
            self.reopen()
            if self.direct:
                self.push(ws)
                return True
        q = socket.queue
        if q.qsize() >= self.sink.queue_limit:
            return False
        q.put_nowait(pkt)
        return True

    def flush(self) -> None:
        pending = self.pending
        if pending is None:
            return
        self.pending = None
        proto = self.proto
        if proto.close_sent or proto.disconnected or self.transport.is_closing():
            self.direct = False
            return
        self.transport.write(pending)
        if not proto.writable.is_set():  # the transport paused: queue (bounded) from now on
            self.direct = False

    def discard(self) -> int:
        dropped = 0 if self.pending is None else 1  # at least one frame; the count is a log hint
        self.pending = None
        self.direct = False
        return dropped


# A client's way out: a lean WebSocket connection is its own lane (services/gateway/wire.py).
AnyLane = Lane | EngineSocket


class FrameSink:
    def __init__(self, sio: socketio.AsyncServer, queue_limit: int) -> None:
        internals.check()  # what follows relies on engine.io's and uvicorn's internals
        self._sio = sio
        self._eio = sio.eio
        self.queue_limit = queue_limit
        self._lanes: dict[str, AnyLane] = {}
        self._dirty: list[PendingFrames] = []
        self._flush_scheduled = False
        # Told when a client's lane changes (an upgrade from long-polling).
        self.on_replace: Callable[[str, AnyLane], None] | None = None
        # WebSocket clients of this server get a lean connection (wire.WebSocketProtocol).
        serve_lean(self._eio, self)
        # engine.io sockets get a queue that knows about the direct lane.
        internals.use_queue_factory(self._eio, _SocketQueue)
        # The ASGI `send` of each WebSocket upgrade request, by engine.io sid (a client that
        # started on long-polling upgrades with `?sid=...&transport=websocket`).
        self._upgrades: dict[str, Any] = {}
        internals.wrap_handle_request(self._eio, self._noting_upgrades)

    def _noting_upgrades(
        self, handle_request: Callable[..., Awaitable[Any]]
    ) -> Callable[..., Awaitable[Any]]:
        async def upgrade(sid: str, scope: Any, receive: Any, send: Any) -> Any:
            self._upgrades[sid] = send
            try:
                return await handle_request(scope, receive, send)
            finally:
                self._upgrades.pop(sid, None)

        def handle_request_noting_upgrades(
            scope: Any, receive: Any, send: Callable[..., Awaitable[Any]]
        ) -> Awaitable[Any]:
            # Returns engine.io's own coroutine when there is nothing to note, so no frame of
            # ours stays on the stack of every connection.
            if isinstance(scope, dict) and scope.get("type") == "websocket":
                sid = parse_qs(scope.get("query_string", b"").decode()).get("sid", [None])[0]
                if sid:
                    return upgrade(sid, scope, receive, send)
            return handle_request(scope, receive, send)

        return handle_request_noting_upgrades

    def ws_protocol(self, eio_sid: str) -> Any:
        send = self._upgrades.get(eio_sid)
        if send is None:
            environ = self._sio.environ.get(eio_sid) or {}
            scope = environ.get("asgi.scope") or {}
            if scope.get("type") != "websocket":
                return None
            send = environ.get("asgi.send")
        return internals.sansio_protocol_behind(send)

    def attach(self, eio_sid: str) -> AnyLane | None:
        """The lane to a newly connected client (None if its socket is already gone)."""
        socket = internals.engine_sockets(self._eio).get(eio_sid)
        if socket is None:
            return None
        lane = socket if isinstance(socket, EngineSocket) else Lane(self, eio_sid, socket)
        self._lanes[eio_sid] = lane
        return lane

    def replace(self, eio_sid: str, sock: EngineSocket) -> None:
        """A client that upgraded from long-polling now has a lean connection as its lane."""
        old = self._lanes.get(eio_sid)
        if old is None:
            return
        if isinstance(old, Lane):
            old.direct = False
            if old.queue is not None:
                old.queue.lane = None
        self._lanes[eio_sid] = sock
        if self.on_replace is not None:
            self.on_replace(eio_sid, sock)

    def detach(self, eio_sid: str) -> None:
        lane = self._lanes.pop(eio_sid, None)
        if lane is None:
            return
        lane.flush()
        if isinstance(lane, Lane):
            lane.direct = False
            if lane.queue is not None:
                lane.queue.lane = None

    def dirty(self, lane: PendingFrames) -> None:
        self._dirty.append(lane)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        dirty, self._dirty = self._dirty, []
        for lane in dirty:
            lane.flush()

    def send(self, eio_sid: str, pkt: eio_packet.Packet) -> bool:
        """Send a frame to one client. False when that client's queue is full (too slow)."""
        lane = self._lanes.get(eio_sid)
        if lane is not None:
            return lane.offer(pkt)
        socket = internals.engine_sockets(self._eio).get(eio_sid)
        if socket is None or socket.closed:
            return True
        if isinstance(socket, EngineSocket):
            return socket.offer(pkt)
        if socket.queue.qsize() >= self.queue_limit:
            return False
        socket.queue.put_nowait(pkt)
        return True

    def discard_queued(self, eio_sid: str) -> int:
        """Drop what a client has not received yet (used before cutting off a slow client)."""
        socket = internals.engine_sockets(self._eio).get(eio_sid)
        if socket is None:
            return 0
        if isinstance(socket, EngineSocket):
            return socket.discard()
        lane = self._lanes.get(eio_sid)
        dropped = lane.discard() if lane is not None else 0
        while not socket.queue.empty():
            item = socket.queue.get_nowait()
            socket.queue.task_done()
            if item is None:  # the writer's stop signal must stay
                socket.queue.put_nowait(None)
                break
            dropped += 1
        return dropped

    def backlog(self, eio_sid: str) -> int:
        """How many frames wait for a client (that it has not taken yet)."""
        socket = internals.engine_sockets(self._eio).get(eio_sid)
        if socket is None:
            return 0
        if isinstance(socket, EngineSocket):
            return socket.backlog_size()
        return int(socket.queue.qsize())
