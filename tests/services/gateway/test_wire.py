"""The lean WebSocket + engine.io v4 server (services/gateway/wire.py), as clients see it.

The product runs in-process on a real port with uvicorn and `ws=wire.WebSocketProtocol`, as
`dronecast` runs it. Clients are real: python-socketio, the `websockets` library, httpx for
long-polling, and a raw socket (`RawWS`) that writes its own masked frames where a test needs
frames no well-behaved client would send.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import socket
import struct
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Origin

from services.dev import create_dev_app
from services.gateway.wire import EngineSocket
from shared.events import EventName, PendingEvent
from shared.settings import Settings
from tests.conftest import make_settings
from tests.fixtures.servers import serve
from tests.fixtures.sio import RecordingClient

EIO_WS_PATH = "/ws/events/?EIO=4&transport=websocket"
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
MAX_PAYLOAD = 64 * 1024  # the gateway's max_http_buffer_size


# --- the product ----------------------------------------------------------------------------


@dataclass
class Product:
    url: str
    http: httpx.AsyncClient
    app: Any

    @property
    def gateway(self) -> Any:
        return self.app.other_asgi_app.state.gateway

    @property
    def broker(self) -> Any:
        return self.app.other_asgi_app.state.broker

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + EIO_WS_PATH

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def sockets(self) -> dict[str, Any]:
        sockets: dict[str, Any] = self.gateway.sio.eio.sockets
        return sockets

    def clients(self) -> dict[str, Any]:
        clients: dict[str, Any] = self.gateway.hub.clients
        return clients

    async def register(self, serial: str, **fields: Any) -> dict[str, Any]:
        response = await self.http.post(
            "/api/v1/drones/register", json={"deviceSerialNumber": serial, **fields}
        )
        assert response.status_code == 201, response.text
        return response.json()

    async def all_gone(self, timeout: float = 2.0) -> None:
        """The server has let every client go: no engine.io socket, no hub client."""
        await eventually(lambda: not self.sockets() and not self.clients(), timeout)


async def start_product(settings: Settings) -> AsyncGenerator[Product, None]:
    app = create_dev_app(settings)
    async with serve(app) as url, httpx.AsyncClient(base_url=url) as http:
        yield Product(url=url, http=http, app=app)


@pytest.fixture
async def product() -> AsyncIterator[Product]:
    async for running in start_product(make_settings()):
        yield running


async def eventually(predicate: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s")
        await asyncio.sleep(0.01)


async def sio_client(url: str, transports: list[str]) -> RecordingClient:
    client = RecordingClient(url)
    await client.sio.connect(url, socketio_path="/ws/events", transports=transports)
    await asyncio.wait_for(client.connected.wait(), 5)
    return client


# --- a raw WebSocket client -----------------------------------------------------------------


def client_frame(
    payload: bytes, opcode: int = OP_TEXT, fin: bool = True, mask: bool = True, rsv: int = 0
) -> bytes:
    """A client-to-server frame, masked unless told otherwise."""
    n = len(payload)
    first = (0x80 if fin else 0) | rsv | opcode
    mask_bit = 0x80 if mask else 0
    if n < 126:
        header = bytes((first, mask_bit | n))
    elif n < 65536:
        header = bytes((first, mask_bit | 126)) + struct.pack("!H", n)
    else:
        header = bytes((first, mask_bit | 127)) + struct.pack("!Q", n)
    if not mask:
        return header + payload
    key = os.urandom(4)
    return header + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def text(payload: str, **kwargs: Any) -> bytes:
    return client_frame(payload.encode(), OP_TEXT, **kwargs)


class RawWS:
    """A WebSocket client over a plain TCP stream: writes exactly the bytes it is told to."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, product: Product, path: str = EIO_WS_PATH, rcvbuf: int = 0) -> RawWS:
        sock = socket.socket()
        if rcvbuf:  # a small receive buffer: the kernel cannot soak up what is not read
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", product.port))
        reader, writer = await asyncio.open_connection(sock=sock)
        key = base64.b64encode(os.urandom(16))
        writer.write(
            b"GET " + path.encode() + b" HTTP/1.1\r\n"
            b"Host: 127.0.0.1:" + str(product.port).encode() + b"\r\n"
            b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
        assert head.startswith(b"HTTP/1.1 101 "), head
        headers = dict(
            line.split(": ", 1) for line in head.decode("latin-1").split("\r\n")[1:] if line
        )
        headers = {name.lower(): value for name, value in headers.items()}
        accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest()).decode()
        assert headers.get("sec-websocket-accept") == accept, head
        return cls(reader, writer)

    def write(self, *frames: bytes) -> None:
        self.writer.write(b"".join(frames))

    async def frame(self, timeout: float = 2.0) -> tuple[bool, int, bytes]:
        """The next frame from the server: (fin, opcode, payload)."""
        b0, b1 = await asyncio.wait_for(self.reader.readexactly(2), timeout)
        assert not b1 & 0x80, "a server frame must not be masked"
        assert not b0 & 0x70, "no extension was negotiated: reserved bits must be clear"
        length = b1 & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
        payload = await asyncio.wait_for(self.reader.readexactly(length), timeout)
        return bool(b0 & 0x80), b0 & 0x0F, payload

    async def text(self, timeout: float = 2.0) -> str:
        """The next message, which must be one unfragmented text frame."""
        fin, opcode, payload = await self.frame(timeout)
        assert (fin, opcode) == (True, OP_TEXT), (fin, opcode, payload)
        return payload.decode()

    async def close_code(self, timeout: float = 2.0) -> int:
        """Read until the server's close frame; its status code. Then the server hangs up."""
        deadline = time.monotonic() + timeout
        while True:
            _, opcode, payload = await self.frame(max(0.01, deadline - time.monotonic()))
            if opcode == OP_CLOSE:
                assert len(payload) >= 2, payload
                code: int = struct.unpack("!H", payload[:2])[0]
                return code

    async def eof(self, timeout: float = 2.0) -> bytes:
        """Whatever is left until the server closes the TCP connection."""
        return await asyncio.wait_for(self.reader.read(), timeout)

    async def connect_sio(self) -> str:
        """engine.io OPEN, then Socket.IO CONNECT and the gateway's greeting: the client id."""
        opened = await self.text()
        assert opened.startswith("0{"), opened
        self.write(text("40"))
        ack = await self.text()
        assert ack.startswith("40{"), ack
        greeting = await self.text()
        assert greeting.startswith('42["connected",'), greeting
        client_id: str = orjson.loads(greeting[2:])[1]["clientId"]
        return client_id

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass


