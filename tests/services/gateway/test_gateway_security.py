"""Socket.IO security: the handshake needs a token, and no event of a drone a client may not see
reaches its socket, through `all`, replay or snapshots either."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest
import socketio
import websockets

from tests.conftest import make_settings
from tests.fixtures.auth import SECRET, bearer, token
from tests.fixtures.sio import RecordingClient
from tests.services.gateway.test_gateway import Product, start_product


@pytest.fixture
async def product() -> AsyncIterator[Product]:
    settings = make_settings(auth_enabled=True, secret_key=SECRET, connections_per_client=3)
    async for running in start_product(settings):
        running.http.headers.update(bearer("admin"))  # made now: a token made at import
        # would run out while a long suite reaches this module
        yield running


async def connect(product: Product, role: str, drones: list[str] | None) -> RecordingClient:
    return await RecordingClient(product.url, auth={"token": token(role, drones)}).connect()


async def test_handshake_without_a_valid_token_is_refused(product: Product) -> None:
    for auth in (None, {"token": "garbage"}, {"token": token("admin")[:-4] + "AAAA"}):
        client = socketio.AsyncClient(reconnection=False)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect(
                product.url, socketio_path="/ws/events", transports=["websocket"], auth=auth
            )


async def test_refused_handshake_says_why_in_a_json_object(product: Product) -> None:
    """CONNECT_ERROR carries `{"message", "data": {"error", "detail"}}`: socket.io-client makes
    it an Error with that message and `data`, as for Node's `next(err)`."""
    url = product.url.replace("http://", "ws://") + "/ws/events/?EIO=4&transport=websocket"
    async with websockets.connect(url) as ws:
        await ws.recv()
        await ws.send('40{"token":"garbage"}')
        refused = await asyncio.wait_for(ws.recv(), 2)
    assert isinstance(refused, str) and refused.startswith("44")
    answer = json.loads(refused[2:])
    assert answer == {
        "message": "invalid token",
        "data": {"error": "Unauthorized", "detail": "invalid token"},
    }


async def test_a_refused_handshake_says_why_in_words_and_as_data(product: Product) -> None:
    client = socketio.AsyncClient(reconnection=False)
    refusals: list[dict[str, object]] = []
    client.on("connect_error", refusals.append)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(
            product.url,
            socketio_path="/ws/events",
            transports=["websocket"],
            auth={"token": token("admin", ttl=-5)},
        )
    # socket.io-client shows `message` as err.message and `data` as err.data.
    assert refusals == [
        {"message": "token expired", "data": {"error": "Unauthorized", "detail": "token expired"}}
    ]


async def test_token_in_header_or_query_is_accepted(product: Product) -> None:
    for kwargs in (
        {"headers": {"Authorization": f"Bearer {token('viewer')}"}},
        {"url": f"{product.url}?token={token('viewer')}"},
    ):
        client = socketio.AsyncClient(reconnection=False)
        await client.connect(
            kwargs.get("url", product.url),  # type: ignore[arg-type]
            socketio_path="/ws/events",
            transports=["websocket"],
            headers=kwargs.get("headers", {}),  # type: ignore[arg-type]
        )
        assert client.connected
        await client.disconnect()


async def test_a_detector_cannot_subscribe_to_another_drone(product: Product) -> None:
    detector = await connect(product, "detector", ["MINE"])
    ack = await detector.subscribe(droneSerials=["MINE", "THEIRS"])
    assert ack["ok"] is False and ack["error"] == "Forbidden"
    assert (await detector.subscribe(droneSerial="MINE"))["ok"] is True
    await detector.close()


async def test_all_for_a_scoped_token_means_only_its_drones(product: Product) -> None:
    detector = await connect(product, "detector", ["MINE"])
    ack = await detector.subscribe(all=True)
    assert ack["ok"] is True and ack["all"] is False and ack["droneSerials"] == ["MINE"]
    await product.register("THEIRS")
    await product.register("MINE")
    await product.patch("THEIRS", streamIsOn=True)
    events = await detector.wait_for(1)
    await asyncio.sleep(0.2)
    assert [e["serial"] for e in detector.events()] == ["MINE"]
    assert events[0]["event"] == "drone.created"
    await detector.close()


