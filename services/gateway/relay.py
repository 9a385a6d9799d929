"""Bus -> hub. The gateway's one fan-out path.

It deliberately does not use python-socketio's AsyncRedisManager: that manager would deliver
each event a second time through its own channel. Instead the relay holds one broker
subscription and asks the bus only for what local clients want: `drone:{serial}:*` per watched
serial, `drone:*` while anyone watches all drones, and `system:broadcast` (on a Redis Cluster
the broker turns these into SSUBSCRIBEs on the shards that hold them). The subscription hands
over each event once, in order, and after a lost bus connection it refills from retention
itself; what it cannot refill it reports, and the relay tells the clients concerned.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from services.gateway import metrics
from services.gateway.hub import Hub
from shared.aio import cancel_and_wait
from shared.broker import Broker, Subscription
from shared.broker.base import LostScope
from shared.channels import ALL_DRONES_PATTERN, SYSTEM_BROADCAST, drone_pattern

LostHandler = Callable[[LostScope], None]


class Relay:
    def __init__(self, broker: Broker, hub: Hub, on_events_lost: LostHandler) -> None:
        self._broker = broker
        self._hub = hub
        self._on_events_lost = on_events_lost
        self._subscription: Subscription | None = None
        self._watched_serials: set[str] = set()
        self._watching_all = False
        self._lost_since_resume = False
        self._releasing: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._subscription = self._broker.subscription(
            self._hub.dispatch, self._resumed, self._lost
        )
        await self._subscription.add(SYSTEM_BROADCAST)

    async def stop(self) -> None:
        if self._releasing is not None:
            await cancel_and_wait(self._releasing)
        if self._subscription is not None:
            await self._subscription.close()
            self._subscription = None

    async def watch(self, all_drones: bool, serials: set[str]) -> None:
        """Make sure the bus sends what these subscriptions need (confirmed by Redis)."""
        assert self._subscription is not None
        if all_drones and not self._watching_all:
            self._watching_all = True
            await self._subscription.add(ALL_DRONES_PATTERN)
        for serial in serials - self._watched_serials:
            if not self._hub.is_wanted(serial):
                continue  # its subscriber left while we waited on the bus: released already
            self._watched_serials.add(serial)
            await self._subscription.add(drone_pattern(serial))

    def release_unwanted(self) -> None:
        """Stop receiving what no local client wants any more, at the end of this event-loop
        tick: however many clients left in it (a drain, a network cut), one pass looks at
        the serials that lost their last subscriber, and one unsubscribe lets them go."""
        if self._releasing is None and self._subscription is not None:
            self._releasing = asyncio.get_running_loop().create_task(self._release())

    async def _release(self) -> None:
        try:
            while self._subscription is not None:
                unwanted = []
                if self._watching_all and not self._hub.wants_all:
                    self._watching_all = False
                    unwanted.append(ALL_DRONES_PATTERN)
                for serial in self._hub.take_released():
                    if serial in self._watched_serials:
                        self._watched_serials.discard(serial)
                        unwanted.append(drone_pattern(serial))
                if not unwanted:
                    return
                # Serials released while this waits are taken on the next turn.
                await self._subscription.remove(*unwanted)
        finally:
            self._releasing = None

    def _lost(self, scope: LostScope) -> None:
        self._lost_since_resume = True
        metrics.GAP_FILLS.labels("lost").inc()
        self._on_events_lost(scope)

    async def _resumed(self) -> None:
        """The bus connection is back and its gap refilled (or reported lost)."""
        if not self._lost_since_resume:
            metrics.GAP_FILLS.labels("recovered").inc()
        self._lost_since_resume = False
