"""Redis broker: pub/sub on seed 001's channels plus a retention stream for replay.

Publishing runs `publish.lua`, so the stream id, the snapshot and the PUBLISH happen as one step
and the stream order is the delivery order. A subscription owns one pub/sub connection, keeps
the set of patterns its owner wants, hands each event over once (patterns overlap) and after
any loss of that connection reconnects with capped backoff, resubscribes, and relays from the
retention stream what was published meanwhile before anything newer.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from importlib import resources
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from shared import metrics
from shared.broker.base import (
    FROM_START,
    History,
    LostHandler,
    LostScope,
    MessageHandler,
    PatternFilter,
    ResumeHandler,
    Snapshot,
    id_after,
    published_from_wire,
)
from shared.broker.redis_streams import RedisStreams
from shared.broker.tail import StreamTail
from shared.channels import EPOCH_KEY, EVENT_STREAM, published_key, snapshot_key
from shared.events import PendingEvent, PublishedEvent, envelope_bytes, parse_event_id
from shared.logging import get_logger

log = get_logger(__name__)

_PUBLISH_LUA = resources.files("shared.broker").joinpath("publish.lua").read_text()
_CONTROL_CHANNEL = "dronecast:subscriber"
_HISTORY_BATCH = 1000
_BACKOFF_START, _BACKOFF_MAX = 0.1, 5.0
_CONFIRM_TIMEOUT = 5.0
_ADD_TIMEOUT = 10.0
_HEARTBEAT_INTERVAL = 5.0
_HEARTBEAT_TIMEOUT = 15.0


class BrokerUnavailable(RuntimeError):
    """Redis could not be reached; the caller keeps the event (outbox) and retries later."""


# Commands share at most this many connections per Redis; more concurrent callers wait for
# one (a storm of resuming clients queues in-process instead of opening thousands of sockets).
POOL_SIZE = 64


def connect(url: str, password: str = "") -> aioredis.Redis:
    """`password` is used when the URL carries none (REDIS_PASSWORD)."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=POOL_SIZE,
        timeout=10,
        socket_connect_timeout=2,
        socket_timeout=5,
        password=password or None,
    )
    return aioredis.Redis.from_pool(pool)


def connect_for_pubsub(url: str, password: str = "") -> aioredis.Redis:
    """A client whose pub/sub connection never reconnects behind our back.

    redis-py's retries would resubscribe silently after a loss, and whatever was published in
    between would vanish unnoticed (python-socketio #1581). With no retries every loss reaches
    `RedisSubscription._run`, which reconnects and then fills the gap from retention. There is
    no read timeout (a quiet channel is normal); `_heartbeat` catches a half-open connection.
    """
    return aioredis.from_url(
        url,
        socket_connect_timeout=2,
        socket_timeout=None,
        socket_keepalive=True,
        retry=Retry(NoBackoff(), 0),
        password=password or None,
    )


