"""The transactional outbox, with no multi-document transactions.

A change writes its events into the changed document's `outbox` array in the same update. Then
`drain` publishes the document's whole outbox in array order and pulls what was published.
Publishing is idempotent by event uid, so several drainers (the request, another replica, the
relay loop) can race and each event still goes out once, in write order. If Redis is down the
events stay in the document and `OutboxRelay` publishes them when it is back; if the process
dies after the write, the relay of any replica does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from beanie import Document

from shared import metrics
from shared.aio import cancel_and_wait
from shared.broker import Broker, BrokerUnavailable
from shared.events import PendingEvent, PublishedEvent, format_timestamp
from shared.logging import get_logger

log = get_logger(__name__)

# Fault injection for tests: called after a write committed and before its events are
# published, to play a process that dies at exactly that point. None in production.
crash_point: Callable[[], None] | None = None


def outbox_entries(events: list[PendingEvent]) -> list[dict[str, Any]]:
    return [event.to_dict() for event in events]


async def drain(
    broker: Broker, model: type[Document], doc_id: Any, outbox: list[dict[str, Any]]
) -> list[PublishedEvent]:
    """Publish `outbox` (the document's, as just read) in order; pull what went out."""
    if crash_point is not None:
        crash_point()
    published: list[PublishedEvent] = []
    uids: list[str] = []
    for raw in outbox:
        event = PendingEvent.from_dict(raw)
        try:
            published.append(await broker.publish(event))
        except BrokerUnavailable as exc:
            metrics.PUBLISH_FAILURES.inc()
            log.warning(
                "publish_deferred", event_name=event.name.value, uid=event.uid, error=str(exc)
            )
            break
        metrics.EVENTS_PUBLISHED.labels(event.name.value).inc()
        uids.append(event.uid)
    if uids:
        collection = model.get_pymongo_collection()
        await collection.update_one({"_id": doc_id}, {"$pull": {"outbox": {"uid": {"$in": uids}}}})
        if len(uids) == len(outbox):
            # A soft-deleted document goes away once its last event is out.
            await collection.delete_one({"_id": doc_id, "deletedAt": {"$ne": None}, "outbox": []})
    return published


class OutboxRelay:
    """Publishes events left behind by a failed publish or a process that died mid-request."""

    def __init__(
        self,
        broker: Broker,
        models: list[type[Document]],
        interval: float = 1.0,
        grace: float = 2.0,
    ) -> None:
        self._broker = broker
        self._models = models
        self._interval = interval
        self._grace = grace
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)

    async def relay_once(self, grace: float | None = None) -> int:
        """Drain every outbox whose oldest event has waited longer than `grace` seconds."""
        cutoff = format_timestamp(
            datetime.now(UTC) - timedelta(seconds=self._grace if grace is None else grace)
        )
        relayed = 0
        for model in self._models:
            collection = model.get_pymongo_collection()
            # Any entry old enough (the oldest is first): a query on `outbox.timestamp` uses the
            # sparse index every model has; `outbox.0.timestamp` would scan the collection.
            cursor = collection.find({"outbox.timestamp": {"$lte": cutoff}}, {"outbox": 1}).limit(
                500
            )
            async for raw in cursor:
                published = await drain(self._broker, model, raw["_id"], raw["outbox"])
                relayed += len(published)
        if relayed:
            metrics.OUTBOX_RELAYED.inc(relayed)
            log.info("outbox_relayed", events=relayed)
        return relayed

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.relay_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the relay must outlive a failing database or broker
                log.warning("outbox_relay_failed", error=str(exc))
