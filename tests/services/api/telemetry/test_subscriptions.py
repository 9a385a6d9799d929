"""GraphQL subscriptions (seed 004's "real-time subscriptions"): `sensorData` and
`anomalyAlerts` over graphql-transport-ws on /api/v1/graphql, driven by gql's websockets
transport (a real GraphQL WebSocket client) against the product served on a real port."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from gql import Client, GraphQLRequest, gql
from gql.transport.exceptions import TransportConnectionFailed, TransportQueryError
from gql.transport.websockets import WebsocketsTransport

from services.dev import create_dev_app
from tests.conftest import make_settings
from tests.fixtures.auth import SECRET, token
from tests.fixtures.servers import serve
from tests.fixtures.telemetry import DATA, series, steady

ALERTS = gql(
    """subscription Alerts($drone: String) {
         anomalyAlerts(droneSerial: $drone) { id sensorId severity kind value droneSerial message }
       }"""
)
READINGS = gql(
    """subscription Readings($sensor: String) {
         sensorData(sensorId: $sensor) { id sensorId value isAnomaly anomalyScore timestamp }
       }"""
)


@contextlib.asynccontextmanager
async def product(**overrides: Any) -> AsyncIterator[str]:
    async with serve(create_dev_app(make_settings(**overrides))) as url:
        yield url


def transport(url: str, init: dict[str, Any] | None = None) -> WebsocketsTransport:
    return WebsocketsTransport(
        url=url.replace("http", "ws") + "/api/v1/graphql",
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
        init_payload=init or {},
    )


async def collect(session: Any, document: Any, count: int, **variables: Any) -> list[Any]:
    out = []
    async for item in session.subscribe(GraphQLRequest(document, variable_values=variables)):
        out.append(item)
        if len(out) == count:
            break
    return out


async def spike(http: httpx.AsyncClient, drone: str, sensor: str = "temp_1") -> None:
    body = series([*steady(40), 45.0], sensor, drone_serial=drone)
    assert (await http.post(DATA, json=body)).status_code == 202


async def test_anomaly_alerts_arrive_as_they_are_raised() -> None:
    async with product() as url, httpx.AsyncClient(base_url=url) as http:
        async with Client(transport=transport(url)) as session:
            waiting = asyncio.create_task(collect(session, ALERTS, 1, drone="SN1"))
            await asyncio.sleep(0.3)  # subscribed
            await spike(http, "SN2")  # another drone: filtered out
            await spike(http, "SN1")
            [item] = await asyncio.wait_for(waiting, 10)
    alert = item["anomalyAlerts"]
    assert alert["droneSerial"] == "SN1" and alert["sensorId"] == "temp_1"
    assert alert["value"] == 45.0 and alert["kind"] == "jump"
    assert alert["severity"] in {"low", "medium", "high", "critical"}


async def test_sensor_data_streams_each_judged_reading() -> None:
    async with product() as url, httpx.AsyncClient(base_url=url) as http:
        async with Client(transport=transport(url)) as session:
            waiting = asyncio.create_task(collect(session, READINGS, 41, sensor="temp_9"))
            await asyncio.sleep(0.3)
            await spike(http, "SN1", "temp_9")
            items = await asyncio.wait_for(waiting, 10)
    readings = [item["sensorData"] for item in items]
    assert [r["value"] for r in readings] == [*steady(40), 45.0]
    assert [r["isAnomaly"] for r in readings] == [False] * 40 + [True]
    assert readings[-1]["anomalyScore"] >= 1.0
    assert readings[0]["timestamp"].endswith("Z")


async def test_without_a_token_the_connection_is_refused_with_4403() -> None:
    async with product(auth_enabled=True, secret_key=SECRET) as url:
        for init in ({}, {"Authorization": "Bearer not-a-token"}):
            with pytest.raises(TransportConnectionFailed) as refused:
                async with Client(transport=transport(url, init)) as session:
                    await collect(session, ALERTS, 1)
            closed = refused.value.__cause__
            assert closed is not None and closed.rcvd.code == 4403  # type: ignore[attr-defined]


async def test_a_scoped_token_hears_only_its_drones() -> None:
    async with product(auth_enabled=True, secret_key=SECRET) as url:
        admin = {"Authorization": f"Bearer {token('admin')}"}
        async with httpx.AsyncClient(base_url=url, headers=admin) as http:
            mine = transport(url, {"Authorization": f"Bearer {token('detector', ['SN1'])}"})
            async with Client(transport=mine) as session:
                waiting = asyncio.create_task(collect(session, ALERTS, 1))
                await asyncio.sleep(0.3)
                await spike(http, "SN2")
                await spike(http, "SN1", "temp_2")
                [item] = await asyncio.wait_for(waiting, 10)
    assert item["anomalyAlerts"]["droneSerial"] == "SN1"


async def test_bad_arguments_are_a_graphql_error() -> None:
    async with product() as url, Client(transport=transport(url)) as session:
        with pytest.raises(TransportQueryError, match="droneSerial"):
            await asyncio.wait_for(collect(session, ALERTS, 1, drone="not a serial!"), 10)
