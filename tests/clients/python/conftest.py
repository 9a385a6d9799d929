"""The product served in this process on a real port; the SDK talks to it over the network."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.conftest import make_settings
from tests.fixtures.auth import SECRET
from tests.fixtures.devices import FAST_PRESENCE
from tests.fixtures.product import serve_product


@pytest.fixture
async def product() -> AsyncIterator[str]:
    """Auth off, short presence timings; yields the base URL."""
    async with serve_product(make_settings(**FAST_PRESENCE)) as url:
        yield url


@pytest.fixture
async def secured_product() -> AsyncIterator[str]:
    """Auth on (tokens from tests.fixtures.auth)."""
    settings = make_settings(auth_enabled=True, secret_key=SECRET, **FAST_PRESENCE)
    async with serve_product(settings) as url:
        yield url
