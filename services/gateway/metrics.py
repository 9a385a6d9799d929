"""The gateway's metrics. Labels are event names or outcomes, never ids."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CONNECTED_CLIENTS = Gauge("dronecast_gateway_clients", "Connected Socket.IO clients")
SUBSCRIPTIONS = Gauge("dronecast_gateway_subscriptions", "Local subscriptions", ["kind"])
EVENTS_RECEIVED = Counter(
    "dronecast_gateway_events_received_total", "Events received from the bus", ["event"]
)
EVENTS_DELIVERED = Counter(
    "dronecast_events_delivered_total", "Event frames queued to clients", ["event"]
)
DELIVERY_LATENCY = Histogram(
    "dronecast_publish_to_deliver_seconds",
    "From publish (event id time) to frames queued for every local recipient",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
REPLAYS = Counter(
    "dronecast_replay_requests_total", "Subscribe requests with lastEventId", ["outcome"]
)
REPLAYED_EVENTS = Counter("dronecast_replayed_events_total", "Events sent from retention")
SLOW_CLIENT_DISCONNECTS = Counter(
    "dronecast_slow_client_disconnects_total", "Clients cut off because their queue was full"
)
GAP_FILLS = Counter(
    "dronecast_gateway_gap_fills_total",
    "Bus reconnects after which the gateway refilled from retention",
    ["outcome"],
)