class RedisSubscription:
    def __init__(
        self,
        broker: RedisBroker,
        client: aioredis.Redis,
        on_message: MessageHandler,
        on_resume: ResumeHandler | None,
        on_lost: LostHandler | None,
    ) -> None:
        self._broker = broker
        self._client = client
        self._on_message = on_message
        self._on_resume = on_resume
        self._on_lost = on_lost
        self._filter = PatternFilter()
        self._patterns = self._filter.patterns
        # The newest event handed over (one id order on one Redis), and the epoch it belongs
        # to; read when the first connection is made.
        self._last_id = ""
        self._epoch = ""
        self._positioned = False
        self._confirmations: dict[str, asyncio.Future[None]] = {}
        self._pubsub: Any = None
        self._last_heard = time.monotonic()
        # After a reconnect, messages of the new connection wait here until `on_resume` has
        # filled the gap, so the owner sees the gap's events before anything newer.
        self._held: list[PublishedEvent] | None = None
        self._connected = asyncio.Event()
        self._generation = 0  # counts connections that subscribed every pattern
        self._task = asyncio.create_task(self._run(), name="redis-subscription")

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def add(self, pattern: str) -> None:
        """Subscribe to `pattern`; returns once Redis confirms it (or raises BrokerUnavailable
        after _ADD_TIMEOUT). A connection that dies meanwhile is fine: every reconnect
        subscribes every pattern, this one included, before it counts as connected."""
        if pattern in self._patterns and self.connected:
            return
        self._filter.add(pattern)
        deadline = asyncio.get_running_loop().time() + _ADD_TIMEOUT
        try:
            await asyncio.wait_for(self._connected.wait(), _ADD_TIMEOUT)
            generation = self._generation
            try:
                await self._psubscribe_confirmed([pattern])
                return
            except (BrokerUnavailable, TimeoutError, RedisError, OSError):
                pass  # the connection is going away; wait for the one that replaces it
            while self._generation == generation or not self.connected:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    raise TimeoutError
                await asyncio.sleep(min(0.05, remaining))
        except TimeoutError as exc:
            raise BrokerUnavailable(f"could not subscribe to {pattern} in time") from exc

    async def remove(self, *patterns: str) -> None:
        gone = [pattern for pattern in dict.fromkeys(patterns) if pattern in self._patterns]
        if not gone:
            return
        for pattern in gone:
            self._filter.remove(pattern)
        if self._pubsub is not None and self.connected:
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.punsubscribe(*gone)

    async def _psubscribe_confirmed(self, patterns: list[str]) -> None:
        """PSUBSCRIBE and wait until Redis confirms, so that nothing published later is missed."""
        loop = asyncio.get_running_loop()
        waiting = []
        for pattern in patterns:
            future = self._confirmations.get(pattern)
            if future is None or future.done():
                future = loop.create_future()
                self._confirmations[pattern] = future
            waiting.append(future)
        try:
            await self._pubsub.psubscribe(*patterns)
            await asyncio.wait_for(asyncio.gather(*waiting), _CONFIRM_TIMEOUT)
        finally:
            for pattern in patterns:
                self._confirmations.pop(pattern, None)

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()

    async def _run(self) -> None:
        backoff = _BACKOFF_START
        first = True
        while True:
            try:
                await self._connect_and_listen(resumed=not first)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                if self._connected.is_set():
                    metrics.REDIS_OUTAGES.inc()
                    log.warning("redis_subscription_lost", error=str(exc), retry_in=backoff)
                self._connected.clear()
                for future in self._confirmations.values():
                    if not future.done():
                        future.set_exception(BrokerUnavailable(str(exc)))
                first = False
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX)
                continue
            backoff = _BACKOFF_START

    async def _connect_and_listen(self, resumed: bool) -> None:
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
        self._pubsub = self._client.pubsub()
        resumed = resumed and self._positioned
        self._held = [] if resumed else None
        await self._pubsub.subscribe(_CONTROL_CHANNEL)
        self._last_heard = time.monotonic()
        if not self._positioned:
            self._last_id = await self._broker.latest_id()
            self._epoch = await self._broker.epoch()
            self._positioned = True
        reader = asyncio.create_task(self._read_forever())
        heartbeat = asyncio.create_task(self._heartbeat(reader))
        try:
            if self._patterns:
                await self._psubscribe_confirmed(sorted(self._patterns))
            self._generation += 1
            self._connected.set()
            if resumed:
                metrics.REDIS_RECONNECTS.inc()
                log.info("redis_subscription_restored", patterns=len(self._patterns))
                await self._fill_gap()
                held, self._held = self._held or [], None
                for event in held:
                    self._deliver(event)
                if self._on_resume is not None:
                    await self._on_resume()
            await reader
        finally:
            for task in (heartbeat, reader):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    def _deliver(self, event: PublishedEvent) -> None:
        if event.id:
            if not id_after(event.id, self._last_id):
                return  # the same event through a second matching pattern, or replayed
            self._last_id = event.id
        self._on_message(event)

    async def _fill_gap(self) -> None:
        """After the connection came back: relay what was published while it was down."""
        epoch = await self._broker.epoch()
        history = await self._broker.history(self._last_id, None) if self._last_id else None
        # Our last event is gone and this Redis's first event came after it (or the epoch
        # changed): Redis lost its data and its stream began afresh, so all of it is new to us.
        # Whatever was in flight in the old Redis is gone for good.
        restarted = (
            bool(epoch)
            and (history is None or not history.recovered)
            and ((bool(self._epoch) and epoch != self._epoch) or id_after(epoch, self._last_id))
        )
        if restarted or history is None:
            history = await self._broker.history(FROM_START, None)
        self._epoch = epoch
        if restarted or not history.recovered:
            log.error("bus_gap_unrecoverable", after=self._last_id, redis_restarted=restarted)
            if self._on_lost is not None:
                self._on_lost(LostScope())
        if restarted:
            self._last_id = ""  # ids of the new epoch may be lower than the old ones
        wanted = [event for event in history.events if self._filter.matches(event.channel)]
        for event in wanted:
            self._deliver(event)
        log.info("bus_gap_filled", events=len(wanted), after=self._last_id)

    async def _heartbeat(self, reader: asyncio.Task[None]) -> None:
        """PING through the pub/sub connection; silence past the timeout means it is dead."""
        while not reader.done():
            await asyncio.sleep(_HEARTBEAT_INTERVAL)
            if time.monotonic() - self._last_heard > _HEARTBEAT_TIMEOUT:
                log.warning("redis_subscription_silent", seconds=_HEARTBEAT_TIMEOUT)
                with contextlib.suppress(Exception):
                    await self._pubsub.aclose()  # the reader fails and _run reconnects
                return
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.ping()

    async def _read_forever(self) -> None:
        pubsub = self._pubsub
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=False, timeout=None)
            if message is None:
                continue
            self._last_heard = time.monotonic()
            kind = message["type"]
            if kind == "pmessage":
                channel = message["channel"]
                event = published_from_wire(
                    channel.decode() if isinstance(channel, bytes) else channel, message["data"]
                )
                if self._held is not None:
                    self._held.append(event)
                else:
                    self._deliver(event)
            elif kind == "psubscribe":
                pattern = message["channel"]
                pattern = pattern.decode() if isinstance(pattern, bytes) else pattern
                future = self._confirmations.get(pattern)
                if future is not None and not future.done():
                    future.set_result(None)
                elif self.connected:
                    # Resubscribed without us asking: the connection was replaced underneath.
                    raise ConnectionError("pub/sub connection was re-established implicitly")


