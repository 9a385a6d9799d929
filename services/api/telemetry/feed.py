"""What GraphQL subscribers of this api process are fed, read from the bus once per process.

- Judged readings (`sensorData`): the consumers append each committed batch, with its verdicts,
  to their partition's stream of judged readings; one reader per partition tails them while
  someone subscribes.
- Anomaly alerts (`anomalyAlerts`): the `telemetry.anomaly` events, from one broker
  subscription on `drone:*:telemetry` while someone subscribes.

Each subscriber has a bounded queue. One that cannot keep up is ended with an error rather
than let the process buffer without bound (the same rule as the Socket.IO gateway's).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson

from shared.aio import cancel_and_wait
from shared.broker import Broker, Subscription
from shared.broker.streams import LATEST
from shared.channels import ChannelKind, drone_kind_pattern, telemetry_judged
from shared.events import PublishedEvent
from shared.logging import get_logger
from shared.settings import Settings
from shared.telemetry.service import iso_millis

log = get_logger(__name__)

_TAIL_BLOCK_MS = 1000
_TAIL_COUNT = 200
_RETRY_SECONDS = 1.0

Accept = Callable[[dict[str, Any]], bool]


class TooSlow(Exception):
    """The subscriber's queue overflowed: it was ended."""


class _Listener:
    def __init__(self, accept: Accept, limit: int) -> None:
        self.accept = accept
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(limit)
        self.overflowed = False

    def offer(self, item: dict[str, Any]) -> None:
        if self.overflowed or not self.accept(item):
            return
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.overflowed = True
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
            self.queue.put_nowait(None)  # wakes the subscriber to end it


def public_reading(record: dict[str, Any]) -> dict[str, Any]:
    """A judged reading from the stream, in the API's shape."""
    return {
        "id": record["id"],
        "sensor_id": record["sensor_id"],
        "sensor_type": record["sensor_type"],
        "value": record["value"],
        "unit": record["unit"],
        "location": record["location"],
        "metadata": record["metadata"],
        "timestamp": iso_millis(record["t"]),
        "drone_serial": record["drone_serial"],
        "received_at": iso_millis(record["rt"]),
        "is_anomaly": record["is_anomaly"],
        "anomaly_score": record["anomaly_score"],
        "anomaly_kind": record["anomaly_kind"],
        "severity": record["severity"],
        "message": record["message"],
    }


class TelemetryFeed:
    def __init__(self, broker: Broker, settings: Settings) -> None:
        self.broker = broker
        self.settings = settings
        self._readers: list[_Listener] = []
        self._alert_listeners: list[_Listener] = []
        self._tails: list[asyncio.Task[None]] = []
        self._subscription: Subscription | None = None

    async def stop(self) -> None:
        await cancel_and_wait(*self._tails)
        self._tails = []
        if self._subscription is not None:
            await self._subscription.close()
            self._subscription = None

    # --- subscribers ------------------------------------------------------------------------

    async def readings(self, accept: Accept) -> AsyncIterator[dict[str, Any]]:
        listener = _Listener(accept, self.settings.client_queue_limit)
        self._readers.append(listener)
        if not self._tails:
            self._tails = [
                asyncio.create_task(self._tail(p), name=f"telemetry-feed-p{p}")
                for p in range(self.settings.telemetry_partitions)
            ]
        try:
            async for item in self._drain(listener):
                yield item
        finally:
            self._readers.remove(listener)
            if not self._readers:
                await self.stop_tails()

    async def alerts(self, accept: Accept) -> AsyncIterator[dict[str, Any]]:
        listener = _Listener(accept, self.settings.client_queue_limit)
        self._alert_listeners.append(listener)
        if self._subscription is None:
            self._subscription = self.broker.subscription(self._on_event)
            await self._subscription.add(drone_kind_pattern(ChannelKind.TELEMETRY))
        try:
            async for item in self._drain(listener):
                yield item
        finally:
            self._alert_listeners.remove(listener)
            if not self._alert_listeners and self._subscription is not None:
                subscription, self._subscription = self._subscription, None
                await subscription.close()

    async def _drain(self, listener: _Listener) -> AsyncIterator[dict[str, Any]]:
        while True:
            item = await listener.queue.get()
            if item is None:
                raise TooSlow("this subscriber fell too far behind and was ended")
            yield item

    async def stop_tails(self) -> None:
        tails, self._tails = self._tails, []
        await cancel_and_wait(*tails)

    # --- the bus ----------------------------------------------------------------------------

    async def _tail(self, partition: int) -> None:
        stream = telemetry_judged(partition)
        last = LATEST
        while True:
            try:
                entries = await self.broker.streams.tail(stream, last, _TAIL_COUNT, _TAIL_BLOCK_MS)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the bus is away: try again, from where we were
                log.warning("telemetry_feed_failed", partition=partition, error=str(exc))
                await asyncio.sleep(_RETRY_SECONDS)
                continue
            for entry in entries:
                last = entry.id
                for record in orjson.loads(entry.payload):
                    reading = public_reading(record)
                    for listener in tuple(self._readers):
                        listener.offer(reading)

    def _on_event(self, event: PublishedEvent) -> None:
        try:
            envelope = orjson.loads(event.envelope)
        except orjson.JSONDecodeError:
            return
        if envelope.get("event") != "telemetry.anomaly":
            return
        alert = envelope.get("data") or {}
        for listener in tuple(self._alert_listeners):
            listener.offer(alert)
