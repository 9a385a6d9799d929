"""Socket.IO frames built once per event and queued straight onto each client's engine.io socket.

python-socketio's own room emit creates one asyncio task per recipient and waits for all of
them; here an event's frame is encoded once and handed to every recipient's send queue, which
is also where a slow client is noticed (its queue is bounded). This is the one module that
touches python-socketio and python-engineio internals (`eio.sockets`, `socket.queue`).
"""

from __future__ import annotations

from typing import Any

import orjson
import socketio
from engineio import packet as eio_packet


def event_frame(sio_event: str, envelope: bytes) -> eio_packet.Packet:
    """An engine.io MESSAGE carrying the Socket.IO EVENT `[sio_event, envelope]`, pre-encoded."""
    # Socket.IO EVENT packet on the default namespace: `2["name",<json>]`.
    text = '2["' + sio_event + '",' + envelope.decode() + "]"
    pkt = eio_packet.Packet(eio_packet.MESSAGE, data=text)
    pkt.encode()  # fills the packet's encode cache once for every recipient
    return pkt


def json_frame(sio_event: str, payload: Any) -> eio_packet.Packet:
    return event_frame(sio_event, orjson.dumps(payload))


class FrameSink:
    def __init__(self, sio: socketio.AsyncServer, queue_limit: int) -> None:
        self._eio = sio.eio
        self._queue_limit = queue_limit

    def send(self, eio_sid: str, pkt: eio_packet.Packet) -> bool:
        """Queue a frame for one client. False when that client's queue is full (too slow)."""
        socket = self._eio.sockets.get(eio_sid)
        if socket is None or socket.closed:
            return True
        if socket.queue.qsize() >= self._queue_limit:
            return False
        socket.queue.put_nowait(pkt)
        return True

    def discard_queued(self, eio_sid: str) -> int:
        """Drop what a client has not received yet (used before cutting off a slow client)."""
        socket = self._eio.sockets.get(eio_sid)
        if socket is None:
            return 0
        dropped = 0
        while not socket.queue.empty():
            item = socket.queue.get_nowait()
            socket.queue.task_done()
            if item is None:  # the writer's stop signal must stay
                socket.queue.put_nowait(None)
                break
            dropped += 1
        return dropped
