"""The Socket.IO gateway at /ws/events, as seed 001's clients use it, plus recovery and snapshots.

The product runs in-process on a real port (`dronecast dev`'s app on the embedded store and
broker); clients are real python-socketio clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from services.dev import create_dev_app
from services.gateway import internals
from services.gateway.server import Gateway
from services.gateway.wire import WebSocketProtocol
from shared.broker import MemoryBroker
from shared.channels import drone_pattern
from shared.events import EventName, PendingEvent
from shared.settings import Settings
from tests.conftest import make_settings
from tests.fixtures.calls import counting_calls
from tests.fixtures.redis_server import RedisServer
from tests.fixtures.servers import serve
from tests.fixtures.sio import RecordingClient


@dataclass
class Product:
    url: str
    http: httpx.AsyncClient
    app: Any
    lean: bool = True  # Socket.IO clients on the gateway's lean connections (wire.py)

    @property
    def broker(self) -> Any:
        return self.app.other_asgi_app.state.broker

    async def client(self) -> RecordingClient:
        return await RecordingClient(self.url).connect()

    async def register(self, serial: str, **fields: Any) -> dict[str, Any]:
        response = await self.http.post(
            "/api/v1/drones/register", json={"deviceSerialNumber": serial, **fields}
        )
        assert response.status_code == 201, response.text
        return response.json()

    async def patch(self, serial: str, **fields: Any) -> dict[str, Any]:
        response = await self.http.patch(f"/api/v1/drones/sn/{serial}", json=fields)
        assert response.status_code == 200, response.text
        return response.json()


async def start_product(settings: Settings, ws: Any = WebSocketProtocol) -> AsyncIterator[Product]:
    app = create_dev_app(settings)
    async with serve(app, ws) as url, httpx.AsyncClient(base_url=url) as http:
        yield Product(url=url, http=http, app=app, lean=ws is WebSocketProtocol)


# Socket.IO clients on the gateway's lean connections (as `dronecast` runs), and on python-
# engineio's sockets behind uvicorn's own protocol (another ASGI server would give the same).
@pytest.fixture(params=[WebSocketProtocol, "websockets-sansio"], ids=["lean", "engineio"])
async def product(request: pytest.FixtureRequest) -> AsyncIterator[Product]:
    async for running in start_product(make_settings(client_queue_limit=50), request.param):
        yield running


async def test_connect_greets_with_client_id(product: Product) -> None:
    client = await product.client()
    assert client.events("connected") == [{"clientId": client.client_id}]
    assert client.client_id
    await client.close()


async def test_serial_subscriber_gets_only_its_drone(product: Product) -> None:
    client = await product.client()
    ack = await client.subscribe(droneSerial="SN1")
    assert ack["ok"] is True and ack["droneSerials"] == ["SN1"]
    await product.register("SN1")
    await product.register("SN2")
    await product.patch("SN1", streamIsOn=True)
    await product.patch("SN2", streamIsOn=True)
    events = await client.wait_for(3)
    await asyncio.sleep(0.1)
    assert [e["event"] for e in client.events()] == [
        "drone.created",
        "drone.updated",
        "drone.stream.status",
    ]
    assert all(e["serial"] == "SN1" for e in events)
    assert events[2]["data"]["streamIsOn"] is True
    await client.close()


async def test_all_subscriber_gets_every_drone(product: Product) -> None:
    client = await product.client()
    await client.subscribe(all=True)
    await product.register("SN1")
    await product.register("SN2")
    events = await client.wait_for(2)
    assert {e["serial"] for e in events} == {"SN1", "SN2"}
    await client.close()


async def test_overlapping_subscriptions_deliver_each_event_once(product: Product) -> None:
    client = await product.client()
    await client.subscribe(all=True)
    await client.subscribe(droneSerial="SN1")
    await client.subscribe(droneSerials=["SN1", "SN2"])
    await product.register("SN1")
    await product.patch("SN1", deviceName="a")
    await client.wait_for(2)
    await asyncio.sleep(0.2)
    ids = [e["id"] for e in client.events()]
    assert len(ids) == 2 and len(set(ids)) == 2
    await client.close()


async def test_unsubscribe_stops_events(product: Product) -> None:
    client = await product.client()
    await client.subscribe(droneSerial="SN1")
    await product.register("SN1")
    await client.wait_for(1)
    ack = await client.unsubscribe(droneSerial="SN1")
    assert ack == {"ok": True, "all": False, "droneSerials": []}
    await product.patch("SN1", deviceName="after")
    await asyncio.sleep(0.2)
    assert len(client.events()) == 1
    await client.close()


@pytest.mark.parametrize(
    "request_body",
    [
        {},
        {"droneSerial": "bad serial"},
        {"droneSerial": "all"},
        {"droneSerials": "SN1"},
        {"all": "yes"},
        {"droneSerial": "SN1", "lastEventId": "yesterday"},
        {"droneSerial": {"$ne": None}},
    ],
)
async def test_bad_subscribe_gets_a_clear_error(
    product: Product, request_body: dict[str, Any]
) -> None:
    client = await product.client()
    ack = await client.subscribe(**request_body)
    assert ack["ok"] is False
    assert ack["error"] in {"InvalidSubscribe"}
    assert ack["detail"]
    errors = await client.wait_for(1, "error")
    assert errors[0]["error"] == ack["error"]
    assert client.sio.connected  # the socket stays open
    await product.register("SN1")
    await asyncio.sleep(0.1)
    assert client.events() == []  # and nothing was subscribed
    await client.close()


async def test_subscribe_without_ack_and_non_dict_payload_keeps_socket(product: Product) -> None:
    client = await product.client()
    await client.sio.emit("subscribe", "SN1")
    await client.wait_for(1, "error")
    await client.sio.emit("subscribe", {"droneSerial": "SN1"})  # seed style, no ack
    await asyncio.sleep(0.1)
    await product.register("SN1")
    await client.wait_for(1)
    await client.close()


async def test_reconnect_with_last_event_id_replays_the_gap_in_order(product: Product) -> None:
    first = await product.client()
    await first.subscribe(droneSerial="SN1")
    await product.register("SN1")
    for n in range(3):
        await product.patch("SN1", deviceName=f"before-{n}")
    seen = await first.wait_for(4)
    last_id = seen[-1]["id"]
    await first.close()
    for n in range(5):  # missed while disconnected
        await product.patch("SN1", deviceName=f"missed-{n}")
    await product.register("SN2")  # another drone: not replayed to a SN1 subscriber

    second = await product.client()
    ack = await second.subscribe(droneSerial="SN1", lastEventId=last_id)
    assert ack["ok"] is True and ack["recovered"] is True and ack["replayed"] == 5
    await product.patch("SN1", deviceName="live")
    events = await second.wait_for(6)
    names = [e["data"]["changes"]["deviceName"]["new"] for e in events]
    assert names == [f"missed-{n}" for n in range(5)] + ["live"]
    await second.close()


async def test_unknown_last_event_id_says_not_recovered(product: Product) -> None:
    await product.register("SN1")
    client = await product.client()
    ack = await client.subscribe(droneSerial="SN1", lastEventId="1-0")
    assert ack["ok"] is True and ack["recovered"] is False
    await product.patch("SN1", deviceName="live")
    await client.wait_for(1)  # still subscribed live
    await client.close()


async def test_snapshot_comes_first_with_current_state(product: Product) -> None:
    await product.register("SN1", streamIsOn=False)
    await product.patch("SN1", streamIsOn=True, detectionClasses=[1, 2])
    client = await product.client()
    ack = await client.subscribe(droneSerial="SN1", snapshot=True)
    snapshot = ack["snapshots"]["SN1"]
    assert snapshot["state"]["streamIsOn"] is True
    assert snapshot["state"]["detectionClasses"] == [1, 2]
    [pushed] = await client.wait_for(1, "drone:snapshot")
    assert pushed == snapshot
    await product.patch("SN1", aiDetectionEnabled=True)
    events = await client.wait_for(2)
    assert [e["event"] for e in events] == ["drone.updated", "drone.ai.detection.toggled"]
    assert events[0]["id"] > snapshot["eventId"]
    await client.close()


async def test_snapshot_of_unknown_drone_is_null(product: Product) -> None:
    client = await product.client()
    ack = await client.subscribe(droneSerial="GHOST", snapshot=True)
    assert ack["snapshots"]["GHOST"] == {"serial": "GHOST", "eventId": None, "state": None}
    await client.close()


async def test_system_broadcast_reaches_every_client(product: Product) -> None:
    subscribed = await product.client()
    await subscribed.subscribe(droneSerial="SN1")
    idle = await product.client()
    await product.broker.publish(
        PendingEvent(EventName.SYSTEM_BROADCAST, None, {"message": "maintenance at 22:00"})
    )
    for client in (subscribed, idle):
        [event] = await client.wait_for(1, "system:event")
        assert event["data"] == {"message": "maintenance at 22:00"}
        await client.close()


async def test_a_client_that_stops_reading_is_cut_off_and_others_keep_up(product: Product) -> None:
    import websockets

    healthy = await product.client()
    await healthy.subscribe(droneSerial="SN1")
    ws_url = product.url.replace("http", "ws") + "/ws/events/?EIO=4&transport=websocket"
    # A small receive buffer, so the kernel cannot soak up what the client does not read.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", int(product.url.rsplit(":", 1)[1])))
    stalled = await websockets.connect(ws_url, sock=sock, max_queue=1)
    await stalled.recv()  # engine.io open
    await stalled.send("40")  # socket.io connect
    while not (await stalled.recv()).startswith("40"):
        pass
    await stalled.send('42["subscribe",{"droneSerial":"SN1"}]')
    await asyncio.sleep(0.2)
    # The stalled client reads nothing more. 1000 events of ~20 KB overflow the socket
    # buffers and then its bounded queue (50 frames).
    payload = {"blob": "x" * 20_000}
    for n in range(1000):
        await product.broker.publish(
            PendingEvent(EventName.DRONE_UPDATED, "SN1", {"n": n, **payload})
        )
        if n % 50 == 0:
            await asyncio.sleep(0.01)
    events = await healthy.wait_for(1000, timeout=30)
    assert [e["data"]["n"] for e in events] == list(range(1000))
    gateway = product.app.other_asgi_app.state.gateway
    for _ in range(100):
        if len(gateway.hub.clients) == 1:
            break
        await asyncio.sleep(0.05)
    assert list(gateway.hub.clients) == [healthy.client_id]  # the stalled one is gone
    # Reading again, the stalled client finds why it was let go, then engine.io's CLOSE (a
    # Socket.IO client then reconnects); the lean connection also closes with the same code.
    told = closed = False
    with contextlib.suppress(websockets.ConnectionClosed):
        while not closed:
            message = await asyncio.wait_for(stalled.recv(), 5)
            told = told or (isinstance(message, str) and '"SlowConsumer"' in message)
            closed = message == "1"
    assert told and closed
    if product.lean:
        with contextlib.suppress(websockets.ConnectionClosed):
            await asyncio.wait_for(stalled.recv(), 5)
        assert stalled.close_code == 3008
    await healthy.close()


async def test_snapshot_lost_with_redis_data_is_read_from_the_store(
    redis_url: str, redis_server: RedisServer
) -> None:
    async for running in start_product(make_settings(redis_url=redis_url)):
        await running.register("SN1", streamIsOn=True, detectionClasses=[7])
        redis_server.restart()  # Redis comes back empty: no snapshot, no stream
        client = await running.client()
        ack = await client.subscribe(droneSerial="SN1", snapshot=True)
        state = ack["snapshots"]["SN1"]["state"]
        assert state["streamIsOn"] is True and state["detectionClasses"] == [7]
        await running.patch("SN1", streamIsOn=False)
        events = await client.wait_for(2)
        assert [e["event"] for e in events] == ["drone.updated", "drone.stream.status"]
        await client.close()


async def _gateway_with_clients(count: int) -> tuple[Gateway, list[str]]:
    """A gateway whose `count` clients each watch a drone of their own, connected and
    subscribed through python-socketio's engine.io handlers, as a lean connection does it."""
    # All from one address: the per-client limits would count them as one client.
    settings = make_settings(
        connections_per_client=count,
        client_messages_per_second=count,
        client_message_burst=count,
    )
    gateway = Gateway(settings, MemoryBroker(60, 1000))
    await gateway.start()
    eio = gateway.sio.eio
    eio_sids = [f"client-{n}" for n in range(count)]
    for n, eio_sid in enumerate(eio_sids):
        environ = {"REMOTE_ADDR": "127.0.0.1", "QUERY_STRING": ""}
        await internals.trigger_event(eio, "connect", eio_sid, environ, run_async=False)
        await internals.trigger_event(eio, "message", eio_sid, "0", run_async=False)
        subscribe = '2["subscribe",{"droneSerial":"SN' + str(n) + '"}]'
        await internals.trigger_event(eio, "message", eio_sid, subscribe, run_async=False)
    for _ in range(100):  # the subscribe handlers run as tasks
        if gateway.hub.is_wanted(f"SN{count - 1}"):
            break
        await asyncio.sleep(0.01)
    assert len(gateway.hub.clients) == count and gateway.hub.is_wanted(f"SN{count - 1}")
    return gateway, eio_sids