async def test_replay_and_snapshot_never_leak_other_drones(product: Product) -> None:
    await product.register("MINE")
    first = await product.register("THEIRS")
    admin = await connect(product, "admin", None)
    await admin.subscribe(all=True)
    await product.patch("THEIRS", deviceName="secret")
    await product.patch("MINE", deviceName="fine")
    await admin.wait_for(2)
    start = admin.events()[0]["id"]
    detector = await connect(product, "detector", ["MINE"])
    ack = await detector.subscribe(all=True, lastEventId=start, snapshot=True)
    assert ack["ok"] is True and ack["recovered"] is True
    assert set(ack["snapshots"]) == {"MINE"}
    await asyncio.sleep(0.2)
    assert {e["serial"] for e in detector.events()} == {"MINE"}
    refused = await detector.subscribe(droneSerial="THEIRS", snapshot=True)
    assert refused["ok"] is False and "snapshots" not in refused
    assert first["deviceSerialNumber"] == "THEIRS"
    await admin.close()
    await detector.close()


async def test_connections_per_client_are_capped(product: Product) -> None:
    clients = [await connect(product, "viewer", None) for _ in range(3)]
    extra = socketio.AsyncClient(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await extra.connect(
            product.url,
            socketio_path="/ws/events",
            transports=["websocket"],
            auth={"token": token("viewer")},
        )
    await clients[0].close()
    await asyncio.sleep(0.1)
    again = await connect(product, "viewer", None)  # a slot is free again
    for client in [*clients[1:], again]:
        await client.close()


async def test_subscribe_flood_is_rate_limited(product: Product) -> None:
    client = await connect(product, "viewer", None)
    acks = [await client.subscribe(droneSerial=f"SN{n}") for n in range(60)]
    refused = [ack for ack in acks if not ack["ok"]]
    assert refused and all(ack["error"] == "RateLimited" for ack in refused)
    assert client.sio.connected
    await client.close()


async def test_a_browser_from_a_foreign_origin_is_refused(product: Product) -> None:
    async with httpx.AsyncClient() as http:
        foreign = await http.get(
            f"{product.url}/ws/events/?EIO=4&transport=polling",
            headers={"Origin": "https://evil.example"},
        )
        same = await http.get(
            f"{product.url}/ws/events/?EIO=4&transport=polling",
            headers={"Origin": product.url},
        )
    assert foreign.status_code == 400
    assert same.status_code == 200


async def test_subscriptions_per_client_are_capped() -> None:
    settings = make_settings(auth_enabled=True, secret_key=SECRET, subscriptions_per_client=3)
    async for running in start_product(settings):
        client = await connect(running, "viewer", None)
        assert (await client.subscribe(droneSerials=["A", "B"]))["ok"] is True
        refused = await client.subscribe(droneSerials=["C", "D"])
        assert refused["ok"] is False and refused["error"] == "TooManySubscriptions"
        assert (await client.subscribe(droneSerial="C"))["droneSerials"] == ["A", "B", "C"]
        await client.close()


def test_origin_rule() -> None:
    same_origin_only = make_settings()
    assert same_origin_only.origin_allowed(None, "api:8000")  # not a browser
    assert same_origin_only.origin_allowed("http://api:8000", "api:8000")
    assert not same_origin_only.origin_allowed("https://evil.example", "api:8000")
    listed = make_settings(cors_origins=["https://ops.example"])
    assert listed.origin_allowed("https://ops.example", "api:8000")
    assert not listed.origin_allowed("http://api:8000", "api:8000")
    assert make_settings(cors_origins=["*"]).origin_allowed("https://anything", None)
