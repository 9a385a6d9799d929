"""The gateway's Socket.IO and engine.io layers answer as the Node reference server does.

The servers are the gateway's stack (services/gateway/protocol.py, wire.py's lean WebSocket
connections) with the handlers of the official protocol test suites (tests/fixtures/
conformance.py). Each test is one behaviour those suites check, sent as raw packets.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from tests.fixtures.conformance import engineio_suite_app, socketio_suite_app
from tests.fixtures.servers import serve


@pytest.fixture
async def sio_url() -> AsyncIterator[str]:
    async with serve(socketio_suite_app()) as url:
        yield url


@pytest.fixture
async def eio_url() -> AsyncIterator[str]:
    async with serve(engineio_suite_app()) as url:
        yield url


def ws_url(url: str, path: str = "socket.io") -> str:
    return url.replace("http://", "ws://") + f"/{path}/?EIO=4&transport=websocket"


async def recv(ws: Any) -> str | bytes:
    """The next message that is not an engine.io ping."""
    while True:
        message: str | bytes = await asyncio.wait_for(ws.recv(), 2)
        if message != "2":
            return message


async def joined(url: str) -> Any:
    """A raw client past engine.io OPEN, Socket.IO CONNECT and the suite's `auth` event."""
    ws = await websockets.connect(ws_url(url))
    await ws.recv()
    await ws.send("40")
    assert str(await recv(ws)).startswith("40{")
    assert await recv(ws) == '42["auth",{}]'
    return ws


async def request(method: str, url: str) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.request(method, url)


async def closed(ws: Any, within: float = 2.0) -> None:
    """The server closes the connection (whatever it sends before)."""
    with pytest.raises(ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), within)


# --- Socket.IO: connect ---------------------------------------------------------------------


async def test_connect_with_a_payload_hands_it_to_the_handler(sio_url: str) -> None:
    async with websockets.connect(ws_url(sio_url)) as ws:
        await ws.recv()
        await ws.send('40{"token":"123"}')
        connected = str(await recv(ws))
        assert connected.startswith("40") and set(orjson.loads(connected[2:])) == {"sid"}
        assert await recv(ws) == '42["auth",{"token":"123"}]'


async def test_connect_to_a_custom_namespace(sio_url: str) -> None:
    async with websockets.connect(ws_url(sio_url)) as ws:
        await ws.recv()
        await ws.send('40/custom,{"token":"abc"}')
        assert str(await recv(ws)).startswith("40/custom,{")
        assert await recv(ws) == '42/custom,["auth",{"token":"abc"}]'


async def test_connect_to_an_unknown_namespace_is_refused_as_node_words_it(sio_url: str) -> None:
    async with websockets.connect(ws_url(sio_url)) as ws:
        await ws.recv()
        await ws.send("40/random")
        assert await recv(ws) == '44/random,{"message":"Invalid namespace"}'


async def test_invalid_handshake_closes_the_connection(sio_url: str) -> None:
    async with websockets.connect(ws_url(sio_url)) as ws:
        await ws.recv()
        await ws.send("4abc")
        await closed(ws)


async def test_connection_without_a_handshake_is_closed_after_the_connect_timeout(
    sio_url: str,
) -> None:
    async with websockets.connect(ws_url(sio_url)) as ws:
        start = time.monotonic()
        with pytest.raises(ConnectionClosed):
            while True:
                if await asyncio.wait_for(ws.recv(), 3) == "2":
                    await ws.send("3")  # alive, but it never joins
        assert 0.9 <= time.monotonic() - start < 2.0  # the suite's connectTimeout: 1 s


# --- Socket.IO: disconnect ------------------------------------------------------------------


async def test_leaving_the_main_namespace_keeps_the_connection(sio_url: str) -> None:
    ws = await joined(sio_url)
    await ws.send("41")
    assert await asyncio.wait_for(ws.recv(), 2) == "2"  # engine.io goes on: a ping
    await ws.close()


async def test_leaving_a_custom_namespace_keeps_the_main_one(sio_url: str) -> None:
    ws = await joined(sio_url)
    await ws.send("40/custom")
    assert str(await recv(ws)).startswith("40/custom,")
    assert await recv(ws) == '42/custom,["auth",{}]'
    await ws.send("41/custom")
    await ws.send('42["message","message to main namespace"]')
    assert await recv(ws) == '42["message-back","message to main namespace"]'
    await ws.close()


# --- Socket.IO: messages --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "answer"),
    [
        pytest.param(
            '42["message",1,"2",{"3":[true]}]',
            '42["message-back",1,"2",{"3":[true]}]',
            id="event-reaches-the-handler",
        ),
        pytest.param(
            '42456["message-with-ack",1,"2",{"3":[false]}]',
            '43456[1,"2",{"3":[false]}]',
            id="event-with-an-ack-is-acknowledged",
        ),
    ],
)
async def test_event_is_answered(sio_url: str, sent: str, answer: str) -> None:
    ws = await joined(sio_url)
    await ws.send(sent)
    assert await recv(ws) == answer
    await ws.close()


async def test_event_with_binary_attachments(sio_url: str) -> None:
    ws = await joined(sio_url)
    await ws.send('452-["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]')
    await ws.send(bytes([1, 2, 3]))
    await ws.send(bytes([4, 5, 6]))
    assert await recv(ws) == (
        '452-["message-back",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]'
    )
    assert await recv(ws) == bytes([1, 2, 3])
    assert await recv(ws) == bytes([4, 5, 6])
    await ws.close()


