"""Session fixtures: a real redis-server, settings, apps on the embedded store or a real MongoDB.

Set MONGODB_URI to run every test against a real MongoDB (each test gets its own database).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from shared.settings import Settings
from tests.fixtures.redis_cluster import RedisCluster
from tests.fixtures.redis_server import RedisServer

REAL_MONGODB_URI = os.environ.get("MONGODB_URI", "")

# Files whose tests take the longest (a simulated fleet for a minute, a fuzzer, browsers): run
# first, so that `make test`'s two processes (pytest-xdist, a file each) finish together
# instead of one of them starting a minute-long test at the end.
LONG_FIRST = (
    "tests/e2e/test_soak.py",
    "tests/e2e/test_schemathesis.py",
    "tests/services/api/web/test_dashboard.py",
    "tests/clients/python/test_simulator.py",
    "tests/docs/test_readme.py",
    "tests/bench/test_dashboard_bench_smoke.py",
    "tests/services/gateway/test_wire.py",
    "tests/e2e/test_delivery_guarantees.py",
    "tests/bench/test_drain_bench_smoke.py",
    "tests/services/test_cli.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        path = item.nodeid.split("::", 1)[0]
        return LONG_FIRST.index(path) if path in LONG_FIRST else len(LONG_FIRST)

    items.sort(key=rank)  # stable: the rest keep their order


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    if redis_server.process is None or redis_server.process.poll() is not None:
        redis_server.start()
    redis_server.flush()
    return redis_server.url


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    """3 masters + 3 replicas, started once for the session by the first test that asks."""
    cluster = RedisCluster()
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture
def cluster_url(redis_cluster: RedisCluster) -> str:
    """The cluster whole again (a test may have killed a master) and empty."""
    redis_cluster.heal()
    redis_cluster.flush()
    return redis_cluster.url


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "test",
        "auth_enabled": False,
        "mongodb_uri": REAL_MONGODB_URI,
        "database_name": f"dronecast_test_{uuid.uuid4().hex[:12]}",
        "redis_url": "",
        "log_json": False,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings() -> Settings:
    return make_settings()


async def in_process_api(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The api with these settings on the embedded store and broker (or MONGODB_URI), driven
    in-process; `client.app` is the app."""
    from services.api.main import create_app

    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            client.app = app  # type: ignore[attr-defined]
            yield client
        await drop_database(app.state.runtime)


@pytest.fixture
async def api_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async for client in in_process_api(settings):
        yield client


@pytest.fixture
async def secured() -> AsyncIterator[httpx.AsyncClient]:
    """The api with authentication on (tokens from tests.fixtures.auth)."""
    from tests.fixtures.auth import SECRET

    async for client in in_process_api(make_settings(auth_enabled=True, secret_key=SECRET)):
        yield client


async def drop_database(runtime: Any) -> None:
    if REAL_MONGODB_URI and runtime.database is not None:
        await runtime.database.client.drop_database(runtime.database.name)
