"""Bus -> hub. The gateway's one fan-out path.

It deliberately does not use python-socketio's AsyncRedisManager: that manager would deliver
each event a second time through its own channel. Instead the relay holds one broker
subscription and asks Redis only for what local clients want: `drone:{serial}:*` per watched
serial, `drone:*` while anyone watches all drones, and `system:broadcast`. Patterns can
overlap, so events are de-duplicated by id (ids only grow on one connection). After the bus
connection is lost and restored, the relay fills the gap from retention.
"""

from __future__ import annotations

from collections.abc import Callable

from services.gateway import metrics
from services.gateway.hub import Hub
from shared.broker import Broker, Subscription
from shared.broker.base import FROM_START, id_after
from shared.channels import ALL_DRONES_PATTERN, SYSTEM_BROADCAST, drone_pattern
from shared.events import PublishedEvent
from shared.logging import get_logger

log = get_logger(__name__)

LostHandler = Callable[[], None]


class Relay:
    def __init__(self, broker: Broker, hub: Hub, on_events_lost: LostHandler) -> None:
        self._broker = broker
        self._hub = hub
        self._on_events_lost = on_events_lost
        self._subscription: Subscription | None = None
        self._last_id = ""
        self._epoch = ""
        self._watched_serials: set[str] = set()
        self._watching_all = False

    async def start(self) -> None:
        self._last_id = await self._broker.latest_id()
        self._epoch = await self._broker.epoch()
        self._subscription = self._broker.subscription(self.on_message, self._fill_gap)
        await self._subscription.add(SYSTEM_BROADCAST)

    async def stop(self) -> None:
        if self._subscription is not None:
            await self._subscription.close()
            self._subscription = None

    def on_message(self, event: PublishedEvent) -> None:
        if event.id:
            if not id_after(event.id, self._last_id):
                return  # the same event through a second matching pattern
            self._last_id = event.id
        self._hub.dispatch(event)

    async def watch(self, all_drones: bool, serials: set[str]) -> None:
        """Make sure the bus sends what these subscriptions need (confirmed by Redis)."""
        assert self._subscription is not None
        if all_drones and not self._watching_all:
            self._watching_all = True
            await self._subscription.add(ALL_DRONES_PATTERN)
        for serial in serials - self._watched_serials:
            self._watched_serials.add(serial)
            await self._subscription.add(drone_pattern(serial))

    async def release_unwanted(self) -> None:
        """Stop receiving what no local client wants any more."""
        assert self._subscription is not None
        if self._watching_all and not self._hub.wants_all:
            self._watching_all = False
            await self._subscription.remove(ALL_DRONES_PATTERN)
        for serial in list(self._watched_serials):
            if not self._hub.is_wanted(serial):
                self._watched_serials.discard(serial)
                await self._subscription.remove(drone_pattern(serial))

    async def _fill_gap(self) -> None:
        """After the bus connection came back: relay what was published while it was down."""
        serials = None if self._watching_all else frozenset(self._watched_serials)
        epoch = await self._broker.epoch()
        history = await self._broker.history(self._last_id, serials) if self._last_id else None
        # Our last event is gone and this Redis's first event came after it (or the epoch
        # changed): Redis lost its data and its stream began afresh, so all of it is new to us.
        # Whatever was in flight in the old Redis is gone for good.
        restarted = (
            bool(epoch)
            and (history is None or not history.recovered)
            and ((bool(self._epoch) and epoch != self._epoch) or id_after(epoch, self._last_id))
        )
        if restarted or history is None:
            history = await self._broker.history(FROM_START, serials)
        self._epoch = epoch
        if restarted or not history.recovered:
            metrics.GAP_FILLS.labels("lost").inc()
            log.error("bus_gap_unrecoverable", after=self._last_id, redis_restarted=restarted)
            self._on_events_lost()
        else:
            metrics.GAP_FILLS.labels("recovered").inc()
        if restarted:
            self._last_id = ""  # ids of the new epoch may be lower than the old ones
        for event in history.events:
            self.on_message(event)
        log.info("bus_gap_filled", events=len(history.events), after=self._last_id)