async def test_binary_ack(sio_url: str) -> None:
    ws = await joined(sio_url)
    await ws.send(
        '452-789["message-with-ack",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]'
    )
    await ws.send(bytes([1, 2, 3]))
    await ws.send(bytes([4, 5, 6]))
    assert await recv(ws) == '462-789[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]'
    assert await recv(ws) == bytes([1, 2, 3])
    assert await recv(ws) == bytes([4, 5, 6])
    await ws.close()


@pytest.mark.parametrize(
    "packet",
    [
        pytest.param("4abc", id="unknown-packet-type"),
        pytest.param("42{}", id="payload-not-an-array"),
        pytest.param('42abc["message-with-ack",1,"2",{"3":[false]}]', id="invalid-ack-id"),
        pytest.param('42["disconnect"]', id="reserved-event-name"),
        pytest.param("42[]", id="event-without-a-name"),
        pytest.param("43{}", id="ack-payload-not-an-array"),
        pytest.param(b"\x01\x02", id="binary-nobody-announced"),
    ],
)
async def test_malformed_packet_closes_the_connection(sio_url: str, packet: str | bytes) -> None:
    """Node's parser refuses these and closes the connection; so does the gateway."""
    ws = await joined(sio_url)
    await ws.send(packet)
    await closed(ws)


# --- engine.io ------------------------------------------------------------------------------


@pytest.mark.parametrize("query", ["EIO=4", "EIO=4&transport=abc"])
async def test_unknown_transport_is_a_400_with_engineios_error(eio_url: str, query: str) -> None:
    response = await request("GET", f"{eio_url}/engine.io/?{query}")
    assert response.status_code == 400
    assert response.json() == {"code": 0, "message": "Transport unknown"}


@pytest.mark.parametrize("query", ["transport=polling", "EIO=abc&transport=polling"])
async def test_unsupported_protocol_version_is_a_400(eio_url: str, query: str) -> None:
    assert (await request("GET", f"{eio_url}/engine.io/?{query}")).status_code == 400


@pytest.mark.parametrize("method", ["POST", "PUT"])
async def test_handshake_that_is_not_a_get_is_a_400(eio_url: str, method: str) -> None:
    response = await request(method, f"{eio_url}/engine.io/?EIO=4&transport=polling")
    assert response.status_code == 400
    assert response.json() == {"code": 2, "message": "Bad handshake method"}


async def test_long_polling_messages_are_echoed(eio_url: str) -> None:
    async with httpx.AsyncClient(base_url=eio_url) as http:
        opened = await http.get("/engine.io/?EIO=4&transport=polling")
        handshake = orjson.loads(opened.text[1:])
        assert handshake["upgrades"] == ["websocket"]
        assert (handshake["pingTimeout"], handshake["maxPayload"]) == (200, 1_000_000)
        session = f"/engine.io/?EIO=4&transport=polling&sid={handshake['sid']}"
        pushed = await http.post(session, content="4hello\x1e4world\x1ebAQIDBA==")
        assert (pushed.status_code, pushed.text) == (200, "ok")
        assert (await http.get(session)).text == "4hello\x1e4world\x1ebAQIDBA=="


async def test_websocket_handshake_and_echo(eio_url: str) -> None:
    async with websockets.connect(ws_url(eio_url, "engine.io")) as ws:
        opened = str(await ws.recv())
        handshake = orjson.loads(opened[1:])
        assert set(handshake) == {"sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"}
        assert (handshake["upgrades"], handshake["pingInterval"]) == ([], 300)
        await ws.send("4hello")
        assert await recv(ws) == "4hello"
        await ws.send(bytes([1, 2, 3, 4]))
        assert await recv(ws) == bytes([1, 2, 3, 4])


async def test_websocket_ping_timeout_closes_the_session(eio_url: str) -> None:
    async with websockets.connect(ws_url(eio_url, "engine.io")) as ws:
        await ws.recv()
        assert await asyncio.wait_for(ws.recv(), 1) == "2"  # not answered
        await closed(ws, within=1)


async def test_invalid_engineio_packet_closes_the_websocket(eio_url: str) -> None:
    async with websockets.connect(ws_url(eio_url, "engine.io")) as ws:
        await ws.recv()
        await ws.send("abc")
        await closed(ws)


async def test_upgrade_from_long_polling(eio_url: str) -> None:
    async with httpx.AsyncClient(base_url=eio_url) as http:
        opened = await http.get("/engine.io/?EIO=4&transport=polling")
        sid = orjson.loads(opened.text[1:])["sid"]
        session = f"/engine.io/?EIO=4&transport=polling&sid={sid}"
        async with websockets.connect(ws_url(eio_url, "engine.io") + f"&sid={sid}") as ws:
            await ws.send("2probe")
            assert await ws.recv() == "3probe"
            poll = await http.get(session)
            assert (poll.status_code, poll.text) == (200, "6")  # ends the pending poll
            await ws.send("5")
            await ws.send("4hello")
            assert await recv(ws) == "4hello"
            assert (await http.get(session)).status_code == 400  # polling is over
