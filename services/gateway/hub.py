"""The local subscription index: which connected clients want which drones, and delivery.

A client subscribes to every drone (`all`) or to serials. `dispatch` sends one event to every
local client that wants it, exactly once each, with a frame encoded once. While a client is
being caught up (replay or snapshot) its live events are held and merged in afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from engineio import packet as eio_packet

from services.gateway import metrics
from services.gateway.transport import AnyLane, FrameSink, event_frame
from shared.channels import parse_channel
from shared.events import PublishedEvent, sio_event_for_kind

SYSTEM_KIND = "broadcast"


@dataclass(eq=False, slots=True)
class Client:
    sid: str
    eio_sid: str
    all: bool = False
    serials: set[str] = field(default_factory=set)
    # Live events held while a subscribe is catching this client up; None when not held.
    held: list[tuple[PublishedEvent, eio_packet.Packet]] | None = None
    cut_off: bool = False
    # The way out to this client (transport.Lane); None once its socket is gone.
    lane: AnyLane | None = None

    def wants(self, serial: str | None) -> bool:
        return serial is None or self.all or serial in self.serials


def event_name_of(envelope: bytes) -> str:
    """The envelope's `event` member, read without decoding the JSON (bounded label)."""
    start = envelope.find(b'"event":"')
    if start < 0:
        return "unknown"
    start += 9
    end = envelope.find(b'"', start)
    return envelope[start:end].decode() if end > start else "unknown"


class Hub:
    def __init__(self, sink: FrameSink, on_slow_client: Callable[[Client], None]) -> None:
        self._sink = sink
        self._on_slow_client = on_slow_client
        self.clients: dict[str, Client] = {}
        self._by_eio: dict[str, Client] = {}
        sink.on_replace = self._lane_replaced
        self._by_serial: dict[str, set[Client]] = {}
        self._all: set[Client] = set()
        # Serials whose last local subscriber left, until the relay takes them to stop
        # receiving them: a client leaving costs its own serials, not every serial watched.
        self._released: set[str] = set()

    # --- membership -------------------------------------------------------------------------

    def connect(self, sid: str, eio_sid: str) -> Client:
        client = Client(sid=sid, eio_sid=eio_sid, lane=self._sink.attach(eio_sid))
        self.clients[sid] = client
        self._by_eio[eio_sid] = client
        metrics.CONNECTED_CLIENTS.set(len(self.clients))
        return client

    def disconnect(self, sid: str) -> Client | None:
        client = self.clients.pop(sid, None)
        if client is None:
            return None
        self._by_eio.pop(client.eio_sid, None)
        self.unsubscribe(client, all_drones=True, serials=set(client.serials))
        self._sink.detach(client.eio_sid)
        client.lane = None
        metrics.CONNECTED_CLIENTS.set(len(self.clients))
        return client

    def _lane_replaced(self, eio_sid: str, lane: AnyLane) -> None:
        client = self._by_eio.get(eio_sid)
        if client is not None:
            client.lane = lane

    def subscribe(self, client: Client, all_drones: bool, serials: set[str]) -> None:
        if all_drones and not client.all:
            client.all = True
            self._all.add(client)
        for serial in serials - client.serials:
            client.serials.add(serial)
            self._by_serial.setdefault(serial, set()).add(client)
        self._count()

    def unsubscribe(self, client: Client, all_drones: bool, serials: set[str]) -> None:
        if all_drones and client.all:
            client.all = False
            self._all.discard(client)
        for serial in serials & client.serials:
            client.serials.discard(serial)
            members = self._by_serial.get(serial)
            if members is not None:
                members.discard(client)
                if not members:
                    del self._by_serial[serial]
                    self._released.add(serial)
        self._count()

    def _count(self) -> None:
        metrics.SUBSCRIPTIONS.labels("all").set(len(self._all))
        metrics.SUBSCRIPTIONS.labels("serial").set(len(self._by_serial))

    @property
    def wants_all(self) -> bool:
        return bool(self._all)

    def wanted_serials(self) -> set[str]:
        return set(self._by_serial)

    def is_wanted(self, serial: str) -> bool:
        return serial in self._by_serial

    def take_released(self) -> list[str]:
        """The serials no local client wants any more, that lost their last subscriber since
        the last call."""
        released, self._released = self._released, set()
        return [serial for serial in released if serial not in self._by_serial]

    # --- delivery ---------------------------------------------------------------------------

    def dispatch(self, event: PublishedEvent) -> None:
        serial, kind = parse_channel(event.channel)
        if serial is None and kind == SYSTEM_KIND:
            recipients: set[Client] | list[Client] = list(self.clients.values())
        elif serial is None:
            recipients = self._all
        else:
            members = self._by_serial.get(serial)
            recipients = self._all | members if members else self._all
        if not recipients:
            return
        name = event_name_of(event.envelope)
        metrics.EVENTS_RECEIVED.labels(name).inc()
        pkt = event_frame(sio_event_for_kind(kind), event.envelope)
        ws = pkt.ws
        delivered = 0
        # The hot loop: per recipient, append the prebuilt WebSocket frame to its direct lane
        # (written once per client at the end of the tick), or else queue the packet.
        for client in recipients:
            if client.held is not None:
                client.held.append((event, pkt))
                continue
            lane = client.lane
            if lane is not None and lane.direct:
                pending = lane.pending
                if pending.__class__ is bytearray:
                    pending += ws
                else:
                    lane.push(ws)
                delivered += 1
            elif client.cut_off:
                continue
            elif lane is None or lane.offer(pkt):
                delivered += 1
            else:
                self._cut_off(client)
        if delivered:
            metrics.EVENTS_DELIVERED.labels(name).inc(delivered)
        if event.id:
            published_ms = int(event.id.partition("-")[0])
            metrics.DELIVERY_LATENCY.observe(max(0.0, time.time() - published_ms / 1000))

    def send(self, client: Client, pkt: eio_packet.Packet) -> bool:
        if client.cut_off:
            return False
        lane = client.lane
        if lane is None or lane.offer(pkt):
            return True
        self._cut_off(client)
        return False

    def _cut_off(self, client: Client) -> None:
        client.cut_off = True
        metrics.SLOW_CLIENT_DISCONNECTS.inc()
        self._on_slow_client(client)