def _entry_event(raw_id: bytes, fields: dict[bytes, bytes]) -> tuple[str, PublishedEvent]:
    """A retention stream entry as (its id, the event it was published as)."""
    event_id = raw_id.decode()
    return event_id, published_from_wire(
        fields[b"c"].decode(), envelope_bytes(event_id, fields[b"b"])
    )


# Replays share one copy of the stream's newest events, at most this many (StreamTail).
REPLAY_COPY_EVENTS = 20_000


class RedisBroker:
    def __init__(
        self,
        url: str,
        retention_seconds: int = 600,
        max_events: int = 100_000,
        password: str = "",
    ) -> None:
        self._url = url
        self._password = password
        self._retention_ms = retention_seconds * 1000
        self._max_events = max_events
        self._client: aioredis.Redis | None = None
        self._pubsub_client: aioredis.Redis | None = None
        self._script: Any = None
        self._subscriptions: list[RedisSubscription] = []
        self._tail: StreamTail | None = None
        self._streams: RedisStreams | None = None

    @property
    def streams(self) -> RedisStreams:
        if self._streams is None:
            raise RuntimeError("RedisBroker.start() was not called")
        return self._streams

    @property
    def client(self) -> aioredis.Redis:
        if self._client is None:
            raise RuntimeError("RedisBroker.start() was not called")
        return self._client

    async def start(self) -> None:
        self._client = connect(self._url, self._password)
        self._pubsub_client = connect_for_pubsub(self._url, self._password)
        self._script = self._client.register_script(_PUBLISH_LUA)
        self._tail = StreamTail(
            self._read_page, min(self._max_events, REPLAY_COPY_EVENTS), self._retention_ms
        )
        self._streams = RedisStreams(self._client)

    async def close(self) -> None:
        for subscription in self._subscriptions:
            await subscription.close()
        self._subscriptions.clear()
        for client in (self._client, self._pubsub_client):
            if client is not None:
                await client.aclose()
        self._client = self._pubsub_client = None

    async def ping(self) -> bool:
        try:
            return bool(await self.client.ping())
        except (RedisError, OSError):
            return False

    async def publish(self, event: PendingEvent) -> PublishedEvent:
        snapshot_mode, snapshot_json = "", b""
        if event.serial is not None and event.deletes_snapshot:
            snapshot_mode = "del"
        elif event.serial is not None and event.snapshot is not None:
            snapshot_mode, snapshot_json = "set", orjson.dumps(event.snapshot)
        try:
            event_id, envelope = await self._script(
                keys=[
                    EVENT_STREAM,
                    published_key(event.uid),
                    snapshot_key(event.serial or "-"),
                    EPOCH_KEY,
                ],
                args=[
                    event.channel,
                    event.serial or "",
                    event.body_without_id(),
                    self._max_events,
                    self._retention_ms,
                    snapshot_mode,
                    snapshot_json,
                ],
            )
        except (RedisError, OSError) as exc:
            raise BrokerUnavailable(str(exc)) from exc
        return PublishedEvent(
            id=event_id.decode(), channel=event.channel, serial=event.serial, envelope=envelope
        )

    async def notify(self, channel: str, payload: bytes) -> None:
        try:
            await self.client.publish(channel, payload)
        except (RedisError, OSError) as exc:
            raise BrokerUnavailable(str(exc)) from exc

    async def epoch(self) -> str:
        raw: Any = await self.client.get(EPOCH_KEY)
        return raw.decode() if raw else ""

    async def history(self, after_id: str, serials: frozenset[str] | None) -> History:
        parse_event_id(after_id)
        if after_id != FROM_START and self._tail is not None:
            try:
                shared = await self._tail.history(after_id, serials)
            except RedisError as exc:
                raise BrokerUnavailable(str(exc)) from exc
            if shared is not None:
                return shared
        return await self._history_from_redis(after_id, serials)

    async def _read_page(
        self, start: str, end: str, count: int
    ) -> tuple[str, list[tuple[str, PublishedEvent]]]:
        """One page of the retention stream, with the epoch it belongs to (for StreamTail)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.get(EPOCH_KEY)
        pipe.xrange(EVENT_STREAM, start, end, count=count)
        epoch, entries = await pipe.execute()
        return (epoch or b"").decode(), [_entry_event(raw_id, fields) for raw_id, fields in entries]

    async def _history_from_redis(self, after_id: str, serials: frozenset[str] | None) -> History:
        events: list[PublishedEvent] = []
        cursor = after_id
        first_batch = True
        while True:
            entries: Any = await self.client.xrange(
                EVENT_STREAM, f"({cursor}", "+", count=_HISTORY_BATCH
            )
            if first_batch:
                # The gap is recoverable only if the client's last event is still retained:
                # the stream is trimmed from its head, so then everything after it is there too.
                if after_id != FROM_START and not await self.client.xrange(
                    EVENT_STREAM, after_id, after_id, count=1
                ):
                    return History(recovered=False)
                first_batch = False
            for raw_id, fields in entries:
                cursor, event = _entry_event(raw_id, fields)
                if serials is not None and event.serial not in serials:
                    continue
                events.append(event)
            if len(entries) < _HISTORY_BATCH:
                return History(recovered=True, events=events)

    async def snapshot(self, serial: str) -> Snapshot | None:
        raw: Any = await self.client.get(snapshot_key(serial))
        return Snapshot.from_json(raw) if raw else None

    async def latest_id(self, serial: str | None = None) -> str:
        entries: Any = await self.client.xrevrange(EVENT_STREAM, "+", "-", count=1)
        return entries[0][0].decode() if entries else ""

    def subscription(
        self,
        on_message: MessageHandler,
        on_resume: ResumeHandler | None = None,
        on_lost: LostHandler | None = None,
    ) -> RedisSubscription:
        if self._pubsub_client is None:
            raise RuntimeError("RedisBroker.start() was not called")
        subscription = RedisSubscription(self, self._pubsub_client, on_message, on_resume, on_lost)
        self._subscriptions.append(subscription)
        return subscription
