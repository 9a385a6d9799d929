"""The device sockets: a drone (`/ws/drone/{drone_id}`) and an application
(`/ws/application/{app_id}`).

    async with AsyncDroneClient("http://127.0.0.1:8000", "drone_001") as drone:
        alert = await drone.raise_alert("intrusion", 0.85, lat=40.71, lng=-74.0)
        async for message in drone:           # Command, ProcessingTask, TaskCancelled, ...
            if isinstance(message, Command):
                await drone.send_image(message.alert_id, Path("picture.jpg"))

Each request (`raise_alert`, `send_image`, `respond`, `create_task`, ...) waits for the
server's `ack` and returns what it says, or raises the error it sent (`NotFound`, `Conflict`,
`ValidationError`, ...). The client reconnects by itself with capped backoff. Messages sent
while it is disconnected wait in its queue and go out, in order, when it is back; a request
whose answer was cut off by a disconnect is sent again, except an alert (two alerts would be
stored): that one raises `ConnectionLost`. What the server queued for the device while it was
away (commands, tasks) arrives when it reconnects.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections import deque
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self
from urllib.parse import quote

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from dronecast_client._portal import HasTwin, Portal, blocking
from dronecast_client.errors import (
    ClientClosed,
    ConnectionLost,
    DroneCastError,
    TransportError,
    error_from,
)
from dronecast_client.models import (
    Alert,
    DeviceError,
    DeviceMessage,
    TaskAccepted,
    parse_device_message,
)
from dronecast_client.rest import alert_fields, guess_image_type, image_bytes, task_fields

# Replies that answer a request. An `error` naming no request it answers is a notice.
_UNSOLICITED_ERRORS = frozenset({"EventsLost"})


def socket_url(base_url: str, path: str, token: str | None) -> str:
    base = base_url.rstrip("/")
    base = base.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
    query = "?welcome=1" + (f"&token={quote(token)}" if token else "")
    return f"{base}{path}{query}"


@dataclass
class _Outgoing:
    message: dict[str, Any]
    reply: asyncio.Future[dict[str, Any]] | None = None
    resend: bool = True  # may go out again if its answer was cut off
    sent: bool = field(default=False)


class AsyncDeviceClient:
    """What a drone's and an application's socket share: connection, queue, replies."""

    kind = "device"

    def __init__(
        self,
        url: str,
        device_id: str,
        *,
        token: str | None = None,
        request_timeout: float = 30.0,
        reconnect_delay: float = 0.25,
        reconnect_delay_max: float = 5.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.device_id = device_id
        self.token = token
        self.request_timeout = request_timeout
        self.reconnect_delay = reconnect_delay
        self.reconnect_delay_max = reconnect_delay_max
        self.session: str | None = None
        self.connections = 0  # how many times it (re)connected
        self._outbox: deque[_Outgoing] = deque()
        self._awaiting: deque[_Outgoing] = deque()
        self._wake_writer = asyncio.Event()
        self._inbox: asyncio.Queue[DeviceMessage] = asyncio.Queue()
        self._connected = asyncio.Event()
        self._closed = False
        self._runner: asyncio.Task[None] | None = None

    @property
    def path(self) -> str:
        return f"/ws/{self.kind}/{quote(self.device_id, safe='')}"

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    # --- lifecycle ------------------------------------------------------------------------------

    async def connect(self) -> AsyncDeviceClient:
        """Open the socket. The first attempt's failure is raised (`TransportError`, or
        `Unauthorized`/`Forbidden`/`BadRequest` when the server refuses the device); after
        that, reconnects are automatic."""
        if self._runner is not None:
            return self
        first: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._runner = asyncio.create_task(self._run(first), name=f"dronecast-{self.kind}")
        try:
            await first
        except BaseException:
            await self.close()
            raise
        return self

    async def close(self) -> None:
        """Close the socket. Requests still waiting fail with `ClientClosed`."""
        self._closed = True
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._runner
        for item in [*self._awaiting, *self._outbox]:
            if item.reply is not None and not item.reply.done():
                item.reply.set_exception(ClientClosed("the device client was closed"))
        self._awaiting.clear()
        self._outbox.clear()

    async def __aenter__(self) -> Any:
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def wait_connected(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self._connected.wait(), timeout)

    # --- receiving ------------------------------------------------------------------------------

    async def next_message(self, timeout: float | None = None) -> DeviceMessage:
        """The next message the server sent on its own (not a reply): `TimeoutError` if none
        comes within `timeout` seconds."""
        if self._closed and self._inbox.empty():
            raise ClientClosed("the device client is closed")
        return await asyncio.wait_for(self._inbox.get(), timeout)

    def __aiter__(self) -> AsyncIterator[DeviceMessage]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[DeviceMessage]:
        while not (self._closed and self._inbox.empty()):
            yield await self.next_message()

    # --- sending --------------------------------------------------------------------------------

    async def request(self, message: Mapping[str, Any], *, resend: bool = True) -> dict[str, Any]:
        """Send a message and wait for its `ack` (returned) or `error` (raised)."""
        if self._closed:
            raise ClientClosed("the device client is closed")
        reply: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        item = _Outgoing(dict(message), reply, resend)
        self._enqueue(item)
        try:
            return await asyncio.wait_for(asyncio.shield(reply), self.request_timeout)
        except TimeoutError as exc:
            if not item.sent:
                reply.cancel()  # still queued: it will not go out now that its caller gave up
                raise TransportError(
                    f"{message.get('type')!r} could not be sent within {self.request_timeout}s "
                    "(not connected); it was not sent"
                ) from exc
            raise TransportError(
                f"no answer to {message.get('type')!r} within {self.request_timeout}s"
            ) from exc

    async def send(self, message: Mapping[str, Any]) -> None:
        """Queue a message that gets no reply."""
        if self._closed:
            raise ClientClosed("the device client is closed")
        self._enqueue(_Outgoing(dict(message)))

    def _enqueue(self, item: _Outgoing, front: bool = False) -> None:
        if front:
            self._outbox.appendleft(item)
        else:
            self._outbox.append(item)
        self._wake_writer.set()

    # --- the connection loop --------------------------------------------------------------------

    async def _run(self, first: asyncio.Future[None]) -> None:
        delay = self.reconnect_delay
        while not self._closed:
            try:
                ws = await connect(
                    socket_url(self.url, self.path, self.token),
                    open_timeout=self.request_timeout,
                    max_size=None,
                )
            except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
                if not first.done():
                    first.set_exception(TransportError(f"cannot connect to {self.url}: {exc}"))
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.reconnect_delay_max)
                continue
            try:
                refused = await self._welcome(ws)
                if refused is not None:
                    if not first.done():
                        first.set_exception(refused)
                        return
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.reconnect_delay_max)
                    continue
                delay = self.reconnect_delay
                self.connections += 1
                self._connected.set()
                if not first.done():
                    first.set_result(None)
                await self._serve(ws)
            finally:
                self._connected.clear()
                with contextlib.suppress(Exception):
                    await ws.close()
                self._requeue_unanswered()
            if not self._closed:
                await asyncio.sleep(min(delay, 0.1))

    async def _welcome(self, ws: ClientConnection) -> DroneCastError | None:
        """The server's first message: `connection_established`, or why it refused us."""
        try:
            raw = json.loads(await asyncio.wait_for(ws.recv(), self.request_timeout))
        except (ConnectionClosed, TimeoutError, ValueError) as exc:
            return TransportError(f"the server closed the socket at once: {exc}")
        if raw.get("type") == "error":
            return error_from(raw)
        self.session = raw.get("session")
        return None

    async def _serve(self, ws: ClientConnection) -> None:
        reader = asyncio.create_task(self._read(ws))
        writer = asyncio.create_task(self._write(ws))
        try:
            await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (reader, writer):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _write(self, ws: ClientConnection) -> None:
        while True:
            while not self._outbox:
                self._wake_writer.clear()
                await self._wake_writer.wait()
            item = self._outbox.popleft()
            if item.reply is not None and item.reply.done():
                continue  # its caller gave up or the client closed
            if item.reply is not None:
                self._awaiting.append(item)  # before sending: the answer may come at once
            try:
                await ws.send(json.dumps(item.message))
            except ConnectionClosed:
                if item.reply is not None:
                    self._awaiting.remove(item)
                self._enqueue(item, front=True)  # never written: it goes out after reconnect
                return
            item.sent = True

    async def _read(self, ws: ClientConnection) -> None:
        async for frame in ws:
            try:
                raw = json.loads(frame)
            except ValueError:
                continue
            if not isinstance(raw, dict):
                continue
            kind = raw.get("type")
            if kind == "ping":
                self._enqueue(_Outgoing({"type": "pong"}), front=True)
            elif kind in ("ack", "pong") or (
                kind == "error" and raw.get("error") not in _UNSOLICITED_ERRORS and self._awaiting
            ):
                self._answer(raw)
            elif kind == "connection_established":
                self.session = raw.get("session")
            else:
                try:
                    self._inbox.put_nowait(parse_device_message(raw))
                except ValueError:
                    self._inbox.put_nowait(DeviceError(error="Unreadable", detail=str(raw)[:500]))

    def _answer(self, raw: dict[str, Any]) -> None:
        """Replies come in the order the requests were sent: the oldest waiting one is it."""
        if not self._awaiting:
            return
        item = self._awaiting.popleft()
        if item.reply is None or item.reply.done():
            return
        if raw.get("type") == "error":
            item.reply.set_exception(error_from(raw))
        else:
            item.reply.set_result(raw)

    def _requeue_unanswered(self) -> None:
        """The socket closed: requests with no answer yet go out again after the reconnect
        (before anything queued later), except those that must not be sent twice."""
        retry = []
        while self._awaiting:
            item = self._awaiting.popleft()
            if item.reply is None or item.reply.done():
                continue
            if item.resend:
                retry.append(item)
            else:
                item.reply.set_exception(
                    ConnectionLost(
                        f"the connection closed before the server answered {item.message['type']!r}"
                    )
                )
        for item in reversed(retry):
            self._enqueue(item, front=True)
        # Pongs answer a ping of the connection that is gone.
        self._outbox = deque(i for i in self._outbox if i.message.get("type") != "pong")