@pytest.fixture
async def raw(product: Product) -> AsyncIterator[RawWS]:
    """A raw client, connected to the gateway as a Socket.IO client."""
    ws = await RawWS.open(product)
    await ws.connect_sio()
    yield ws
    await ws.close()


# --- 1. the lean path -----------------------------------------------------------------------


async def test_websocket_client_is_served_lean_and_gets_events(product: Product) -> None:
    client = await RecordingClient(product.url).connect()
    assert client.events("connected") == [{"clientId": client.client_id}]
    [lean] = product.sockets().values()
    assert isinstance(lean, EngineSocket)
    ack = await client.subscribe(droneSerial="SN1")
    assert ack == {"ok": True, "all": False, "droneSerials": ["SN1"]}
    await product.register("SN1")
    [event] = await client.wait_for(1)
    assert (event["event"], event["serial"]) == ("drone.created", "SN1")
    await client.close()
    await product.all_gone()


# --- 2. the raw handshake -------------------------------------------------------------------


async def test_raw_handshake_open_connect_and_greeting(product: Product) -> None:
    async with websockets.connect(product.ws_url) as ws:
        opened = await asyncio.wait_for(ws.recv(), 2)
        assert isinstance(opened, str) and opened.startswith("0{"), opened
        handshake = orjson.loads(opened[1:])
        assert handshake["upgrades"] == []
        assert handshake["sid"] in product.sockets()
        assert handshake["pingInterval"] == 20_000
        assert handshake["pingTimeout"] == 20_000
        assert handshake["maxPayload"] == MAX_PAYLOAD
        await ws.send("40")
        connect = await asyncio.wait_for(ws.recv(), 2)
        assert isinstance(connect, str) and connect.startswith("40{"), connect
        sio_sid = orjson.loads(connect[2:])["sid"]
        assert sio_sid and sio_sid != handshake["sid"]
        greeting = await asyncio.wait_for(ws.recv(), 2)
        assert greeting == '42["connected",{"clientId":"' + sio_sid + '"}]'
        assert list(product.clients()) == [sio_sid]
    await product.all_gone()


# --- 3. the fallback: long-polling and the upgrade from it ----------------------------------


