"""Telemetry consumers: each worker owns some of the partitions and runs their detectors.

Ownership is a lease per partition (`telemetry_owner(p)`); workers announce themselves in a
sorted set of heartbeats and each aims at its fair share of the partitions, so adding a worker
moves partitions to it and a worker that dies has its partitions taken over once its leases
lapse. Whoever takes a partition restores its checkpoint, claims what the previous owner left
pending (XAUTOCLAIM) and redoes it: the checkpoint was written with the previous owner's last
acknowledgement, so the redo reaches the same verdicts and ids, and stores nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import zlib
from collections.abc import Callable

from services.worker import metrics
from shared.aio import cancel_and_wait, wait_finished
from shared.broker import Broker
from shared.broker.streams import StreamEntry
from shared.channels import (
    TELEMETRY_GROUP,
    TELEMETRY_MEMBERS,
    telemetry_active,
    telemetry_checkpoint,
    telemetry_judged,
    telemetry_owner,
    telemetry_stream,
)
from shared.logging import get_logger
from shared.settings import Settings
from shared.telemetry.pipeline import PartitionProcessor
from shared.telemetry.repository import telemetry_repository

log = get_logger(__name__)

_READ_BLOCK_MS = 200
_RETRY_SECONDS = 0.5

# Fault injection for tests: called after a batch was stored and published and before it is
# committed, to play a consumer that dies at exactly that point. None in production.
crash_point: Callable[[int], None] | None = None


class PartitionConsumer:
    """One owned partition: restore, take over what was pending, then follow the stream."""

    def __init__(self, owner: TelemetryConsumers, partition: int) -> None:
        self.owner = owner
        self.partition = partition
        self.stream = telemetry_stream(partition)
        self.stopping = False
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"telemetry-p{self.partition}")

    async def stop(self) -> None:
        """Finish the batch in hand, then let the partition go."""
        self.stopping = True
        if self.task is not None:
            # Not `suppress(CancelledError)`: a rebalance cancelled while it waits here must
            # end, or the worker's shutdown waits for it forever.
            await wait_finished(self.task)

    async def _run(self) -> None:
        owner = self.owner
        streams = owner.broker.streams
        try:
            processor = await self._restored()
            while not self.stopping:  # what the previous owner left pending, oldest first
                entries = await streams.claim_pending(
                    self.stream, TELEMETRY_GROUP, owner.id, owner.settings.telemetry_read_batch
                )
                if not entries:
                    break
                metrics.TELEMETRY_REDELIVERED.inc(len(entries))
                processor, kept = await self._handle(processor, entries)
                if not kept:
                    return
            while not self.stopping:
                entries = await streams.read_new(
                    self.stream,
                    TELEMETRY_GROUP,
                    owner.id,
                    owner.settings.telemetry_read_batch,
                    _READ_BLOCK_MS,
                )
                if entries:
                    processor, kept = await self._handle(processor, entries)
                else:
                    kept = await streams.renew(
                        telemetry_owner(self.partition), owner.id, owner.lease_ms
                    )
                if not kept:
                    log.warning("telemetry_partition_lost", partition=self.partition)
                    return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the balancer starts it again (here or elsewhere)
            log.warning("telemetry_partition_failed", partition=self.partition, error=str(exc))
        finally:
            with contextlib.suppress(Exception):
                await streams.release(telemetry_owner(self.partition), owner.id)

    async def _restored(self) -> PartitionProcessor:
        """The partition's detectors as of its last commit."""
        processor = PartitionProcessor(self.owner.broker, telemetry_repository)
        checkpoint = await self.owner.broker.streams.load_checkpoint(
            telemetry_checkpoint(self.partition)
        )
        processor.restore(checkpoint)
        return processor

    async def _handle(
        self, processor: PartitionProcessor, entries: list[StreamEntry]
    ) -> tuple[PartitionProcessor, bool]:
        """Judge, store, publish, then commit (ack + checkpoint) while still the owner. After
        a failure (database, bus) the same entries are redone from the last checkpoint, as a
        new owner would."""
        owner = self.owner
        current: PartitionProcessor | None = processor
        while True:
            try:
                if current is None:
                    current = await self._restored()
                outcome = await current.handle(entries)
                if crash_point is not None:
                    crash_point(self.partition)
                committed = await owner.broker.streams.commit(
                    self.stream,
                    TELEMETRY_GROUP,
                    [entry.id for entry in entries],
                    telemetry_checkpoint(self.partition),
                    outcome.states,
                    telemetry_owner(self.partition),
                    owner.id,
                    owner.lease_ms,
                    (telemetry_active(self.partition), outcome.active),
                    (telemetry_judged(self.partition), outcome.judged),
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("telemetry_batch_failed", partition=self.partition, error=str(exc))
                await asyncio.sleep(_RETRY_SECONDS)
                if self.stopping:
                    return processor, False
                current = None
                continue
            metrics.TELEMETRY_STORED.inc(outcome.stored)
            metrics.TELEMETRY_PROCESSED.inc(outcome.readings)
            return current, committed


class TelemetryConsumers:
    def __init__(self, broker: Broker, settings: Settings, consumer_id: str) -> None:
        self.broker = broker
        self.settings = settings
        self.id = consumer_id
        self.lease_ms = int(settings.telemetry_lease_seconds * 1000)
        self.partitions = settings.telemetry_partitions
        self.owned: dict[int, PartitionConsumer] = {}
        self._task: asyncio.Task[None] | None = None
        # Where this consumer starts looking for free partitions: spread over the consumers.
        self._offset = zlib.crc32(consumer_id.encode()) % self.partitions

    async def start(self) -> None:
        await telemetry_repository.ensure_retention(self.settings.telemetry_retention)
        for partition in range(self.partitions):
            await self.broker.streams.create_group(telemetry_stream(partition), TELEMETRY_GROUP)
        await self.balance()
        self._task = asyncio.create_task(self._balance_forever(), name="telemetry-balance")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
        await asyncio.gather(*(consumer.stop() for consumer in self.owned.values()))
        self.owned.clear()
        with contextlib.suppress(Exception):
            await self.broker.streams.leave(TELEMETRY_MEMBERS, self.id)

    async def _balance_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.telemetry_lease_seconds / 3)
            try:
                await self.balance()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep balancing through a failing bus
                log.warning("telemetry_balance_failed", error=str(exc))

    async def balance(self) -> None:
        """Announce this consumer, then move towards its fair share of the partitions."""
        streams = self.broker.streams
        alive = await streams.heartbeat(TELEMETRY_MEMBERS, self.id, self.lease_ms)
        for partition, consumer in list(self.owned.items()):
            if consumer.task is not None and consumer.task.done():
                del self.owned[partition]
        share = math.ceil(self.partitions / max(alive, 1))
        if len(self.owned) > share:
            for partition in sorted(self.owned)[share:]:
                await self.owned.pop(partition).stop()
        for step in range(self.partitions):
            if len(self.owned) >= share:
                break
            partition = (self._offset + step) % self.partitions
            if partition in self.owned:
                continue
            if await streams.acquire(telemetry_owner(partition), self.id, self.lease_ms):
                consumer = self.owned[partition] = PartitionConsumer(self, partition)
                consumer.start()
        metrics.TELEMETRY_PARTITIONS.set(len(self.owned))

    async def backlog(self) -> int:
        """Entries not yet committed, over every partition (0: caught up)."""
        total = 0
        for partition in range(self.partitions):
            total += await self.broker.streams.backlog(telemetry_stream(partition), TELEMETRY_GROUP)
        return total
