"""Telemetry's storage: every list query the API builds is served by a declared index (the
24-hour history never scans the collection), and readings expire after TELEMETRY_RETENTION
through a TTL index made from the setting."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from shared.auth import Principal, Role
from shared.models import TelemetryAlert, TelemetryReading
from shared.models.alert import Severity
from shared.models.base import utcnow
from shared.models.telemetry import RETENTION_INDEX
from shared.runtime import Runtime
from shared.settings import Settings
from shared.telemetry.repository import index_for, telemetry_repository
from shared.telemetry.schemas import AlertFilters, ReadingFilters
from shared.telemetry.service import scoped
from tests.conftest import drop_database

DAY_AGO = utcnow() - timedelta(hours=24)
READING_QUERIES = [
    ReadingFilters(since=DAY_AGO),
    ReadingFilters(sensor_id="s1", since=DAY_AGO),
    ReadingFilters(drone_serial="SN1", since=DAY_AGO),
    ReadingFilters(is_anomaly=True, since=DAY_AGO),
    ReadingFilters(sensor_type="temperature", since=DAY_AGO),
    ReadingFilters(location="roof", since=DAY_AGO),
    ReadingFilters(sensor_id="s1", drone_serial="SN1"),
]
ALERT_QUERIES = [
    AlertFilters(),
    AlertFilters(resolved=False, severity=Severity.HIGH, since=DAY_AGO),
    AlertFilters(sensor_id="s1"),
    AlertFilters(drone_serial="SN1", since=DAY_AGO),
]
DETECTOR = Principal(sub="d", role=Role.DETECTOR, drones=frozenset({"SN1", "SN2"}))


@pytest.mark.parametrize("filters", READING_QUERIES, ids=lambda f: ",".join(f.query()) or "all")
def test_each_reading_list_is_served_by_an_index(filters: ReadingFilters) -> None:
    for query in (filters.query(), scoped(DETECTOR, filters.query())):
        keys = index_for(TelemetryReading, query)
        assert keys is not None, query
        leading = keys[0][0]
        assert leading == "timestamp" or leading in query
        assert ("timestamp", -1) in keys  # newest first, straight from the index


@pytest.mark.parametrize("filters", ALERT_QUERIES, ids=lambda f: ",".join(f.query()) or "all")
def test_each_alert_list_is_served_by_an_index(filters: AlertFilters) -> None:
    keys = index_for(TelemetryAlert, scoped(DETECTOR, filters.query()))
    assert keys is not None and ("timestamp", -1) in keys


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    runtime = Runtime.create(settings)
    await runtime.start()
    yield runtime
    await drop_database(runtime)
    await runtime.stop()


async def test_readings_expire_through_a_ttl_index_that_follows_the_setting(
    runtime: Runtime,
) -> None:
    collection = TelemetryReading.get_pymongo_collection()
    await telemetry_repository.ensure_retention(7 * 24 * 3600)
    indexes = await collection.index_information()
    assert indexes[RETENTION_INDEX]["expireAfterSeconds"] == 7 * 24 * 3600
    assert indexes[RETENTION_INDEX]["key"] == [("timestamp", 1)]
    await telemetry_repository.ensure_retention(3600)  # TELEMETRY_RETENTION changed
    indexes = await collection.index_information()
    assert indexes[RETENTION_INDEX]["expireAfterSeconds"] == 3600
