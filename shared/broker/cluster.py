"""The bus on a Redis Cluster (`REDIS_CLUSTER=true`; Redis >= 7): sharded pub/sub, a log per
partition, and failover without a silent gap.

**Partitions.** An event belongs to the hash slot of its drone's serial (`PendingEvent.
partition_key`). `publish.lua` runs on that slot's master and touches only keys and channels
of that slot: the slot's log `dronecast:log:{T}` (a stream: ids, replay window), the event's
idempotency marker, the drone's snapshot `dronecast:snapshot:{SN}`, an SPUBLISH on the drone's
channel `drone:{SN}:{kind}` for direct subscribers, and one on the slot's fleet channel
`dronecast:fleet:{T}` (the logical channel, a newline, the envelope) for our own consumers.
Ids are the log's stream ids: they order one slot, so one drone, never the whole fleet.

**Fleet-wide consumers** (a gateway with an `{"all": true}` client, each api's alert watcher,
each worker) SSUBSCRIBE to the fleet channel of every slot: 16384 channels spread over the
masters as the slots are, so no shard carries the fleet alone. A gateway whose clients watch
some drones subscribes only to their slots' fleet channels, lazily, and drops the other drones
of a slot as it drops any event nobody local wants.

**Publishing** is `EVALSHA publish.lua` followed by `WAIT 1 <REDIS_REPLICA_ACK_MS>` on the same
connection: an event counts as published (its outbox entry is pulled) only once a replica has
it, so a master that dies before replicating cannot take an acknowledged event with it. If the
WAIT falls short the outbox keeps the event and publishes it again (idempotent while the marker
lives; anew on the promoted replica if it died with its master).

**Subscribing** uses one plain connection per master (`ShardReader`), never redis-py's
`RedisCluster.pubsub()`: that one reads shards in turn (one dead node stalls every shard), only
re-routes when a *command* fails (a subscribe-only client never moves to the promoted replica),
and resubscribes silently. Here a reader that loses its node hands its channels back; the
subscription re-reads the topology (`CLUSTER SHARDS`) until another master holds their slots,
subscribes there, and refills each slot from its log after the last id it saw, holding that
slot's live events meanwhile. If that id is no longer in the log (the master failed over before
replicating it, or it aged out) nothing proves what is missing: the owner hears `on_lost` for
those slots, and everything after follows.

Why not `RedisCluster` for commands either: `WAIT` must follow the write on the *same*
connection, and `RedisCluster` sends `WAIT` to every node and adds the answers up. The routing
needed here (slot -> master, MOVED, ASK, a topology refresh on failure) is small and explicit.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from importlib import resources
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.asyncio.connection import Connection, parse_url
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.exceptions import (
    AskError,
    ClusterDownError,
    MovedError,
    NoScriptError,
    ReadOnlyError,
    RedisError,
    TryAgainError,
)

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
from shared.broker.cluster_streams import ClusterStreams
from shared.broker.redis import POOL_SIZE, BrokerUnavailable
from shared.channels import (
    DRONE_PREFIX,
    FLEET_PREFIX,
    SLOTS,
    SYSTEM_BROADCAST,
    log_key,
    partition_epoch_key,
    partition_fleet_channel,
    partition_published_key,
    sharded_channel,
    slot_of,
    tagged_snapshot_key,
)
from shared.events import PendingEvent, PublishedEvent, envelope_bytes, parse_event_id
from shared.logging import get_logger

log = get_logger(__name__)

Node = str  # "host:port" of a cluster node

_PUBLISH_LUA = resources.files("shared.broker").joinpath("publish.lua").read_text()
_PUBLISH_SHA = hashlib.sha1(_PUBLISH_LUA.encode()).hexdigest()
_HISTORY_BATCH = 1000
_PIPELINE_SLOTS = 256  # slots refilled per round trip
_REFRESH_EVERY = 30.0  # seconds between topology reads when nothing went wrong
_REFRESH_MIN_GAP = 0.1
_DOWN_FOR = 0.5  # a node that failed is skipped this long (fail fast while it fails over)
# Between reads of the topology while a shard fails over: CLUSTER SHARDS is cheap, and every
# read that finds the promoted replica sooner shortens the gap.
_BACKOFF_START, _BACKOFF_MAX = 0.1, 0.5
_CONFIRM_TIMEOUT = 5.0
_ADD_TIMEOUT = 10.0
_HEARTBEAT_INTERVAL = 5.0
_HEARTBEAT_TIMEOUT = 15.0
_FLEET_PREFIX_BYTES = FLEET_PREFIX.encode()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _as_dict(raw: Any) -> dict[str, Any]:
    """CLUSTER SHARDS items come as maps (RESP3, or redis-py's parser) or flat pairs (RESP2)."""
    if isinstance(raw, dict):
        return {_text(key): value for key, value in raw.items()}
    items = list(raw)
    return {_text(items[i]): items[i + 1] for i in range(0, len(items) - 1, 2)}


class Topology:
    """Which master holds each hash slot, and a command client per node, from CLUSTER SHARDS.

    Read again after a redirect or a failed node (reads in flight are shared), and every
    `_REFRESH_EVERY` seconds in the background while in use."""

    def __init__(self, url: str, command_timeout: float, password: str = "") -> None:
        kwargs: dict[str, Any] = dict(parse_url(url))
        kwargs.pop("db", None)  # a cluster has database 0 only
        if password and not kwargs.get("password"):
            kwargs["password"] = password  # REDIS_PASSWORD, when the URL carries none
        self._connection_class = kwargs.pop("connection_class", Connection)
        seed = f"{kwargs.pop('host', '127.0.0.1')}:{kwargs.pop('port', 6379)}"
        self._kwargs = kwargs
        self._command_timeout = command_timeout
        self._seeds: list[Node] = [seed]
        self._known: list[Node] = [seed]
        self._slots: list[Node | None] = [None] * SLOTS
        self._replicas: dict[Node, int] = {}
        self._clients: dict[Node, aioredis.Redis] = {}
        self._down_until: dict[Node, float] = {}
        self._refreshing: asyncio.Task[None] | None = None
        self._refreshed_at = 0.0
        self._background: set[asyncio.Task[None]] = set()

    # --- reading the map --------------------------------------------------------------------

    def master_for(self, slot: int) -> Node | None:
        return self._slots[slot]

    def masters(self) -> set[Node]:
        return {node for node in self._slots if node is not None}

    def replicas_of(self, node: Node) -> int:
        return self._replicas.get(node, 0)

    @property
    def known(self) -> bool:
        return any(node is not None for node in self._slots)

    def mark_down(self, node: Node) -> None:
        self._down_until[node] = time.monotonic() + _DOWN_FOR

    def is_down(self, node: Node) -> bool:
        return self._down_until.get(node, 0.0) > time.monotonic()

    # --- connections ------------------------------------------------------------------------

    @staticmethod
    def _address(node: Node) -> tuple[str, int]:
        host, _, port = node.rpartition(":")
        return host, int(port)

    def client(self, node: Node) -> aioredis.Redis:
        """A pooled command client for `node` that never retries behind our back."""
        client = self._clients.get(node)
        if client is None:
            host, port = self._address(node)
            pool = aioredis.BlockingConnectionPool(
                max_connections=POOL_SIZE,
                timeout=10,
                connection_class=self._connection_class,
                host=host,
                port=port,
                socket_connect_timeout=2,
                socket_timeout=self._command_timeout,
                retry=Retry(NoBackoff(), 0),
                **self._kwargs,
            )
            client = aioredis.Redis.from_pool(pool)
            self._clients[node] = client
        return client

    def pubsub_connection(self, node: Node) -> Connection:
        """A plain connection for SSUBSCRIBE: no read timeout (a quiet channel is normal; the
        reader's heartbeat catches a half-open one) and no reconnect of its own."""
        host, port = self._address(node)
        connection: Connection = self._connection_class(
            host=host,
            port=port,
            socket_connect_timeout=2,
            socket_timeout=None,
            socket_keepalive=True,
            retry=Retry(NoBackoff(), 0),
            protocol=2,  # pub/sub messages as plain replies, read by ShardReader itself
            **self._kwargs,
        )
        return connection

    async def close(self) -> None:
        for task in list(self._background) + ([self._refreshing] if self._refreshing else []):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for client in self._clients.values():
            with contextlib.suppress(Exception):
                await client.aclose()
        self._clients.clear()

    # --- refreshing -------------------------------------------------------------------------

    async def refresh(self, force: bool = False) -> None:
        """Read the slot map again (shared with any read already under way). Raises
        BrokerUnavailable when no node answers."""
        if self._refreshing is None or self._refreshing.done():
            gap = time.monotonic() - self._refreshed_at
            if not force and self.known and gap < _REFRESH_EVERY:
                return
            if gap < _REFRESH_MIN_GAP:
                await asyncio.sleep(_REFRESH_MIN_GAP - gap)
            if self._refreshing is None or self._refreshing.done():
                self._refreshing = asyncio.create_task(self._read_shards())
        await asyncio.shield(self._refreshing)

    def refresh_soon(self) -> None:
        """Refresh in the background (after a failure seen on a path that cannot wait)."""

        async def refresh() -> None:
            with contextlib.suppress(BrokerUnavailable):
                await self.refresh(force=True)

        if self._refreshing is not None and not self._refreshing.done():
            return
        task = asyncio.create_task(refresh())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def stale(self) -> bool:
        return time.monotonic() - self._refreshed_at > _REFRESH_EVERY

    async def _read_shards(self) -> None:
        masters = sorted(self.masters())
        candidates = list(dict.fromkeys([*masters, *self._known, *self._seeds]))
        errors = []
        for node in candidates:
            try:
                shards: Any = await asyncio.wait_for(
                    self.client(node).execute_command("CLUSTER", "SHARDS"), 2.0
                )
            except (RedisError, OSError, TimeoutError) as exc:
                errors.append(f"{node}: {exc}")
                continue
            self._apply(shards)
            self._refreshed_at = time.monotonic()
            return
        raise BrokerUnavailable("no cluster node answered CLUSTER SHARDS: " + "; ".join(errors))

    def _apply(self, shards: Any) -> None:
        slots: list[Node | None] = [None] * SLOTS
        replicas: dict[Node, int] = {}
        known: list[Node] = []
        for raw_shard in shards:
            shard = _as_dict(raw_shard)
            master: Node | None = None
            online_replicas = 0
            for raw_node in shard.get("nodes") or []:
                entry = _as_dict(raw_node)
                endpoint = _text(entry.get("endpoint") or "")
                host = endpoint if endpoint not in ("", "?") else _text(entry.get("ip") or "")
                port = entry.get("port") or entry.get("tls-port")
                if not host or not port:
                    continue
                node = f"{host}:{int(port)}"
                known.append(node)
                health = _text(entry.get("health") or "online")
                role = _text(entry.get("role") or "")
                if role == "master" and health == "online":
                    master = node
                elif role == "replica" and health != "fail":
                    # "loading": connected and catching up (Redis 7.0 says so until the first
                    # replication ping); a WAIT on it succeeds once it has caught up.
                    online_replicas += 1
            ranges = [int(value) for value in shard.get("slots") or []]
            if master is None:
                continue
            replicas[master] = online_replicas
            for start, end in zip(ranges[::2], ranges[1::2], strict=False):
                for slot in range(start, end + 1):
                    slots[slot] = master
        changed = slots != self._slots
        self._slots, self._replicas = slots, replicas
        self._known = list(dict.fromkeys([*sorted(set(replicas)), *known]))
        for node in set(self._clients) - set(self._known) - set(self._seeds):
            client = self._clients.pop(node)
            task = asyncio.create_task(client.aclose())
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        if changed:
            log.info("redis_cluster_topology", masters=sorted(replicas), replicas=replicas)


Commands = list[tuple[Any, ...]] | Callable[[Node], list[tuple[Any, ...]]]


class ClusterBroker:
    def __init__(
        self,
        url: str,
        retention_seconds: int = 600,
        max_events: int = 100_000,
        replica_ack_ms: int = 1000,
        password: str = "",
    ) -> None:
        self._retention_ms = retention_seconds * 1000
        self._max_events = max_events
        self._replica_ack_ms = replica_ack_ms
        self.topology = Topology(url, 5.0 + replica_ack_ms / 1000, password)
        self._subscriptions: list[ClusterSubscription] = []
        self._unreplicated_warned: set[Node] = set()
        self._streams = ClusterStreams(self)

    async def start(self) -> None:
        try:
            await self.topology.refresh(force=True)
        except BrokerUnavailable as exc:  # like one Redis: start, report not ready, retry
            log.warning("redis_cluster_unreachable", error=str(exc))

    async def close(self) -> None:
        for subscription in self._subscriptions:
            await subscription.close()
        self._subscriptions.clear()
        await self.topology.close()

    async def ping(self) -> bool:
        """Ready while the cluster's map is known and a master answers. Not the whole cluster:
        while one shard fails over, its events wait in the outbox and the rest flows."""
        try:
            if not self.topology.known:
                await self.topology.refresh(force=True)
            for node in sorted(self.topology.masters()):
                with contextlib.suppress(RedisError, OSError):
                    if await self.topology.client(node).ping():
                        return True
        except BrokerUnavailable:
            pass
        return False

    # --- routing ----------------------------------------------------------------------------

    async def run_on_slot(self, slot: int, commands: Commands) -> list[Any]:
        """`commands(node)` in one round trip on one connection to the master of `slot`,
        following MOVED and ASK. A master that cannot be reached is BrokerUnavailable."""
        asking: Node | None = None
        for _ in range(5):
            node = asking or await self._master(slot)
            pipe = self.topology.client(node).pipeline(transaction=False)
            if asking:
                pipe.execute_command("ASKING")
            for command in commands(node) if callable(commands) else commands:
                pipe.execute_command(*command)
            try:
                results: list[Any] = await pipe.execute(raise_on_error=False)
            except (RedisError, OSError) as exc:
                self.topology.mark_down(node)
                self.topology.refresh_soon()
                raise BrokerUnavailable(f"{node}: {exc}") from exc
            if asking:
                results = results[1:]
            error = next((r for r in results if isinstance(r, Exception)), None)
            if error is None:
                return results
            if isinstance(error, MovedError):
                await self.topology.refresh(force=True)
                asking = None
            elif isinstance(error, AskError):
                asking = f"{error.host}:{error.port}"
            elif isinstance(error, NoScriptError):
                await self.topology.client(node).script_load(_PUBLISH_LUA)
            elif isinstance(error, ClusterDownError | TryAgainError | ReadOnlyError):
                self.topology.refresh_soon()
                raise BrokerUnavailable(f"{node}: {error}") from error
            elif isinstance(error, RedisError):
                raise error
            else:
                raise BrokerUnavailable(f"{node}: {error}") from error
        raise BrokerUnavailable(f"slot {slot}: redirected too often")

    @property
    def streams(self) -> ClusterStreams:
        """Telemetry's partitioned streams, each call on the master of its partition's slot."""
        return self._streams

    # The streams' SlotRouter: where a slot is, and what went wrong there.

    async def master_of(self, slot: int) -> Node:
        """The master that holds `slot` now (BrokerUnavailable if none can be reached)."""
        return await self._master(slot)

    def client_for(self, node: Node) -> aioredis.Redis:
        return self.topology.client(node)

    async def slot_moved(self) -> None:
        await self.topology.refresh(force=True)

    def node_failed(self, node: Node) -> None:
        self.topology.mark_down(node)
        self.topology.refresh_soon()

    async def _master(self, slot: int) -> Node:
        if self.topology.stale():
            self.topology.refresh_soon()
        node = self.topology.master_for(slot)
        if node is None:
            await self.topology.refresh(force=True)
            node = self.topology.master_for(slot)
        if node is None:
            raise BrokerUnavailable(f"no master holds slot {slot}")
        if self.topology.is_down(node):
            self.topology.refresh_soon()
            raise BrokerUnavailable(f"{node} is down (slot {slot})")
        return node

    async def run_on_slots(
        self, commands: dict[int, tuple[Any, ...]]
    ) -> dict[int, Any | BaseException]:
        """One command per slot, pipelined per master; a slot whose master fails gets the
        error (BrokerUnavailable) as its result, and a redirected one is retried alone."""
        by_node: dict[Node, list[int]] = defaultdict(list)
        results: dict[int, Any | BaseException] = {}
        for slot in commands:
            node = self.topology.master_for(slot)
            if node is None or self.topology.is_down(node):
                results[slot] = BrokerUnavailable(f"slot {slot} has no reachable master")
            else:
                by_node[node].append(slot)

        async def on_node(node: Node, slots: list[int]) -> None:
            pipe = self.topology.client(node).pipeline(transaction=False)
            for slot in slots:
                pipe.execute_command(*commands[slot])
            try:
                answers = await pipe.execute(raise_on_error=False)
            except (RedisError, OSError) as exc:
                self.topology.mark_down(node)
                self.topology.refresh_soon()
                for slot in slots:
                    results[slot] = BrokerUnavailable(f"{node}: {exc}")
                return
            for slot, answer in zip(slots, answers, strict=True):
                if isinstance(answer, AskError):  # MOVED too
                    try:
                        [answer] = await self.run_on_slot(slot, [commands[slot]])
                    except (BrokerUnavailable, RedisError) as exc:
                        answer = exc
                results[slot] = answer

        await asyncio.gather(*(on_node(node, slots) for node, slots in by_node.items()))
        return results

    # --- the Broker protocol ----------------------------------------------------------------

    async def publish(self, event: PendingEvent) -> PublishedEvent:
        slot = slot_of(event.partition_key)
        snapshot_mode, snapshot_json = "", b""
        if event.serial is not None and event.deletes_snapshot:
            snapshot_mode = "del"
        elif event.serial is not None and event.snapshot is not None:
            snapshot_mode, snapshot_json = "set", orjson.dumps(event.snapshot)
        channel = event.channel
        keys = [
            log_key(slot),
            partition_published_key(slot, event.uid),
            tagged_snapshot_key(event.serial) if event.serial else partition_epoch_key(slot),
            partition_epoch_key(slot),
        ]
        args = [
            channel,
            event.serial or "",
            event.body_without_id(),
            self._max_events,
            self._retention_ms,
            snapshot_mode,
            snapshot_json,
            "SPUBLISH",
            sharded_channel(channel),
            partition_fleet_channel(slot),
        ]
        waited = False

        def commands(node: Node) -> list[tuple[Any, ...]]:
            nonlocal waited
            script = ("EVALSHA", _PUBLISH_SHA, len(keys), *keys, *args)
            waited = self._replica_ack_ms > 0 and self.topology.replicas_of(node) > 0
            if not waited:
                self._warn_unreplicated(node)
                return [script]
            return [script, ("WAIT", 1, self._replica_ack_ms)]

        try:
            results = await self.run_on_slot(slot, commands)
        except RedisError as exc:
            raise BrokerUnavailable(str(exc)) from exc
        event_id, envelope = results[0]
        if waited and int(results[1]) < 1:
            # Live subscribers may have it already; the outbox keeps it until a replica does.
            self.topology.refresh_soon()  # a replica that is gone stops being waited for
            raise BrokerUnavailable(
                f"event {_text(event_id)} not on a replica within {self._replica_ack_ms} ms"
            )
        return PublishedEvent(
            id=_text(event_id), channel=channel, serial=event.serial, envelope=envelope
        )

    def _warn_unreplicated(self, node: Node) -> None:
        if self._replica_ack_ms > 0 and node not in self._unreplicated_warned:
            self._unreplicated_warned.add(node)
            log.warning(
                "publishing_without_replica",
                node=node,
                detail="this master has no online replica: a failover may lose its events",
            )

    async def notify(self, channel: str, payload: bytes) -> None:
        try:
            await self.run_on_slot(key_slot(channel.encode()), [("SPUBLISH", channel, payload)])
        except RedisError as exc:
            raise BrokerUnavailable(str(exc)) from exc

    async def read_log(self, slot: int, start: str, inclusive: bool) -> list[tuple[str, dict]]:
        """The slot's log from `start` on (inclusive or not), oldest first."""
        entries: list[tuple[str, dict]] = []
        cursor = start if inclusive else f"({start}"
        while True:
            [batch] = await self.run_on_slot(
                slot, [("XRANGE", log_key(slot), cursor, "+", "COUNT", _HISTORY_BATCH)]
            )
            entries += [(_text(raw_id), fields) for raw_id, fields in batch]
            if len(batch) < _HISTORY_BATCH:
                return entries
            cursor = f"({entries[-1][0]}"

    async def history(self, after_id: str, serials: frozenset[str] | None) -> History:
        parse_event_id(after_id)
        slots = {slot_of(serial) for serial in serials} if serials is not None else set()
        if len(slots) != 1:
            # One id orders one partition: what a client missed elsewhere cannot be proven.
            return History(recovered=False)
        [slot] = slots
        try:
            if after_id == FROM_START:
                entries = await self.read_log(slot, after_id, inclusive=False)
            else:
                entries = await self.read_log(slot, after_id, inclusive=True)
                if not entries or entries[0][0] != after_id:
                    return History(recovered=False)
                entries = entries[1:]
        except RedisError as exc:
            raise BrokerUnavailable(str(exc)) from exc
        events = [entry_event(raw_id, fields) for raw_id, fields in entries]
        assert serials is not None
        return History(recovered=True, events=[e for e in events if e.serial in serials])

    async def snapshot(self, serial: str) -> Snapshot | None:
        key = tagged_snapshot_key(serial)
        try:
            [raw] = await self.run_on_slot(slot_of(serial), [("GET", key)])
        except RedisError as exc:
            raise BrokerUnavailable(str(exc)) from exc
        return Snapshot.from_json(raw) if raw else None

    async def latest_id(self, serial: str | None = None) -> str:
        if serial is None:
            return ""  # no id orders the whole fleet on a cluster
        slot = slot_of(serial)
        [entries] = await self.run_on_slot(
            slot, [("XREVRANGE", log_key(slot), "+", "-", "COUNT", 1)]
        )
        return _text(entries[0][0]) if entries else ""

    def subscription(
        self,
        on_message: MessageHandler,
        on_resume: ResumeHandler | None = None,
        on_lost: LostHandler | None = None,
    ) -> ClusterSubscription:
        subscription = ClusterSubscription(self, on_message, on_resume, on_lost)
        self._subscriptions.append(subscription)
        return subscription


def entry_event(raw_id: str, fields: dict[Any, Any]) -> PublishedEvent:
    """A log entry as the event it was published as."""
    return published_from_wire(_text(fields[b"c"]), envelope_bytes(raw_id, fields[b"b"]))


# --- subscribing ------------------------------------------------------------------------------

ShardMessageHandler = Callable[[bytes, bytes], None]


class _Batch:
    """Channels subscribed together: done when Redis has confirmed the last of them."""

    __slots__ = ("done", "remaining")

    def __init__(self, done: asyncio.Future[None]) -> None:
        self.done = done
        self.remaining = 0

    def confirm(self) -> None:
        self.remaining -= 1
        if self.remaining <= 0 and not self.done.done():
            self.done.set_result(None)

    def fail(self, error: BaseException) -> None:
        if not self.done.done():
            self.done.set_exception(error)
            self.done.exception()  # retrieved: nobody may be waiting any more


def _pack_each(command: bytes, channels: list[str]) -> bytes:
    """`COMMAND channel` once per channel, in RESP: each channel may hash to another slot, and
    one SSUBSCRIBE may name channels of one slot only."""
    head = b"*2\r\n$%d\r\n%s\r\n" % (len(command), command)
    parts = []
    for channel in channels:
        encoded = channel.encode()
        parts.append(b"%s$%d\r\n%s\r\n" % (head, len(encoded), encoded))
    return b"".join(parts)


class ShardReader:
    """One plain pub/sub connection to one master, for the SSUBSCRIBEs of every wanted channel
    whose slot that master holds. It never reconnects by itself: when its node goes away it
    hands all its channels to `on_lost`; when the node tells it a channel moved away (the slot
    migrated: an unrequested `sunsubscribe`), it hands over that channel."""

    def __init__(
        self,
        node: Node,
        connection: Connection,
        on_message: ShardMessageHandler,
        on_lost: Callable[[ShardReader, set[str]], None],
    ) -> None:
        self.node = node
        self.channels: set[str] = set()  # subscribed, or being subscribed, here
        self.dead = False
        self._connection = connection
        self._on_message = on_message
        self._on_lost = on_lost
        self._confirmations: dict[str, _Batch] = {}  # channels not yet confirmed
        self._unsubscribing: set[str] = set()
        self._connected = asyncio.Event()
        self._closing = False
        self._last_heard = time.monotonic()
        self._task = asyncio.create_task(self._run(), name=f"shard-reader-{node}")

    @property
    def connected(self) -> bool:
        """Whether its connection was ever established."""
        return self._connected.is_set()

    async def subscribe(self, channels: Iterable[str]) -> None:
        """SSUBSCRIBE (one command per channel: each may be in another slot) and wait for
        every confirmation. BrokerUnavailable if the connection is or goes away."""
        await self._wait_connected()
        batch = _Batch(asyncio.get_running_loop().create_future())
        waiting = {batch.done}
        new: list[str] = []
        for channel in channels:
            self._unsubscribing.discard(channel)
            other = self._confirmations.get(channel)
            if other is not None:
                waiting.add(other.done)
            elif channel not in self.channels:
                self._confirmations[channel] = batch
                new.append(channel)
                self.channels.add(channel)
        batch.remaining = len(new)
        if new:
            self._send_raw(_pack_each(b"SSUBSCRIBE", new))
        else:
            batch.done.set_result(None)
        try:
            await asyncio.wait_for(asyncio.gather(*waiting), _CONFIRM_TIMEOUT)
        except TimeoutError as exc:
            raise BrokerUnavailable(f"{self.node} did not confirm SSUBSCRIBE") from exc

    def unsubscribe(self, channels: Iterable[str]) -> None:
        gone = [channel for channel in channels if channel in self.channels]
        if not gone or self.dead:
            return
        for channel in gone:
            self.channels.discard(channel)
            self._unsubscribing.add(channel)
            batch = self._confirmations.pop(channel, None)
            if batch is not None:
                batch.confirm()  # nobody wants it any more: not an error
        with contextlib.suppress(BrokerUnavailable):
            self._send_raw(_pack_each(b"SUNSUBSCRIBE", gone))

    def _send_raw(self, packed: bytes) -> None:
        if self.dead or not self._connection.is_connected:
            raise BrokerUnavailable(f"{self.node}: pub/sub connection lost")
        # A write on the open connection; the reply comes to the reader. The task surfaces a
        # failure as the reader's loss (the read fails too).
        task = asyncio.ensure_future(
            self._connection.send_packed_command(packed, check_health=False)
        )
        task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Future[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._abort()

    async def _wait_connected(self) -> None:
        if self.dead:
            raise BrokerUnavailable(f"{self.node}: pub/sub connection lost")
        connected = asyncio.ensure_future(self._connected.wait())
        await asyncio.wait(
            {connected, self._task}, timeout=_CONFIRM_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
        )
        connected.cancel()
        if self.dead or not self._connected.is_set():
            raise BrokerUnavailable(f"{self.node}: could not open a pub/sub connection")

    async def close(self) -> None:
        self._closing = True
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task

    def _abort(self) -> None:
        with contextlib.suppress(Exception):
            transport = getattr(self._connection, "_writer", None)
            if transport is not None:
                transport.transport.abort()

    async def _run(self) -> None:
        heartbeat: asyncio.Task[None] | None = None
        error: BaseException | None = None
        try:
            await self._connection.connect()
            self._connected.set()
            self._last_heard = time.monotonic()
            heartbeat = asyncio.create_task(self._heartbeat())
            await self._read_forever()
        except asyncio.CancelledError:
            raise
        except (RedisError, OSError, ConnectionError) as exc:
            error = exc
        finally:
            self.dead = True
            if heartbeat is not None:
                heartbeat.cancel()
            for batch in set(self._confirmations.values()):
                batch.fail(BrokerUnavailable(f"{self.node}: {error}"))
            self._confirmations.clear()
            with contextlib.suppress(Exception):
                await self._connection.disconnect()
            if not self._closing:
                if self._connected.is_set():
                    metrics.REDIS_OUTAGES.inc()
                    log.warning(
                        "redis_shard_subscription_lost",
                        node=self.node,
                        channels=len(self.channels),
                        error=str(error),
                    )
                self._on_lost(self, set(self.channels))

    async def _heartbeat(self) -> None:
        """PING through the pub/sub connection; silence past the timeout means it is dead."""
        while True:
            await asyncio.sleep(_HEARTBEAT_INTERVAL)
            if time.monotonic() - self._last_heard > _HEARTBEAT_TIMEOUT:
                log.warning("redis_shard_subscription_silent", node=self.node)
                self._abort()
                return
            with contextlib.suppress(BrokerUnavailable):
                self._send_raw(b"*1\r\n$4\r\nPING\r\n")

    async def _read_forever(self) -> None:
        read = self._connection.read_response
        while True:
            response: Any = await read(disconnect_on_error=True)
            self._last_heard = time.monotonic()
            if not isinstance(response, list) or not response:
                continue
            kind = response[0]
            if kind == b"smessage":
                self._on_message(response[1], response[2])
            elif kind == b"ssubscribe":
                channel = _text(response[1])
                batch = self._confirmations.pop(channel, None)
                if batch is not None:
                    batch.confirm()
                elif channel not in self._unsubscribing:
                    # Subscribed without us asking: the connection was replaced underneath.
                    raise ConnectionError("pub/sub connection was re-established implicitly")
            elif kind == b"sunsubscribe":
                channel = _text(response[1])
                if channel in self._unsubscribing:
                    self._unsubscribing.discard(channel)
                elif channel in self.channels:
                    # The node gave its slot away (resharding): find the channel's new home.
                    self.channels.discard(channel)
                    self._on_lost(self, {channel})


class ClusterSubscription:
    """What its owner wants, as SSUBSCRIBEs on the masters that hold it; see the module doc."""

    def __init__(
        self,
        broker: ClusterBroker,
        on_message: MessageHandler,
        on_resume: ResumeHandler | None,
        on_lost: LostHandler | None,
    ) -> None:
        self._broker = broker
        self._topology = broker.topology
        self._on_message = on_message
        self._on_resume = on_resume
        self._on_lost = on_lost
        self._filter = PatternFilter()
        self._refs: dict[str, int] = {}  # physical channel -> patterns that want it
        self._slot_refs = [0] * SLOTS  # slot -> patterns that want its fleet channel
        self._readers: dict[Node, ShardReader] = {}
        self._home: dict[str, Node] = {}  # channel -> the node whose reader confirmed it
        self._orphans: set[str] = set()  # wanted channels whose reader was lost
        # Per slot: the newest id seen (a real entry of its log), or before any was seen a
        # lower bound `<ms>-0` from the master's clock taken before the SSUBSCRIBE.
        self._positions: dict[int, str] = {}
        self._baselines: dict[int, str] = {}
        self._held: dict[int, list[PublishedEvent]] = {}  # live events of slots being refilled
        self._restorer: asyncio.Task[None] | None = None
        self._closed = False

    # --- what is wanted ---------------------------------------------------------------------

    @staticmethod
    def _channels_for(pattern: str) -> dict[str, int | None]:
        """The physical channels a pattern needs: fleet channels (value: their slot, whose log
        refills them) or plain channels such as nudges (value None: nothing to refill)."""
        shape, what = PatternFilter.classify(pattern)
        if shape == "serial":
            slot = slot_of(what)
            return {partition_fleet_channel(slot): slot}
        if shape == "exact":
            if what == SYSTEM_BROADCAST:
                slot = slot_of(SYSTEM_BROADCAST)
                return {partition_fleet_channel(slot): slot}
            if what.startswith(DRONE_PREFIX):
                serial = what[len(DRONE_PREFIX) :].rpartition(":")[0]
                if serial and serial != "all":
                    slot = slot_of(serial)
                    return {partition_fleet_channel(slot): slot}
                return _every_fleet_channel()
            return {what: None}
        return _every_fleet_channel()  # drone:*, drone:*:{kind}, any other glob

    @staticmethod
    def _slot_of_channel(channel: str) -> int:
        slot = _every_fleet_channel().get(channel)
        return slot if slot is not None else int(key_slot(channel.encode()))

    # --- Subscription protocol ----------------------------------------------------------------

    async def add(self, pattern: str) -> None:
        channels = self._channels_for(pattern)
        if pattern not in self._filter.patterns:
            self._filter.add(pattern)
            new = []
            for channel, slot in channels.items():
                count = self._refs.get(channel, 0)
                self._refs[channel] = count + 1
                if slot is not None:
                    self._slot_refs[slot] += 1
                if count == 0:
                    new.append(channel)
            if new:
                await self._subscribe_somewhere(new)
        await self._settled(channels)

    async def remove(self, *patterns: str) -> None:
        gone_by_node: dict[Node, list[str]] = defaultdict(list)
        for pattern in dict.fromkeys(patterns):
            if pattern in self._filter.patterns:
                self._filter.remove(pattern)
                self._release_channels_of(pattern, gone_by_node)
        for node, channels in gone_by_node.items():
            reader = self._readers.get(node)
            if reader is not None:
                reader.unsubscribe(channels)
                if not reader.channels:
                    self._readers.pop(node, None)
                    await reader.close()

    def _release_channels_of(self, pattern: str, gone_by_node: dict[Node, list[str]]) -> None:
        """Drop this pattern's references to its channels; those nobody references any more
        are added to `gone_by_node`, to be unsubscribed on the node that has them."""
        for channel, slot in self._channels_for(pattern).items():
            count = self._refs.get(channel, 0) - 1
            if slot is not None:
                self._slot_refs[slot] -= 1
            if count > 0:
                self._refs[channel] = count
                continue
            self._refs.pop(channel, None)
            self._orphans.discard(channel)
            if slot is not None:
                # Forget where it was: a later subscribe starts afresh, not from a stale id.
                self._positions.pop(slot, None)
                self._baselines.pop(slot, None)
                self._held.pop(slot, None)
            node = self._home.pop(channel, None)
            if node is not None:
                gone_by_node[node].append(channel)

    async def close(self) -> None:
        self._closed = True
        if self._restorer is not None:
            self._restorer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._restorer
        for reader in list(self._readers.values()):
            await reader.close()
        self._readers.clear()

    # --- placing channels on masters ----------------------------------------------------------

    async def _subscribe_somewhere(self, channels: list[str]) -> None:
        """Subscribe on the masters that hold them now; what cannot be placed is orphaned for
        the restorer, and `add` waits for it to find a home."""
        if not self._topology.known:
            with contextlib.suppress(BrokerUnavailable):
                await self._topology.refresh(force=True)
        by_node: dict[Node, list[str]] = defaultdict(list)
        for channel in channels:
            node = self._topology.master_for(self._slot_of_channel(channel))
            if node is None or self._topology.is_down(node):
                self._orphan([channel], refill=False)
            else:
                by_node[node].append(channel)
        results = await asyncio.gather(
            *(self._home_on(node, chs, refill=False) for node, chs in by_node.items()),
            return_exceptions=True,
        )
        for (node, chs), result in zip(by_node.items(), results, strict=True):
            if isinstance(result, BaseException):
                if isinstance(result, asyncio.CancelledError):
                    raise result
                self._topology.mark_down(node)
                self._orphan(chs, refill=False)

    async def _settled(self, channels: dict[str, int | None]) -> None:
        """Wait until every one of `channels` is confirmed on some master."""
        deadline = asyncio.get_running_loop().time() + _ADD_TIMEOUT
        while True:
            missing = [c for c in channels if c not in self._home and c in self._refs]
            if not missing:
                return
            if asyncio.get_running_loop().time() > deadline:
                raise BrokerUnavailable(f"could not subscribe {len(missing)} channel(s) in time")
            await asyncio.sleep(0.02)

    def _reader(self, node: Node) -> ShardReader:
        reader = self._readers.get(node)
        if reader is None or reader.dead:
            reader = ShardReader(
                node,
                self._topology.pubsub_connection(node),
                self._on_shard_message,
                self._reader_lost,
            )
            self._readers[node] = reader
        return reader

    async def _home_on(self, node: Node, channels: list[str], refill: bool) -> None:
        """Subscribe `channels` on `node`. Slots never seen get a lower bound from the node's
        clock first, so a later refill starts before anything published after the SSUBSCRIBE.
        With `refill`, the slots held for a refill are then replayed from their logs."""
        slots = {self._slot_of_channel(c) for c in channels if self._refs.get(c) is not None}
        logged = [s for s in slots if self._slot_refs[s] > 0]
        fresh = [s for s in logged if s not in self._positions and s not in self._baselines]
        if fresh:
            seconds, micros = await self._topology.client(node).time()
            for slot in fresh:
                self._baselines.setdefault(slot, f"{seconds * 1000 + micros // 1000}-0")
        reader = self._reader(node)
        await reader.subscribe(channels)
        for channel in channels:
            if channel in self._refs:
                self._home[channel] = node
        if refill:
            await self._refill([s for s in logged if s in self._held])
        # Only now: a refill that failed leaves them orphaned, and the restorer tries again.
        self._orphans.difference_update(channels)

    # --- losing and restoring -----------------------------------------------------------------

    def _orphan(self, channels: Iterable[str], refill: bool) -> None:
        for channel in channels:
            if channel not in self._refs:
                continue
            self._home.pop(channel, None)
            self._orphans.add(channel)
            slot = self._slot_of_channel(channel)
            if refill and self._slot_refs[slot] > 0:
                self._held.setdefault(slot, [])
        if self._orphans and not self._closed and (self._restorer is None or self._restorer.done()):
            self._restorer = asyncio.create_task(self._restore(), name="shard-restorer")

    def _reader_lost(self, reader: ShardReader, channels: set[str]) -> None:
        if reader.dead:
            if self._readers.get(reader.node) is reader:
                del self._readers[reader.node]
            if not reader.connected:
                # It could not even connect: skip the node for a moment (publishes fail fast
                # meanwhile). A connection that dropped (CLIENT KILL, a buffer limit) is tried
                # again at once: the node may well be fine.
                self._topology.mark_down(reader.node)
        self._orphan(channels, refill=True)

    async def _restore(self) -> None:
        """Find a home for every orphaned channel (a promoted replica, the new owner of a
        migrated slot), then refill their slots from the logs; repeat until none is left."""
        backoff = _BACKOFF_START
        while self._orphans and not self._closed:
            with contextlib.suppress(BrokerUnavailable):
                await self._topology.refresh(force=True)
            by_node: dict[Node, list[str]] = defaultdict(list)
            for channel in list(self._orphans):
                node = self._topology.master_for(self._slot_of_channel(channel))
                if node is not None and not self._topology.is_down(node):
                    by_node[node].append(channel)
            for node, channels in by_node.items():
                try:
                    await self._home_on(node, channels, refill=True)
                except asyncio.CancelledError:
                    raise
                except (BrokerUnavailable, RedisError, OSError) as exc:
                    self._topology.mark_down(node)
                    log.info("redis_shard_not_ready", node=node, error=str(exc))
            if self._orphans:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX)
        if self._closed:
            return
        metrics.REDIS_RECONNECTS.inc()
        log.info("redis_shard_subscription_restored", readers=sorted(self._readers))
        if self._on_resume is not None:
            await self._on_resume()

    async def _refill(self, slots: list[int]) -> None:
        """Replay each slot's log after the newest id seen there (or its lower bound), then the
        live events held meanwhile. A slot whose newest seen id is gone from its log (its master
        failed over before replicating it, or it aged out of retention) cannot be proven whole:
        the owner is told, and then gets what the log has after that id, and everything after."""
        lost: dict[int, list[tuple[str, Any]]] = {}
        replayed = 0
        for start in range(0, len(slots), _PIPELINE_SLOTS):
            batch = slots[start : start + _PIPELINE_SLOTS]
            first = {
                slot: self._positions.get(slot) or self._baselines.get(slot, FROM_START)
                for slot in batch
            }
            answers = await self._broker.run_on_slots(
                {
                    slot: ("XRANGE", log_key(slot), first[slot], "+", "COUNT", _HISTORY_BATCH)
                    for slot in batch
                }
            )
            for slot in batch:
                answer = answers[slot]
                if isinstance(answer, BaseException):
                    if isinstance(answer, BrokerUnavailable):
                        raise answer
                    raise BrokerUnavailable(str(answer)) from answer
                entries = [(_text(raw_id), fields) for raw_id, fields in answer]
                if len(entries) == _HISTORY_BATCH:
                    entries += await self._broker.read_log(slot, entries[-1][0], inclusive=False)
                position = self._positions.get(slot)
                if position is not None:
                    if not entries or entries[0][0] != position:
                        lost[slot] = entries  # all after `position`: it is not among them
                        continue
                    entries = entries[1:]
                replayed += self._replay(slot, entries)
        if lost:
            log.error("bus_gap_unrecoverable", slots=len(lost), example_slot=min(lost))
            if self._on_lost is not None:
                self._on_lost(LostScope(frozenset(lost)))
            for slot, entries in lost.items():
                self._positions.pop(slot, None)
                replayed += self._replay(slot, entries)
                if slot not in self._positions:
                    self._baselines[slot] = FROM_START  # an empty log: all of it is new
        log.info("bus_gap_filled", events=replayed, slots=len(slots), lost=len(lost))

    def _replay(self, slot: int, entries: list[tuple[str, Any]]) -> int:
        """Hand over log entries, then the live events held while they were read."""
        for raw_id, fields in entries:
            self._deliver(slot, entry_event(raw_id, fields))
        for event in self._held.pop(slot, []):
            self._deliver(slot, event)
        return len(entries)

    # --- delivering ---------------------------------------------------------------------------

    def _on_shard_message(self, channel: bytes, data: bytes) -> None:
        if channel.startswith(_FLEET_PREFIX_BYTES):
            slot = key_slot(channel)
            if self._slot_refs[slot] <= 0:
                return  # in flight when we unsubscribed
            logical, _, envelope = data.partition(b"\n")
            event = published_from_wire(logical.decode(), envelope)
            held = self._held.get(slot)
            if held is not None:
                held.append(event)
            else:
                self._deliver(slot, event)
            return
        name = channel.decode()
        if self._filter.matches(name):
            self._on_message(published_from_wire(name, data))

    def _deliver(self, slot: int, event: PublishedEvent) -> None:
        position = self._positions.get(slot)
        if position is not None and not id_after(event.id, position):
            return  # seen already (replayed, then live)
        self._positions[slot] = event.id
        self._baselines.pop(slot, None)
        if self._filter.matches(event.channel):
            self._on_message(event)


_FLEET_CHANNELS: dict[str, int | None] | None = None


def _every_fleet_channel() -> dict[str, int | None]:
    global _FLEET_CHANNELS
    if _FLEET_CHANNELS is None:
        _FLEET_CHANNELS = {partition_fleet_channel(slot): slot for slot in range(SLOTS)}
    return _FLEET_CHANNELS