async def test_polling_client_upgrades_to_a_lean_connection(product: Product) -> None:
    client = await sio_client(product.url, ["polling", "websocket"])
    await eventually(lambda: client.sio.transport() == "websocket")
    await eventually(lambda: isinstance(next(iter(product.sockets().values())), EngineSocket))
    [upgraded] = product.sockets().values()
    [hub_client] = product.clients().values()
    assert hub_client.lane is upgraded  # events now take the lean connection
    ack = await client.subscribe(droneSerial="SN1")
    assert ack["ok"] is True
    await product.register("SN1")
    [event] = await client.wait_for(1)
    assert event["serial"] == "SN1"
    await client.close()
    await product.all_gone()


async def joined(product: Product) -> Any:
    """A `websockets` client past engine.io OPEN and Socket.IO CONNECT."""
    ws = await websockets.connect(product.ws_url)
    await ws.recv()
    await ws.send("40")
    await ws.recv()
    return ws


async def polling_session(product: Product) -> tuple[str, str]:
    """A long-polling engine.io session that has sent Socket.IO CONNECT: its polling path, and
    the WebSocket URL that upgrades it."""
    path = "/ws/events/?EIO=4&transport=polling"
    sid = orjson.loads((await product.http.get(path)).text[1:])["sid"]
    session = f"{path}&sid={sid}"
    await product.http.post(session, content="40")
    ws_url = product.url.replace("http://", "ws://") + f"{EIO_WS_PATH}&sid={sid}"
    return session, ws_url


async def test_events_across_the_upgrade_arrive_once_and_in_order(product: Product) -> None:
    """Events queued for polling before and during the upgrade go out first on the WebSocket."""
    session, ws_url = await polling_session(product)
    await product.http.post(session, content='421["subscribe",{"all":true}]')
    polled = (await product.http.get(session)).text.split("\x1e")
    assert polled[-1].startswith("431["), polled  # connect, greeting, subscribe ack

    async def publish(numbers: range) -> None:
        for n in numbers:
            await product.broker.publish(PendingEvent(EventName.DRONE_UPDATED, "SN1", {"n": n}))

    await publish(range(0, 100))  # waiting in the polling queue
    async with websockets.connect(ws_url) as ws:
        await ws.send("2probe")
        assert await asyncio.wait_for(ws.recv(), 2) == "3probe"
        await publish(range(100, 200))  # sent while upgrading: still for polling
        await ws.send("5")
        await publish(range(200, 300))  # after the upgrade
        numbers: list[int] = []
        while len(numbers) < 300:
            message = await asyncio.wait_for(ws.recv(), 2)
            assert isinstance(message, str)
            if message.startswith('42["drone:event"'):
                numbers.append(orjson.loads(message[2:])[1]["data"]["n"])
        assert numbers == list(range(300))
        [lean] = product.sockets().values()
        assert isinstance(lean, EngineSocket)
        late_poll = await product.http.get(session)
        assert late_poll.status_code == 400  # polling is over for this session
    await product.all_gone()


async def test_failed_upgrade_leaves_the_client_polling(product: Product) -> None:
    session, ws_url = await polling_session(product)
    assert (await product.http.get(session)).status_code == 200
    async with websockets.connect(ws_url) as ws:
        await ws.send("5")  # no probe first: not an upgrade engine.io accepts
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 2)
    [polling] = product.sockets().values()
    assert not isinstance(polling, EngineSocket) and not polling.upgrading
    await product.http.post(session, content='421["subscribe",{"all":true}]')
    reply = await product.http.get(session, timeout=5)
    assert reply.status_code == 200 and "431[" in reply.text, reply.text
    assert len(product.clients()) == 1  # still connected, by polling
    await product.http.post(session, content="1")
    await eventually(lambda: not product.clients())
    assert (await product.http.get(session)).status_code == 400  # the session is over
    await product.all_gone()


