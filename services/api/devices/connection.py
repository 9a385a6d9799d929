"""One device socket on this replica: its identity, liveness, and an ordered outgoing queue.

Everything sent to a device goes through its queue and one writer task, so frames keep their
order and a slow or dead device never blocks the code that wants to tell it something. A send
that must know it reached the socket (a command) waits for the writer's confirmation.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

import orjson
from starlette.websockets import WebSocket

from shared.auth import ANONYMOUS_ADMIN, Principal
from shared.logging import get_logger
from shared.models.base import utcnow
from shared.settings import Settings

log = get_logger(__name__)


class DeviceKind(StrEnum):
    DRONE = "drone"
    APPLICATION = "application"


class CloseReason(StrEnum):
    CLIENT = "closed"  # the device closed it, or the network did
    HEARTBEAT = "heartbeat_timeout"  # half-open: answered pings once, then went silent
    REPLACED = "replaced"  # a newer connection of the same drone took over
    SHUTDOWN = "shutdown"  # this replica is stopping; the device reconnects elsewhere
    SLOW = "slow_consumer"  # its queue overflowed
    INVALID = "invalid"  # the path's id or the token is not acceptable


# WebSocket close codes sent by the server (4000-4999: private use).
CLOSE_CODES: dict[CloseReason, int] = {
    CloseReason.HEARTBEAT: 4000,
    CloseReason.REPLACED: 4001,
    CloseReason.SLOW: 4008,
    CloseReason.SHUTDOWN: 1001,
    CloseReason.INVALID: 1008,
}


def encode(message: dict[str, Any]) -> str:
    return orjson.dumps(message).decode()


class Connection:
    def __init__(
        self, websocket: WebSocket, kind: DeviceKind, device_id: str, settings: Settings
    ) -> None:
        self.settings = settings
        self.websocket = websocket
        self.kind = kind
        self.device_id = device_id
        self.session = uuid.uuid4().hex
        # The presence version its connect wrote, and the newest another connection of the same
        # drone announced: the higher version owns the drone, the other closes.
        self.presence_version = 0
        self.newest_seen_version = 0
        self.last_heard = time.monotonic()
        self.last_heard_at: datetime = utcnow()
        self.last_ping = time.monotonic()
        # Set by the first `pong`: from then on silence past the heartbeat timeout means the
        # socket is half-open. Clients that never answer our pings (seed 000's own) are left to
        # the WebSocket protocol's pings, which the server (uvicorn) sends and enforces.
        self.heartbeat_tracked = False
        # Speaks DroneCast's additions to the seeds' protocol (asked for `?welcome=1`, or sent a
        # `ping`): only then does the server send its own `ping` messages. Seed clients read
        # every message as the one they wait for, and rely on the WebSocket protocol's pings.
        self.extended = False
        self.close_reason: CloseReason | None = None
        # Who the socket speaks as (ANONYMOUS_ADMIN when AUTH_ENABLED=false).
        self.principal: Principal = ANONYMOUS_ADMIN
        self.closing = asyncio.Event()
        self.command_lock = asyncio.Lock()
        self._queue: asyncio.Queue[tuple[str, asyncio.Future[bool] | None]] = asyncio.Queue(
            settings.device_queue_limit
        )

    def __repr__(self) -> str:
        return f"<Connection {self.kind.value}:{self.device_id} {self.session[:8]}>"

    @property
    def rate_key(self) -> str:
        """Whose message budget this socket spends: its token's subject, else the device."""
        if self.principal is ANONYMOUS_ADMIN:
            return f"{self.kind.value}:{self.device_id}"
        return f"sub:{self.principal.sub}"

    def heard(self) -> None:
        self.last_heard = time.monotonic()
        self.last_heard_at = utcnow()

    def silent_for(self) -> float:
        return time.monotonic() - self.last_heard

    def close(self, reason: CloseReason) -> None:
        """Ask the connection to end (idempotent; the first reason is kept)."""
        if self.close_reason is None:
            self.close_reason = reason
        self.closing.set()

    def send_text(self, text: str) -> bool:
        """Queue a frame. False (and the connection is cut off) when the device is too slow."""
        if self.closing.is_set():
            return False
        try:
            self._queue.put_nowait((text, None))
        except asyncio.QueueFull:
            log.warning("device_slow_consumer", kind=self.kind.value, device_id=self.device_id)
            self.close(CloseReason.SLOW)
            return False
        return True

    def send(self, message: dict[str, Any]) -> bool:
        return self.send_text(encode(message))

    async def send_confirmed(self, message: dict[str, Any]) -> bool:
        """Queue a frame and wait until it was written to the socket (True) or could not be."""
        if self.closing.is_set():
            return False
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait((encode(message), done))
        except asyncio.QueueFull:
            self.close(CloseReason.SLOW)
            return False
        closing = asyncio.ensure_future(self.closing.wait())
        waiters: set[asyncio.Future[Any]] = {done, closing}
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closing.cancel()
        return done.done() and not done.cancelled() and done.result()

    async def write_forever(self) -> None:
        """The connection's one writer. Ends when the socket fails; fails what is left."""
        try:
            while True:
                text, done = await self._queue.get()
                try:
                    await self.websocket.send_text(text)
                except Exception:  # any transport failure ends this connection
                    if done is not None and not done.done():
                        done.set_result(False)
                    self.close(CloseReason.CLIENT)
                    return
                if done is not None and not done.done():
                    done.set_result(True)
        finally:
            while not self._queue.empty():
                _, done = self._queue.get_nowait()
                if done is not None and not done.done():
                    done.set_result(False)

    async def close_socket(self, wait_seconds: float = 1.0) -> None:
        """Send a close frame with our reason; a half-open peer cannot hold us up for long."""
        code = CLOSE_CODES.get(self.close_reason or CloseReason.CLIENT)
        if code is None:
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(
                self.websocket.close(code, (self.close_reason or "").replace("_", " ")),
                wait_seconds,
            )