async def _work_to_disconnect(gateway: Gateway, eio_sids: list[str]) -> int:
    """The Python calls made while these clients' engine.io disconnects are handled."""
    eio = gateway.sio.eio
    with counting_calls() as calls:
        for eio_sid in eio_sids:
            reason = eio.reason.TRANSPORT_CLOSE
            await internals.trigger_event(eio, "disconnect", eio_sid, reason, run_async=False)
        await asyncio.sleep(0)  # the end of the tick: the relay lets their drones go
    return calls.count


async def test_a_client_leaving_costs_the_same_however_many_clients_stay() -> None:
    """Many clients leaving at once (a drain, a network cut) cost each the same: neither the
    Socket.IO rooms nor the drones watched are searched client by client (that was O(N^2))."""
    work = {}
    for count in (100, 1000):
        gateway, eio_sids = await _gateway_with_clients(count)
        leaving = eio_sids[:20]
        await _work_to_disconnect(gateway, eio_sids[-1:])  # warm: the first disconnect
        work[count] = await _work_to_disconnect(gateway, leaving)
        # They are gone everywhere, and so are their drones from what the bus sends here.
        assert len(gateway.hub.clients) == count - 21
        watched = gateway.relay._subscription.patterns  # type: ignore[union-attr]
        for n in (*range(20), count - 1):
            assert not gateway.hub.is_wanted(f"SN{n}")
            assert drone_pattern(f"SN{n}") not in watched
        assert gateway.hub.is_wanted("SN20") and drone_pattern("SN20") in watched
        rooms = gateway.sio.manager.rooms["/"]
        assert not set(rooms[None].values()) & {*leaving, eio_sids[-1]}
        assert len(rooms) == 1 + count - 21  # everyone's room, and one per client left
        await gateway.stop()
    assert work[1000] == work[100], work