async def test_pure_polling_client_works(product: Product) -> None:
    # Raw engine.io long-polling over httpx. (python-socketio's polling client leaves its last
    # long-poll GET hanging on disconnect, which holds uvicorn's shutdown for 10 s.)
    path = "/ws/events/?EIO=4&transport=polling"
    opened = await product.http.get(path)
    assert opened.status_code == 200 and opened.text.startswith("0{"), opened.text
    handshake = orjson.loads(opened.text[1:])
    assert handshake["upgrades"] == ["websocket"]
    [polling] = product.sockets().values()
    assert not isinstance(polling, EngineSocket)
    session = f"{path}&sid={handshake['sid']}"

    async def post(*packets: str) -> None:
        response = await product.http.post(session, content="\x1e".join(packets))
        assert (response.status_code, response.text) == (200, "ok")  # as Node answers

    async def receive(count: int) -> list[str]:
        packets: list[str] = []
        while len(packets) < count:
            response = await product.http.get(session, timeout=5)
            assert response.status_code == 200, response.text
            packets += response.text.split("\x1e")
        return packets

    await post("40")
    connect, greeting = await receive(2)
    sio_sid = orjson.loads(connect.removeprefix("40"))["sid"]
    assert greeting == '42["connected",{"clientId":"' + sio_sid + '"}]'
    await post('421["subscribe",{"all":true}]')
    assert await receive(1) == ['431[{"ok":true,"all":true,"droneSerials":[]}]']
    await product.register("SN1")
    [event] = await receive(1)
    name, envelope = orjson.loads(event.removeprefix("42"))
    assert (name, envelope["event"], envelope["serial"]) == ("drone:event", "drone.created", "SN1")
    await post("1")  # engine.io CLOSE
    await eventually(lambda: not product.clients())
    assert (await product.http.get(session)).status_code == 400  # the session is over
    await product.all_gone()


async def test_unfinished_upgrade_is_given_up(product: Product) -> None:
    """A WebSocket that never sends the probe is closed; the client goes on polling."""
    product.gateway.sio.eio.ping_timeout = 0.3
    session, ws_url = await polling_session(product)
    assert (await product.http.get(session)).status_code == 200
    async with websockets.connect(ws_url) as ws:
        start = time.monotonic()
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 3)
        assert time.monotonic() - start < 2
    [polling] = product.sockets().values()
    assert not isinstance(polling, EngineSocket) and not polling.upgrading
    await product.http.post(session, content='421["subscribe",{"all":true}]')
    reply = await product.http.get(session, timeout=5)
    assert reply.status_code == 200 and "431[" in reply.text, reply.text
    await product.http.post(session, content="1")
    await eventually(lambda: not product.clients())


# --- 4. bad requests get engine.io's answers ------------------------------------------------


async def test_unsupported_engineio_version_is_refused(product: Product) -> None:
    response = await product.http.get("/ws/events/?EIO=3&transport=polling")
    assert response.status_code == 400
    assert "unsupported version" in response.text
    with pytest.raises(InvalidStatus) as refused:
        await websockets.connect(product.ws_url.replace("EIO=4", "EIO=3"))
    assert refused.value.response.status_code == 403
    assert product.sockets() == {}


@pytest.mark.parametrize("query", ["EIO=4", "EIO=4&transport=carrier-pigeon"])
async def test_unknown_transport_is_refused_as_engineio_does(product: Product, query: str) -> None:
    response = await product.http.get(f"/ws/events/?{query}")
    assert response.status_code == 400
    assert response.json() == {"code": 0, "message": "Transport unknown"}
    assert product.sockets() == {}


async def test_origin_is_checked_on_the_lean_path() -> None:
    async for product in start_product(make_settings(cors_origins=["https://ok.example"])):
        response = await product.http.get(
            "/ws/events/?EIO=4&transport=polling", headers={"Origin": "https://evil.example"}
        )
        assert response.status_code == 400
        assert "not an accepted origin" in response.text
        with pytest.raises(InvalidStatus) as refused:
            await websockets.connect(product.ws_url, origin=Origin("https://evil.example"))
        assert refused.value.response.status_code == 403
        assert product.sockets() == {}

        async with websockets.connect(product.ws_url, origin=Origin("https://ok.example")) as ws:
            opened = await asyncio.wait_for(ws.recv(), 2)
            assert isinstance(opened, str) and opened.startswith("0{")
            [lean] = product.sockets().values()
            assert isinstance(lean, EngineSocket)
        await product.all_gone()


# --- 5. keepalive ---------------------------------------------------------------------------


async def test_client_that_answers_pings_stays_connected(product: Product) -> None:
    eio = product.gateway.sio.eio
    eio.ping_interval = eio.ping_timeout = 0.2
    async with websockets.connect(product.ws_url) as ws:
        await ws.recv()
        await ws.send("40")
        pings = 0
        deadline = time.monotonic() + 1.2
        while time.monotonic() < deadline:
            try:
                message = await asyncio.wait_for(ws.recv(), deadline - time.monotonic())
            except TimeoutError:
                break
            if message == "2":
                pings += 1
                await ws.send("3")
        assert pings >= 3
        assert ws.close_code is None
        assert len(product.clients()) == 1
        [lean] = product.sockets().values()
        assert isinstance(lean, EngineSocket) and not lean.closed


