"""Metrics every process shares (broker and bus). Service metrics live in each service.

Labels are bounded: event names come from one enum, never a drone id.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

EVENTS_PUBLISHED = Counter(
    "dronecast_events_published_total", "Events published on the bus", ["event"]
)
PUBLISH_FAILURES = Counter(
    "dronecast_publish_failures_total", "Publishes that failed and were left in the outbox"
)
OUTBOX_RELAYED = Counter(
    "dronecast_outbox_relayed_total", "Events published late by the outbox relay"
)
REDIS_RECONNECTS = Counter(
    "dronecast_redis_reconnects_total", "Pub/sub subscriptions re-established after a loss"
)
REDIS_OUTAGES = Counter("dronecast_redis_outages_total", "Pub/sub connection losses")
READY = Gauge("dronecast_ready", "1 when this process's dependencies answer")
