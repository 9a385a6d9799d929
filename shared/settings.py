"""Process settings, read from the environment (and `.env`) by pydantic-settings.

One `Settings` class serves every process; nothing else in the code reads `os.environ`.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SECRET_KEY = "dev-insecure-secret-key-change-me"

Environment = Literal["dev", "test", "production"]


class UnsafeSettings(ValueError):
    """Settings a service refuses to start with (the message names the setting)."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_file_encoding="utf-8")

    environment: Environment = Field(
        "production",
        description="dev and test allow the default SECRET_KEY; production refuses it.",
    )
    host: str = Field("0.0.0.0", description="Listen address (dronecast dev: 127.0.0.1).")
    port: int | None = Field(None, description="Listen port; each service has its own default.")

    # Storage and bus. Empty means the embedded in-process engine (only `dronecast dev` and tests).
    mongodb_uri: str = Field(
        "", description="MongoDB; empty: the in-process engine (dronecast dev and tests only)."
    )
    database_name: str = Field("dronecast", description="The MongoDB database.")
    redis_url: str = Field(
        "", description="Redis; empty: the in-process broker (dronecast dev and tests only)."
    )
    redis_password: str = Field(
        "",
        description="Redis AUTH password when REDIS_URL carries none (e.g. from the Secret a "
        "Redis chart or operator manages)",
    )
    redis_cluster: bool = Field(
        False,
        description="REDIS_URL names any node of a Redis Cluster (Redis >= 7): sharded pub/sub, "
        "a retention log per hash slot",
    )
    redis_replica_ack_ms: int = Field(
        1000,
        ge=0,
        description="On a Redis Cluster: how long a publish waits for a replica to hold the "
        "event (WAIT) before it stays in the outbox; 0 does not wait",
    )

    # Security
    secret_key: str = Field(
        DEFAULT_SECRET_KEY,
        description="HS256 key for tokens; at least 32 characters. The built-in default is "
        "refused unless ENVIRONMENT is dev or test.",
    )
    auth_enabled: bool = Field(
        True, description="Require a bearer token (dronecast dev turns it off unless --auth)."
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description="Browser origins allowed (Origin header); empty: same origin only; ['*']: any",
    )
    # Limits, per process. A client is its token's subject, or its address when auth is off.
    max_body_bytes: int = Field(1024 * 1024, ge=1024, description="REST body and WS frame size")
    max_image_bytes: int = Field(
        5 * 1024 * 1024,
        ge=1024,
        le=15 * 1024 * 1024,
        description="An alert image (JPEG, PNG or WebP), by REST or in a drone's image message",
    )
    requests_per_second: float = Field(50.0, gt=0, description="REST requests per client")
    request_burst: int = Field(100, ge=1, description="REST requests a client may send at once")
    client_messages_per_second: float = Field(
        20.0, gt=0, description="Socket.IO and device WebSocket messages per client"
    )
    client_message_burst: int = Field(40, ge=1, description="messages a client may send at once")
    connections_per_client: int = Field(50, ge=1, description="Socket.IO connections per client")
    accept_backlog: int = Field(
        4096,
        ge=64,
        description="Connections the kernel queues while the service is busy accepting: a "
        "reconnect storm (a replica's clients all moving at once) must fit, or their handshakes "
        "wait out TCP retransmits. The kernel caps it at net.core.somaxconn.",
    )

    # Event retention: the window a reconnecting client can recover from.
    retention_seconds: int = Field(
        600, ge=1, description="How long events are kept for clients that resume (lastEventId)."
    )
    retention_max_events: int = Field(
        100_000, ge=100, description="At most this many events are kept for resuming clients."
    )

    # Gateway
    client_queue_limit: int = Field(
        1000, ge=10, description="Frames queued for one Socket.IO client before it is cut off."
    )
    subscriptions_per_client: int = Field(
        1000, ge=1, description="Drone subscriptions one Socket.IO client may hold."
    )
    drain_seconds: float = Field(
        10.0, ge=0, description="How long a stopping service (SIGTERM) may take to finish."
    )
    http_keep_alive_seconds: int = Field(
        75,
        ge=1,
        description="How long an idle HTTP connection stays open for its client's next request. "
        "Longer than a load balancer's idle timeout (60 s on most), so that the balancer, not "
        "the service, closes it: a request is never sent on a connection closing under it.",
    )

    # Processing tasks and the worker (seed 003). Every timeout fails the task with a reason.
    task_in_flight_per_drone: int = Field(1, ge=1, description="dispatched+processing per drone")
    task_ack_timeout_seconds: float = Field(
        10.0, gt=0, description="dispatched but not acknowledged: back to pending"
    )
    task_max_attempts: int = Field(3, ge=1, description="dispatches before the task fails")
    task_heartbeat_timeout_seconds: float = Field(
        60.0, gt=0, description="processing with no status update for this long: failed"
    )
    task_default_deadline_seconds: float = Field(
        3600.0, gt=0, description="still pending after this long (per task, or this): failed"
    )
    worker_sweep_seconds: float = Field(0.5, gt=0, description="how often timeouts are checked")
    worker_lease_seconds: float = Field(
        5.0, gt=0, description="a worker's hold on routing one drone; a dead worker's lapses"
    )

    # The dashboard the api serves at `/`: where browsers reach the Socket.IO gateway.
    public_events_url: str = Field(
        "",
        pattern=r"^(https?://[^/\s?#]+)?$",
        description="The gateway's origin as browsers see it (https://events.example.com), when "
        "it is not the api's own; empty: the page's origin (`dronecast dev`, or a proxy that "
        "routes /ws/events). The gateway's CORS_ORIGINS must then list the api's origin.",
    )

    # Lists
    page_default: int = Field(50, ge=1, description="Items in a list page when no limit is given.")
    page_max: int = Field(500, ge=1, description="The largest limit a list accepts.")

    # Observability
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING or ERROR.")
    log_json: bool = Field(True, description="One JSON object per log line; false: plain text.")

    # --- Device WebSockets and presence (alerts slice; README "Alerts and device WebSockets") --
    device_ping_interval: float = Field(
        15.0, gt=0, description="Seconds between the server's {'type': 'ping'} to each device."
    )
    device_heartbeat_timeout: float = Field(
        45.0,
        gt=0,
        description="A device that answered a ping and then sends nothing for this long is "
        "half-open: its socket is closed and the drone is marked offline at once.",
    )
    presence_grace_seconds: float = Field(
        5.0,
        ge=0,
        description="A drone whose socket closed stays online this long, so that a reconnect "
        "(to any replica) does not flap offline/online.",
    )
    presence_lease_seconds: float = Field(
        30.0,
        gt=0,
        description="Each replica renews its drones' presence every third of this; if a replica "
        "dies, any other marks its drones offline when their lease lapses.",
    )
    presence_check_interval: float = Field(
        1.0, gt=0, description="How often a replica checks heartbeats, leases and commands."
    )
    device_queue_limit: int = Field(
        1000, ge=10, description="Messages queued for one device socket before it is cut off."
    )

    # --- Telemetry (seed 004; README "Telemetry (seed 004)") ------------------------------------
    telemetry_partitions: int = Field(
        16,
        ge=1,
        le=1024,
        description="Streams readings are spread over, by drone (or by sensor without one); each "
        "is owned by one consumer at a time. Fixed for a deployment: changing it moves drones "
        "to other partitions, whose detector state starts afresh.",
    )
    telemetry_retention: int = Field(
        7 * 24 * 3600,
        ge=3600,
        description="Seconds a reading is kept after its timestamp (a TTL index).",
    )
    telemetry_lease_seconds: float = Field(
        5.0, gt=0, description="A consumer's hold on a partition; a dead consumer's lapses."
    )
    telemetry_read_batch: int = Field(
        200, ge=1, le=10_000, description="Stream entries a consumer takes at once."
    )

    @model_validator(mode="after")
    def _refuse_default_secret_outside_dev(self) -> Settings:
        if (
            self.environment == "production"
            and self.auth_enabled
            and self.secret_key == DEFAULT_SECRET_KEY
        ):
            raise ValueError(
                "SECRET_KEY is the built-in default; set a real SECRET_KEY "
                "(or ENVIRONMENT=dev for local development)"
            )
        if self.environment == "production" and self.auth_enabled and len(self.secret_key) < 32:
            raise ValueError("SECRET_KEY must be at least 32 characters (HS256 wants 256 bits)")
        return self

    def origin_allowed(self, origin: str | None, host: str | None) -> bool:
        """A browser's `Origin`: allowed if listed in CORS_ORIGINS, or ['*'], or (by default)
        the server's own origin. No Origin (not a browser): allowed."""
        if origin is None or "*" in self.cors_origins:
            return True
        if self.cors_origins:
            return origin in self.cors_origins
        return host is not None and origin.split("://", 1)[-1] == host

    def refuse_embedded_in_production(self) -> None:
        """In production each service runs against the real MongoDB and Redis that all its
        replicas share: an embedded store or broker there would be one per process, and its
        data and events would reach no other (a task would stay pending, silently). Only
        `dronecast dev` (ENVIRONMENT=dev) and tests (test) run embedded."""
        if self.environment != "production":
            return
        missing = [
            name
            for name, value in (("MONGODB_URI", self.mongodb_uri), ("REDIS_URL", self.redis_url))
            if not value
        ]
        if missing:
            raise UnsafeSettings(
                f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set: in "
                "production every service needs MongoDB and Redis (`dronecast dev` runs the "
                "whole product embedded)"
            )

    @property
    def max_frame_bytes(self) -> int:
        """The largest WebSocket frame taken: a body, or a drone's image message (its base64
        is 4/3 of the picture's bytes)."""
        return max(self.max_body_bytes, (self.max_image_bytes + 2) // 3 * 4 + 64 * 1024)

    @property
    def device_frame_ceiling(self) -> int:
        """The largest WebSocket frame read at all (beyond it: close 1009, Message Too Big).
        A frame over its limit (MAX_BODY_BYTES; a drone's largest image message) but under
        this is answered with an `error` message and the socket stays open. It is four request
        bodies, or one body more than a drone's largest image message, whichever is larger."""
        return max(4 * self.max_body_bytes, self.max_frame_bytes + self.max_body_bytes)

    @property
    def embedded_store(self) -> bool:
        return not self.mongodb_uri

    @property
    def embedded_broker(self) -> bool:
        return not self.redis_url


@lru_cache
def get_settings() -> Settings:
    return Settings()