async def test_client_that_never_answers_pings_is_dropped(product: Product) -> None:
    eio = product.gateway.sio.eio
    eio.ping_interval = eio.ping_timeout = 0.2
    async with websockets.connect(product.ws_url) as ws:
        await ws.recv()
        await ws.send("40")
        seen: list[str | bytes] = []
        start = time.monotonic()
        with pytest.raises(ConnectionClosed):
            while time.monotonic() - start < 2.5:
                seen.append(await asyncio.wait_for(ws.recv(), 2.5))
        assert time.monotonic() - start < 2.0
        assert "2" in seen and "3" not in seen
        assert seen[-1] == "1"  # engine.io CLOSE, then the close frame
        assert ws.close_code == 1000
    await product.all_gone()


async def answer_pings(ws: Any) -> None:
    """Answer engine.io pings until the connection closes."""
    with contextlib.suppress(ConnectionClosed):
        async for message in ws:
            if message == "2":
                await ws.send("3")


async def test_connection_that_never_joins_socketio_is_let_go(product: Product) -> None:
    """Node's connectTimeout: answering pings is not enough without a Socket.IO CONNECT."""
    eio = product.gateway.sio.eio
    eio.ping_interval = eio.ping_timeout = 0.2
    product.gateway.sio.connect_timeout = 0.5
    start = time.monotonic()
    async with (
        websockets.connect(product.ws_url) as idle,
        websockets.connect(product.ws_url) as joined,
    ):
        await joined.recv()
        await joined.send("40")
        keeping_joined = asyncio.create_task(answer_pings(joined))
        await asyncio.wait_for(answer_pings(idle), 3)
        assert 0.5 <= time.monotonic() - start < 2.0
        assert idle.close_code == 1000
        await asyncio.sleep(0.6)  # past the timeout, the one that joined stays
        assert joined.close_code is None and not keeping_joined.done()
        [left] = product.sockets().values()
        assert isinstance(left, EngineSocket) and list(product.clients()) != []
        keeping_joined.cancel()


async def test_client_that_pings_but_never_reads_is_dropped(product: Product) -> None:
    """WebSocket pings from a client that reads nothing: their pongs cannot pile up."""
    ws = await RawWS.open(product, rcvbuf=4096)
    await ws.connect_sio()
    [lean] = product.sockets().values()
    # Small buffers on the server's side of this one connection, so the test is quick.
    server_socket = lean.transport.get_extra_info("socket")
    server_socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    lean.transport.set_write_buffer_limits(high=4096)
    ping = client_frame(b"p" * 125, OP_PING)
    with contextlib.suppress(ConnectionError):
        for _ in range(200):
            ws.write(ping * 100)
            await ws.writer.drain()
            if lean.transport.is_closing():
                break
    await product.all_gone()
    assert lean.backlog is None and lean.pending is None
    await ws.close()


# --- 6. protocol errors ---------------------------------------------------------------------


def close(code: int, reason: bytes = b"") -> bytes:
    return client_frame(struct.pack("!H", code) + reason, opcode=OP_CLOSE)


async def closes_with(product: Product, raw: RawWS, code: int) -> None:
    """The server answers with a close frame with this code, hangs up, and lets the client go."""
    assert await raw.close_code() == code
    assert await raw.eof() == b""
    await product.all_gone()


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        pytest.param(text("40", mask=False), 1002, id="unmasked"),
        pytest.param(client_frame(b"42\xff\xfe"), 1007, id="invalid-utf8"),
        pytest.param(
            client_frame(b"4" + b"x" * (MAX_PAYLOAD + 1)), 1009, id="bigger-than-maxPayload"
        ),
        pytest.param(  # only the header: the server need not read (or drop) the payload
            bytes((0x81, 0xFF)) + struct.pack("!Q", MAX_PAYLOAD + 1) + os.urandom(4),
            1009,
            id="header-of-a-too-big-frame",
        ),
        pytest.param(client_frame(b"42[]", opcode=0x3), 1002, id="reserved-data-opcode"),
        pytest.param(client_frame(b"", opcode=0xB), 1002, id="reserved-control-opcode"),
        pytest.param(text("40", rsv=0x40), 1002, id="rsv1-without-extension"),
        pytest.param(client_frame(b"x" * 126, opcode=OP_PING), 1002, id="ping-too-long"),
        pytest.param(client_frame(b"", opcode=OP_PING, fin=False), 1002, id="fragmented-ping"),
        pytest.param(client_frame(b"more", opcode=OP_CONT), 1002, id="stray-continuation"),
        pytest.param(text("hello"), 1003, id="not-an-engineio-packet"),
    ],
)
async def test_protocol_error_closes_with_its_code_and_frees_the_client(
    product: Product, raw: RawWS, frame: bytes, code: int
) -> None:
    assert len(product.clients()) == 1
    raw.write(frame)
    await closes_with(product, raw, code)


