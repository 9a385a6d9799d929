"""`create_broker(settings)`: Redis when REDIS_URL is set (a Redis Cluster with REDIS_CLUSTER),
the in-process broker otherwise."""

from __future__ import annotations

from shared.broker.base import Broker, History, LostScope, Snapshot, Subscription
from shared.broker.cluster import ClusterBroker
from shared.broker.memory import MemoryBroker
from shared.broker.redis import BrokerUnavailable, RedisBroker
from shared.settings import Settings

__all__ = [
    "Broker",
    "BrokerUnavailable",
    "ClusterBroker",
    "History",
    "LostScope",
    "MemoryBroker",
    "RedisBroker",
    "Snapshot",
    "Subscription",
    "create_broker",
]


def create_broker(settings: Settings) -> Broker:
    if settings.embedded_broker:
        return MemoryBroker(settings.retention_seconds, settings.retention_max_events)
    if settings.redis_cluster:
        return ClusterBroker(
            settings.redis_url,
            settings.retention_seconds,
            settings.retention_max_events,
            settings.redis_replica_ack_ms,
            settings.redis_password,
        )
    return RedisBroker(
        settings.redis_url,
        settings.retention_seconds,
        settings.retention_max_events,
        settings.redis_password,
    )