def _image_fields(image: bytes | str | Path, content_type: str | None) -> dict[str, Any]:
    """An image as the `image` message carries it: a URL as is, bytes (or a file) inline."""
    if isinstance(image, str) and image.startswith(("http://", "https://", "/")):
        return {"image_url": image}
    return {
        "image_data": base64.b64encode(image_bytes(image)).decode(),
        "content_type": content_type or guess_image_type(image),
    }


class AsyncDroneClient(AsyncDeviceClient):
    """A drone's socket. Receives `Command`, `ProcessingTask` and `TaskCancelled`."""

    kind = "drone"

    async def raise_alert(
        self,
        alert_type: str,
        score: float,
        *,
        lat: float,
        lng: float,
        description: str | None = None,
        severity: str | None = None,
    ) -> Alert:
        """Raise an alert; returns it as stored (`pending`). Applications hear of it."""
        data = alert_fields(self.device_id, alert_type, score, lat, lng, description, severity)
        ack = await self.request({"type": "alert", "data": data}, resend=False)
        return Alert.model_validate(ack["data"])

    async def send_image(
        self, alert_id: str, image: bytes | str | Path, *, content_type: str | None = None
    ) -> Alert:
        """The picture taken for a command: JPEG, PNG or WebP bytes, a file path, or a URL.
        The alert completes; returns it with its `image_url`."""
        data = {"alert_id": alert_id, **_image_fields(image, content_type)}
        ack = await self.request({"type": "image", "data": data})
        return Alert.model_validate(ack["data"])

    async def report_status(
        self,
        task_id: str,
        status: str = "processing",
        additional_data: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Progress on a task; the first one acknowledges it, and each is a heartbeat."""
        data = {
            "task_id": task_id,
            "status": status,
            "additional_data": dict(additional_data or {}),
        }
        return await self.request({"type": "task_status_update", "data": data})

    async def report_result(
        self,
        task_id: str,
        result_data: Mapping[str, Any] | None = None,
        *,
        success: bool = True,
        error_message: str | None = None,
        processing_time: float | None = None,
    ) -> dict[str, Any]:
        """The task's result (`success=False` with `error_message` fails it)."""
        data: dict[str, Any] = {
            "task_id": task_id,
            "drone_id": self.device_id,
            "result_data": dict(result_data or {}),
            "success": success,
        }
        if error_message is not None:
            data["error_message"] = error_message
        if processing_time is not None:
            data["processing_time"] = processing_time
        return await self.request({"type": "processing_result", "data": data})


class AsyncApplicationClient(AsyncDeviceClient):
    """An application's socket. Receives `AlertUpdate`, `TaskStatusUpdate` and
    `ProcessingResultReceived`."""

    kind = "application"

    async def respond(self, alert_id: str, actions: list[str]) -> Alert:
        """Answer a pending alert; its drone receives the actions as a `Command`."""
        message = {"type": "response", "alert_id": alert_id, "data": {"actions": actions}}
        ack = await self.request(message)
        return Alert.model_validate(ack["data"])

    async def create_task(
        self,
        drone_id: str,
        task_type: str,
        input_data: Mapping[str, Any] | None = None,
        *,
        priority: int = 3,
        deadline_seconds: float | None = None,
    ) -> TaskAccepted:
        """Send a processing task to a drone (it waits as `pending` while the drone is away).
        Returns its `task_id` and the `deadline_at` that applies."""
        data = task_fields(
            self.device_id, drone_id, task_type, input_data, priority, deadline_seconds
        )
        ack = await self.request({"type": "processing_task", "data": data}, resend=False)
        return TaskAccepted.model_validate(ack)


class _SyncDevice(HasTwin):
    _twin_class: type[AsyncDeviceClient]

    def __init__(self, url: str, device_id: str, **options: Any) -> None:
        twin_class = self._twin_class
        self._portal = Portal(f"dronecast-{twin_class.kind}-{device_id}")

        async def make() -> AsyncDeviceClient:
            return twin_class(url, device_id, **options)

        self._twin = self._portal.call(make())

    def connect(self) -> Self:
        self._portal.call(self._twin.connect())
        return self

    def __enter__(self) -> Self:
        return self.connect()

    def __iter__(self) -> Iterator[DeviceMessage]:
        while True:
            try:
                yield self._portal.call(self._twin.next_message())
            except ClientClosed:
                return

    @property
    def connected(self) -> bool:
        return self._twin.connected

    @property
    def session(self) -> str | None:
        return self._twin.session


class DroneClient(_SyncDevice):
    """The blocking form of `AsyncDroneClient`."""

    _twin_class = AsyncDroneClient

    next_message = blocking(AsyncDroneClient.next_message)
    request = blocking(AsyncDroneClient.request)
    raise_alert = blocking(AsyncDroneClient.raise_alert)
    send_image = blocking(AsyncDroneClient.send_image)
    report_status = blocking(AsyncDroneClient.report_status)
    report_result = blocking(AsyncDroneClient.report_result)


class ApplicationClient(_SyncDevice):
    """The blocking form of `AsyncApplicationClient`."""

    _twin_class = AsyncApplicationClient

    next_message = blocking(AsyncApplicationClient.next_message)
    request = blocking(AsyncApplicationClient.request)
    respond = blocking(AsyncApplicationClient.respond)
    create_task = blocking(AsyncApplicationClient.create_task)