async def test_oversized_fragmented_message_closes_1009(product: Product, raw: RawWS) -> None:
    # Each frame is small; together they exceed maxPayload (64 KiB) only with the last one.
    raw.write(
        client_frame(b"4" + b"x" * 30_000, fin=False),
        client_frame(b"x" * 30_000, opcode=OP_CONT, fin=False),
        client_frame(b"x" * 10_000, opcode=OP_CONT),
    )
    assert await raw.close_code() == 1009
    await product.all_gone()


# --- 7. fragmentation, WebSocket ping, binary messages --------------------------------------


async def test_fragmented_message_is_reassembled(product: Product, raw: RawWS) -> None:
    raw.write(
        client_frame(b'421["subs', fin=False),
        client_frame(b'cribe",{"al', opcode=OP_CONT, fin=False),
        client_frame(b'l":true}]', opcode=OP_CONT),
    )
    assert await raw.text() == '431[{"ok":true,"all":true,"droneSerials":[]}]'
    [client] = product.clients().values()
    assert client.all is True


async def test_control_frame_between_fragments_is_answered(product: Product, raw: RawWS) -> None:
    raw.write(
        client_frame(b'422["subscribe",', fin=False),
        client_frame(b"in between", opcode=OP_PING),
        client_frame(b'{"droneSerial":"SN1"}]', opcode=OP_CONT),
    )
    assert await raw.frame() == (True, OP_PONG, b"in between")
    assert await raw.text() == '432[{"ok":true,"all":false,"droneSerials":["SN1"]}]'


async def test_websocket_ping_gets_pong_with_its_payload(raw: RawWS) -> None:
    raw.write(client_frame(b"are you there?", opcode=OP_PING))
    assert await raw.frame() == (True, OP_PONG, b"are you there?")
    raw.write(client_frame(b"", opcode=OP_PING))
    assert await raw.frame() == (True, OP_PONG, b"")
    raw.write(client_frame(b"unsolicited", opcode=OP_PONG))  # ignored
    raw.write(text("2probe"))  # an engine.io PING from the client gets its PONG
    assert await raw.text() == "3probe"
    raw.write(text('423["subscribe",{"all":true}]'))
    assert (await raw.text()).startswith("433[")


async def test_binary_message_nobody_announced_closes_the_connection(
    product: Product, raw: RawWS
) -> None:
    """As Node's parser: binary data that is no announced attachment is a parse error. The
    connection closes (engine.io CLOSE, then 1000) and the server serves the next client."""
    raw.write(client_frame(b"\x00\x01\x02 not socket.io", opcode=OP_BINARY))
    assert await raw.text() == "1"
    assert await raw.close_code() == 1000
    raw.write(close(1000))  # the answer to the server's close frame: then it hangs up
    assert await raw.eof() == b""
    await product.all_gone()
    client = await RecordingClient(product.url).connect()
    assert (await client.subscribe(all=True))["ok"] is True
    await client.close()


async def test_binary_attachment_reaches_the_handler(product: Product, raw: RawWS) -> None:
    # A Socket.IO BINARY_EVENT: the packet, then its attachment as a binary frame.
    raw.write(
        text('451-5["subscribe",{"droneSerial":{"_placeholder":true,"num":0}}]'),
        client_frame(b"SN1", opcode=OP_BINARY),
    )
    assert await raw.text() == '435[{"ok":true,"all":false,"droneSerials":["SN1"]}]'
    [client] = product.clients().values()
    assert client.serials == {"SN1"}


