"""Whole-system fixtures: DroneCast services as separate processes on a real Redis."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import pytest

from tests.conftest import REAL_MONGODB_URI
from tests.fixtures.redis_server import RedisServer
from tests.fixtures.servers import ServiceProcess


def service_env(redis_url: str, **extra: str) -> dict[str, str]:
    return {
        "REDIS_URL": redis_url,
        # With no MONGODB_URI each api process has its own embedded store, which is only
        # sound with ONE api process; tests with several api processes need a real MongoDB
        # or share through Redis only.
        "MONGODB_URI": REAL_MONGODB_URI,
        "DATABASE_NAME": f"dronecast_e2e_{uuid.uuid4().hex[:10]}",
        "ENVIRONMENT": "test",
        "AUTH_ENABLED": "false",
        "LOG_LEVEL": "INFO",
        **extra,
    }


@pytest.fixture
def bus(request: pytest.FixtureRequest) -> tuple[str, bool]:
    """(REDIS_URL, REDIS_CLUSTER): one Redis, or with `@pytest.mark.parametrize("bus",
    ["cluster"], indirect=True)` the session's Redis Cluster (3 masters + 3 replicas)."""
    if getattr(request, "param", "redis") == "cluster":
        return request.getfixturevalue("cluster_url"), True
    return request.getfixturevalue("redis_url"), False


@pytest.fixture
def system(redis_url: str, redis_server: RedisServer) -> Iterator[dict[str, ServiceProcess]]:
    """One api and two gateway replicas, each its own process."""
    env = service_env(redis_url)
    processes = {
        "api": ServiceProcess("api", env),
        "gateway-1": ServiceProcess("gateway", env),
        "gateway-2": ServiceProcess("gateway", env),
    }
    with running(processes):
        yield processes


@contextlib.contextmanager
def running(processes: dict[str, ServiceProcess]) -> Iterator[dict[str, ServiceProcess]]:
    """Start the processes together, wait until each is ready, and stop them all after."""
    for process in processes.values():
        process.start(wait_ready=False)
    try:
        for process in processes.values():
            process.wait_ready(30)
        yield processes
    finally:
        for process in processes.values():
            process.stop()
