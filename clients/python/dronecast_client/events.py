"""Live events over Socket.IO (`/ws/events`), with resume after a reconnect.

    async with AsyncEventsClient("http://127.0.0.1:8000") as events:
        await events.subscribe(all=True)
        async for item in events:
            if isinstance(item, Event):
                print(item.id, item.event, item.serial)

The client reconnects by itself, with capped backoff: to the same URL (a load balancer in front
of any number of gateways), or to the next of several URLs given as a list. After each
reconnect it subscribes again with `lastEventId`, the newest event it received, so it gets
every event it missed, in order and once. When that is not
possible (the gap outlasted the server's replay window, or the bus lost events) it yields an
`EventsLost` item: reload what you keep over REST. A cut-off for reading too slowly is
yielded as `SlowConsumer`, and the resume that follows as `Resumed`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from typing import Any

import socketio

from dronecast_client._portal import HasTwin, Portal, blocking
from dronecast_client.errors import ClientClosed, TransportError, error_from
from dronecast_client.models import (
    EVENT_TYPES,
    EventsLost,
    Resumed,
    ServerNotice,
    SlowConsumer,
    Snapshot,
    StreamItem,
)

SOCKETIO_PATH = "/ws/events"
FROM_START = "0-0"


def event_id_key(event_id: str) -> tuple[int, int]:
    """Event ids are `<ms>-<seq>`; this orders them."""
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq or 0)


class AsyncEventsClient:
    """Subscribes to DroneCast's live events. Iterate over it (or call `next_event`) to get
    `Event`s (`DroneEvent`, `AlertEvent`, `TaskEvent`, `SystemEvent`), `Snapshot`s, and the
    stream notices `EventsLost`, `SlowConsumer`, `Resumed` and `ServerNotice`."""

    def __init__(
        self,
        url: str | Sequence[str] = "http://127.0.0.1:8000",
        *,
        token: str | None = None,
        max_queue: int = 10_000,
        reconnect_delay: float = 0.5,
        reconnect_delay_max: float = 5.0,
        request_timeout: float = 10.0,
    ) -> None:
        urls = [url] if isinstance(url, str) else list(url)
        if not urls:
            raise ValueError("give at least one URL")
        self.urls = [u.rstrip("/") for u in urls]
        self.url = self.urls[0]  # the one in use (or last tried)
        self.token = token
        self.max_queue = max_queue
        self.reconnect_delay = reconnect_delay
        self.reconnect_delay_max = reconnect_delay_max
        self.request_timeout = request_timeout
        self.client_id: str | None = None
        self.last_event_id: str | None = None  # the newest event received: where to resume
        # Reconnection is ours rather than python-socketio's, so that it can move to another
        # URL and resume there.
        self._sio = socketio.AsyncClient(reconnection=False, logger=False, engineio_logger=False)
        self._queue: asyncio.Queue[StreamItem] = asyncio.Queue()
        self._all = False
        self._serials: set[str] = set()
        self._newest_by_serial: dict[str, tuple[int, int]] = {}
        self._connections = 0
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._paused = False
        self._closed = False
        self._reconnecting = False
        self._refusal: dict[str, Any] | None = None
        self._sio.on("connect", self._on_connect)
        self._sio.on("connect_error", self._on_connect_error)
        self._sio.on("disconnect", self._on_disconnect)
        self._sio.on("connected", self._on_connected)
        self._sio.on("drone:snapshot", self._on_snapshot)
        self._sio.on("error", self._on_error)
        for name in EVENT_TYPES:
            self._sio.on(name, self._event_handler(name))

    # --- connection -----------------------------------------------------------------------------

    async def connect(self) -> AsyncEventsClient:
        """Connect (raises `Unauthorized`/`Forbidden` for a refused token, `TransportError`
        when the server cannot be reached). Reconnects after this are automatic."""
        last: Exception | None = None
        for url in self.urls:
            self.url = url
            try:
                await self._connect_once()
                return self
            except TransportError as exc:
                last = exc
        assert last is not None
        raise last

    async def _connect_once(self) -> None:
        self._refusal = None
        try:
            await self._sio.connect(
                self.url,
                socketio_path=SOCKETIO_PATH,
                transports=["websocket"],
                auth={"token": self.token} if self.token else None,
                wait_timeout=self.request_timeout,
            )
        except socketio.exceptions.ConnectionError as exc:
            if self._refusal is not None:  # the server said why (a token refused)
                raise error_from(self._refusal) from exc
            raise TransportError(f"cannot connect to {self.url}{SOCKETIO_PATH}: {exc}") from exc

    async def close(self) -> None:
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await self._sio.disconnect()

    @property
    def connected(self) -> bool:
        return bool(self._sio.connected)

    async def __aenter__(self) -> AsyncEventsClient:
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- subscriptions --------------------------------------------------------------------------

    async def subscribe(
        self,
        *,
        all: bool = False,
        serials: Iterable[str] = (),
        snapshot: bool = False,
        last_event_id: str | None = None,
    ) -> dict[str, Any]:
        """Subscribe to every drone (`all=True`) or to some (`serials`). `snapshot=True` sends
        each drone's current state first (as `Snapshot` items). `last_event_id` replays what
        came after that event. Returns the server's acknowledgement; raises on a refusal."""
        wanted = sorted(set(serials))
        request: dict[str, Any] = {"all": all, "droneSerials": wanted, "snapshot": snapshot}
        if last_event_id:
            request["lastEventId"] = last_event_id
        async with self._lock:
            ack = await self._call("subscribe", request)
            self._all = self._all or all
            self._serials.update(wanted)
            self._note_position(ack)
        if last_event_id and ack.get("recovered") is False:
            self._push(EventsLost(detail="outside the replay window", after=last_event_id))
        return ack

    async def unsubscribe(
        self, *, all: bool = False, serials: Iterable[str] = ()
    ) -> dict[str, Any]:
        wanted = sorted(set(serials))
        async with self._lock:
            ack = await self._call("unsubscribe", {"all": all, "droneSerials": wanted})
            if all:
                self._all = False
            self._serials.difference_update(wanted)
        return ack

    async def _call(self, name: str, request: dict[str, Any]) -> dict[str, Any]:
        if self._closed:
            raise ClientClosed("the events client is closed")
        if not request.get("all") and not request.get("droneSerials"):
            request = {**request, "all": False}
        try:
            ack = await self._sio.call(name, request, timeout=self.request_timeout)
        except (socketio.exceptions.TimeoutError, socketio.exceptions.BadNamespaceError) as exc:
            raise TransportError(f"{name}: no answer ({exc!r})") from exc
        if not isinstance(ack, dict) or not ack.get("ok"):
            raise error_from(ack if isinstance(ack, dict) else {"error": "BadRequest"})
        return ack

    def _note_position(self, ack: dict[str, Any]) -> None:
        """Where to resume from before any event has arrived: the newest event id when the
        subscription took effect (everything after it reaches us, live or replayed)."""
        if self.last_event_id is None:
            self.last_event_id = ack.get("latestEventId") or FROM_START

    # --- receiving ------------------------------------------------------------------------------

    async def next_event(self, timeout: float | None = None) -> StreamItem:
        """The next item; `TimeoutError` if none comes within `timeout` seconds."""
        if self._closed and self._queue.empty():
            raise ClientClosed("the events client is closed")
        item = await asyncio.wait_for(self._queue.get(), timeout)
        if self._paused and self._queue.qsize() <= self.max_queue // 2:
            self._paused = False
            self._spawn(self._reconnect_after_pause())
        return item

    def __aiter__(self) -> AsyncIterator[StreamItem]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[StreamItem]:
        while not (self._closed and self._queue.empty()):
            yield await self.next_event()

    def pending(self) -> int:
        """Items received and not yet taken."""
        return self._queue.qsize()

    def _push(self, item: StreamItem) -> None:
        self._queue.put_nowait(item)
        if not self._paused and self._queue.qsize() > self.max_queue:
            # We are reading slower than events come: step away rather than hold them all,
            # and resume from the last one once the backlog is half gone.
            self._paused = True
            self._spawn(self._sio.disconnect())

    def _event_handler(self, name: str) -> Any:
        model = EVENT_TYPES[name]

        def handle(envelope: dict[str, Any]) -> None:
            event = model.model_validate({**envelope, "channel": name})
            key = event_id_key(event.id)
            serial = event.serial or ""
            if key <= self._newest_by_serial.get(serial, (-1, -1)):
                return  # already received (an overlap between replay and live)
            self._newest_by_serial[serial] = key
            if self.last_event_id is None or key > event_id_key(self.last_event_id):
                self.last_event_id = event.id
            self._push(event)

        return handle

    def _on_snapshot(self, payload: dict[str, Any]) -> None:
        self._push(Snapshot.model_validate(payload))

    def _on_error(self, payload: Any) -> None:
        body = payload if isinstance(payload, dict) else {"error": str(payload)}
        error, detail = str(body.get("error", "")), str(body.get("detail", ""))
        if error == "EventsLost":
            self._push(EventsLost(detail=detail, after=self.last_event_id))
        elif error == "SlowConsumer":
            self._push(SlowConsumer(detail=detail or "cut off by the server"))
        else:
            self._push(ServerNotice(error=error, detail=detail))

    def _on_connect_error(self, data: Any = None) -> None:
        """A refused handshake: `{"message", "data": {"error", "detail"}}`."""
        if isinstance(data, dict):
            inner = data.get("data")
            if isinstance(inner, dict) and "error" in inner:
                self._refusal = inner
            elif "error" in data:
                self._refusal = data

    def _on_connected(self, payload: dict[str, Any]) -> None:
        self.client_id = payload.get("clientId")

    async def _on_connect(self) -> None:
        self._connections += 1
        if self._connections > 1 and (self._all or self._serials):
            self._spawn(self._resume())

    async def _resume(self) -> None:
        """After a reconnect: subscribe again from the newest event received."""
        after = self.last_event_id or FROM_START
        request = {"all": self._all, "droneSerials": sorted(self._serials), "lastEventId": after}
        try:
            async with self._lock:
                ack = await self._call("subscribe", request)
        except Exception as exc:  # drop this connection; the reconnect tries again
            self._push(ServerNotice(error="ResumeFailed", detail=str(exc)))
            with contextlib.suppress(Exception):
                await self._sio.disconnect()
            return
        if ack.get("recovered") is False:
            self._push(EventsLost(detail="outside the replay window", after=after))
        else:
            self._push(Resumed(replayed=int(ack.get("replayed") or 0), after=after))

    def _on_disconnect(self, reason: Any = None) -> None:
        if not self._closed and not self._paused:
            self._spawn(self._reconnect())

    async def _reconnect_after_pause(self) -> None:
        await self._reconnect()

    async def _reconnect(self) -> None:
        """Try the URLs in turn, starting after the one that failed, with capped backoff."""
        if self._reconnecting:
            return
        self._reconnecting = True
        try:
            delay = self.reconnect_delay
            start = self.urls.index(self.url) + 1 if self.url in self.urls else 0
            attempt = 0
            while not self._closed and not self._sio.connected:
                await asyncio.sleep(delay if attempt else min(delay, 0.1))
                self.url = self.urls[(start + attempt) % len(self.urls)]
                attempt += 1
                try:
                    await self._connect_once()
                except Exception:
                    delay = min(delay * 2, self.reconnect_delay_max)
        finally:
            self._reconnecting = False

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


class EventsClient(HasTwin):
    """The blocking form of `AsyncEventsClient`: iterate over it in a plain thread."""

    def __init__(self, url: str | Sequence[str] = "http://127.0.0.1:8000", **options: Any) -> None:
        self._portal = Portal("dronecast-events")

        async def make() -> AsyncEventsClient:
            return AsyncEventsClient(url, **options)

        self._twin: AsyncEventsClient = self._portal.call(make())

    def connect(self) -> EventsClient:
        self._portal.call(self._twin.connect())
        return self

    def __enter__(self) -> EventsClient:
        return self.connect()

    def __iter__(self) -> Iterator[StreamItem]:
        while True:
            try:
                yield self.next_event()
            except ClientClosed:
                return

    @property
    def last_event_id(self) -> str | None:
        return self._twin.last_event_id

    @property
    def connected(self) -> bool:
        return self._twin.connected

    subscribe = blocking(AsyncEventsClient.subscribe)
    unsubscribe = blocking(AsyncEventsClient.unsubscribe)
    next_event = blocking(AsyncEventsClient.next_event)