async def test_lean_session_cannot_be_used_from_another_connection(
    product: Product, raw: RawWS
) -> None:
    [sid] = product.sockets()
    path = f"/ws/events/?EIO=4&sid={sid}"
    polled = await product.http.get(path + "&transport=polling")
    assert polled.status_code == 400
    posted = await product.http.post(path + "&transport=polling", content="1")
    assert posted.status_code == 400
    with pytest.raises(InvalidStatus) as refused:
        await websockets.connect(product.url.replace("http", "ws") + path + "&transport=websocket")
    assert refused.value.response.status_code == 403
    raw.write(text('426["subscribe",{"all":true}]'))  # the real client is unaffected
    assert (await raw.text()).startswith('436[{"ok":true')
    assert list(product.sockets()) == [sid]


async def connect_from(product: Product, address: str) -> tuple[Any, str]:
    """A raw Socket.IO connection through a trusted proxy: the socket and the CONNECT answer."""
    ws = await websockets.connect(product.ws_url, additional_headers={"X-Forwarded-For": address})
    await ws.recv()
    await ws.send("40")
    answer = await asyncio.wait_for(ws.recv(), 2)
    assert isinstance(answer, str)
    return ws, answer


async def test_forwarded_client_address_is_honoured() -> None:
    """Behind a trusted proxy the handlers see X-Forwarded-For, as on engine.io's path:
    here through the per-client connection limit."""
    async for product in start_product(make_settings(connections_per_client=1)):
        first, accepted = await connect_from(product, "10.0.0.1")
        assert accepted.startswith("40{")
        second, refused = await connect_from(product, "10.0.0.1")
        assert refused.startswith("44{") and "TooManyConnections" in refused
        third, accepted = await connect_from(product, "10.0.0.2")
        assert accepted.startswith("40{")
        assert len(product.clients()) == 2
        for ws in (first, second, third):
            await ws.close()
        await product.all_gone()


# --- 8. closing from the client -------------------------------------------------------------


async def test_client_close_frame_is_answered_and_frees_the_client(product: Product) -> None:
    ws = await joined(product)
    assert len(product.clients()) == 1
    await asyncio.wait_for(ws.close(1000, "bye"), 2)
    assert ws.close_code == 1000
    await product.all_gone()


@pytest.mark.parametrize(
    "code",
    [
        1000,
        1001,
        1002,
        1003,
        1007,
        1008,
        1009,
        1010,
        1011,
        1012,
        1013,
        1014,
        3000,
        3999,
        4000,
        4999,
    ],
)
async def test_client_close_code_that_may_be_sent_is_echoed(
    product: Product, raw: RawWS, code: int
) -> None:
    """RFC 6455 section 5.5.1: the answer to a close frame typically echoes its code."""
    raw.write(close(code, "going away for now: ☂".encode()))
    await closes_with(product, raw, code)


async def test_empty_close_frame_is_answered_1000(product: Product, raw: RawWS) -> None:
    raw.write(client_frame(b"", opcode=OP_CLOSE))
    await closes_with(product, raw, 1000)


@pytest.mark.parametrize(
    "code",
    [
        pytest.param(0, id="0"),
        pytest.param(999, id="999-below-the-range"),
        pytest.param(1004, id="1004-reserved"),
        pytest.param(1005, id="1005-no-status-is-never-sent"),
        pytest.param(1006, id="1006-abnormal-is-never-sent"),
        pytest.param(1015, id="1015-tls-is-never-sent"),
        pytest.param(1016, id="1016-future-rfc"),
        pytest.param(1100, id="1100-future-rfc"),
        pytest.param(2000, id="2000-future-rfc"),
        pytest.param(2999, id="2999-future-rfc"),
        pytest.param(5000, id="5000-above-the-range"),
        pytest.param(65535, id="65535"),
    ],
)
async def test_client_close_code_that_may_not_be_sent_is_a_protocol_error(
    product: Product, raw: RawWS, code: int
) -> None:
    """RFC 6455 section 7.4: such a code is not echoed (the server would send it itself): the
    connection fails with 1002."""
    raw.write(close(code))
    await closes_with(product, raw, 1002)


async def test_close_payload_of_one_byte_is_a_protocol_error(product: Product, raw: RawWS) -> None:
    """RFC 6455 section 5.5.1: a close body is empty or starts with a two-byte code."""
    raw.write(client_frame(b"a", opcode=OP_CLOSE))
    await closes_with(product, raw, 1002)


async def test_close_reason_that_is_not_utf8_closes_1007(product: Product, raw: RawWS) -> None:
    """RFC 6455 section 5.5.1: the reason is UTF-8 (8.1: otherwise fail with 1007). Autobahn
    case 7.5.1's reason: valid Greek, then an encoded surrogate (ED A0 80)."""
    reason = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited"
    raw.write(close(1000, reason))
    await closes_with(product, raw, 1007)


async def test_engineio_close_packet_disconnects(product: Product) -> None:
    ws = await joined(product)
    assert len(product.clients()) == 1
    await ws.send("1")
    with pytest.raises(ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), 2)
    assert ws.close_code == 1000
    await product.all_gone()


async def test_client_that_drops_the_tcp_connection_is_freed(product: Product, raw: RawWS) -> None:
    assert len(product.clients()) == 1
    raw.writer.transport.abort()
    await product.all_gone()


# --- 9. ordering ----------------------------------------------------------------------------


async def test_back_to_back_messages_are_acked_in_order() -> None:
    settings = make_settings(client_message_burst=200, client_messages_per_second=200)
    async for product in start_product(settings):
        ws = await RawWS.open(product)
        assert (await ws.text()).startswith("0{")
        count = 100  # more than the inbox holds before reading pauses (64)
        ws.write(
            text("40"),
            *(text(f'42{n}["subscribe",{{"droneSerial":"SN{n}"}}]') for n in range(count)),
        )
        assert (await ws.text()).startswith("40{")
        assert (await ws.text()).startswith('42["connected",')
        for n in range(count):
            message = await ws.text()
            prefix = f"43{n}["
            assert message.startswith(prefix), (n, message)
            [ack] = orjson.loads(message[len(prefix) - 1 :])
            assert ack["ok"] is True and f"SN{n}" in ack["droneSerials"]
        [client] = product.clients().values()
        assert len(client.serials) == count
        await ws.close()


# --- 10. many events, coalesced writes ------------------------------------------------------


async def test_many_events_arrive_complete_and_in_order(product: Product) -> None:
    client = await RecordingClient(product.url).connect()
    await client.subscribe(droneSerial="SN1")
    for n in range(2000):
        await product.broker.publish(PendingEvent(EventName.DRONE_UPDATED, "SN1", {"n": n}))
    events = await client.wait_for(2000, timeout=10)
    assert [e["data"]["n"] for e in events] == list(range(2000))
    assert client.sio.connected
    await client.close()


async def test_large_events_arrive_intact(product: Product) -> None:
    """Frames with 16-bit and 64-bit lengths, many per write."""
    client = await RecordingClient(product.url).connect()
    await client.subscribe(all=True)
    sizes = [10, 200, 70_000, 5, 65_535, 130_000]
    for n, size in enumerate(sizes):
        await product.broker.publish(
            PendingEvent(EventName.DRONE_UPDATED, "SN1", {"n": n, "blob": "y" * size})
        )
    events = await client.wait_for(len(sizes))
    assert [len(e["data"]["blob"]) for e in events] == sizes
    await client.close()


async def test_client_that_reads_slowly_gets_everything_in_order(product: Product) -> None:
    """While the client does not read, the transport pauses and frames wait in its backlog;
    they go out in order when it reads again."""
    ws = await RawWS.open(product, rcvbuf=4096)
    await ws.connect_sio()
    ws.write(text('421["subscribe",{"droneSerial":"SN1"}]'))
    assert (await ws.text()).startswith('431[{"ok":true')
    [lean] = product.sockets().values()
    count, blob = 500, "x" * 20_000  # 10 MB, more than the socket buffers hold
    for n in range(count):
        if n == 400:  # the transport has paused: what follows waits in the backlog
            await eventually(lambda: not lean.direct)
        await product.broker.publish(
            PendingEvent(EventName.DRONE_UPDATED, "SN1", {"n": n, "blob": blob})
        )
    await eventually(lambda: lean.backlog_size() > 0)
    received: list[int] = []
    while len(received) < count:
        message = await ws.text()
        name, envelope = orjson.loads(message.removeprefix("42"))
        assert name == "drone:event" and envelope["data"]["blob"] == blob
        received.append(envelope["data"]["n"])
    assert received == list(range(count))
    assert len(product.clients()) == 1 and lean.backlog_size() == 0
    await ws.close()


# --- 11. graceful shutdown ------------------------------------------------------------------


async def test_shutdown_closes_lean_clients_with_1012() -> None:
    running = start_product(make_settings())
    product = await anext(running)
    ws = await joined(product)
    start = time.monotonic()
    await asyncio.wait_for(running.aclose(), 4)  # the server exits
    assert time.monotonic() - start < 3
    await asyncio.wait_for(ws.wait_closed(), 2)
    assert ws.close_code == 1012
