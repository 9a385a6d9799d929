"""The gateway's reliance on python-engineio's and uvicorn's private parts (internals.py).

`check()` passes on the installed versions, and each way an upgrade could break a reliance
makes it fail loudly, naming the reliance. The behaviours themselves are tried on the real
libraries here and, end to end, by test_wire.py and test_gateway.py.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import engineio
import httpx
import pytest
import socketio
from bidict import bidict
from engineio import packet as eio_packet
from engineio.async_socket import AsyncSocket
from uvicorn.protocols.websockets import websockets_sansio_impl
from uvicorn.server import ServerState

from services.gateway import internals
from tests.fixtures.calls import counting_calls


@pytest.fixture(autouse=True)
def fresh_check() -> Iterator[None]:
    internals.check.cache_clear()
    yield
    internals.check.cache_clear()


def test_the_installed_versions_provide_every_reliance() -> None:
    internals.check()


def _no_trigger_event(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(engineio.AsyncServer, "_trigger_event")


def _no_cors_helper(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(engineio.base_server.BaseServer, "_cors_allowed_origins")


def _queue_not_from_server(monkeypatch: pytest.MonkeyPatch) -> None:
    original = AsyncSocket.__init__

    def init(self: Any, server: Any, sid: str) -> None:
        original(self, server, sid)
        self.queue = object()

    monkeypatch.setattr(AsyncSocket, "__init__", init)


def _encode_ignores_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(eio_packet.Packet, "encode", lambda self, b64=False: "4x")


def _sansio_signature_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    class Changed:
        def __init__(self, settings: Any) -> None: ...

    monkeypatch.setattr(internals, "WebSocketsSansIOProtocol", Changed)


def _no_default_headers(monkeypatch: pytest.MonkeyPatch) -> None:
    original = ServerState.__init__

    def init(self: Any) -> None:
        original(self)
        del self.default_headers

    monkeypatch.setattr(ServerState, "__init__", init)


def _no_writable_event(monkeypatch: pytest.MonkeyPatch) -> None:
    cls = websockets_sansio_impl.WebSocketsSansIOProtocol
    original = cls.__init__

    @functools.wraps(original)
    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        del self.writable

    monkeypatch.setattr(cls, "__init__", init)


def _rooms_written_directly(monkeypatch: pytest.MonkeyPatch) -> None:
    """python-socketio's connect filling `rooms` itself, not through basic_enter_room."""

    def pre_connect(self: Any, eio_sid: str, namespace: str) -> str:
        sid = self.server.eio.generate_id()
        rooms = self.rooms.setdefault(namespace, {})
        for room in (None, sid):
            rooms.setdefault(room, bidict())[sid] = eio_sid
        self.pending_connect.setdefault(namespace, []).append(sid)
        return str(sid)

    monkeypatch.setattr(socketio.base_manager.BaseManager, "pre_connect", pre_connect)


def _disconnect_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    """python-socketio's disconnect no longer going through basic_disconnect."""
    forget = socketio.base_manager.BaseManager.basic_disconnect

    async def disconnect(self: Any, sid: str, namespace: str, **kwargs: Any) -> None:
        forget(self, sid, namespace)

    monkeypatch.setattr(socketio.AsyncManager, "disconnect", disconnect)


def _more_to_forget(monkeypatch: pytest.MonkeyPatch) -> None:
    """python-socketio's basic_disconnect forgetting something new about the client."""
    forget = socketio.base_manager.BaseManager.basic_disconnect

    def basic_disconnect(self: Any, sid: str, namespace: str, **kwargs: Any) -> None:
        forget(self, sid, namespace, **kwargs)
        self.__dict__.setdefault("forgotten", []).append(sid)

    monkeypatch.setattr(socketio.base_manager.BaseManager, "basic_disconnect", basic_disconnect)


@pytest.mark.parametrize(
    ("break_it", "named"),
    [
        (_no_trigger_event, "_trigger_event"),
        (_no_cors_helper, "_cors_allowed_origins"),
        (_queue_not_from_server, "create_queue()"),
        (_encode_ignores_cache, "encode_cache"),
        (_sansio_signature_changed, "WebSocketsSansIOProtocol(config, server_state, app_state)"),
        (_no_default_headers, "default_headers"),
        (_no_writable_event, "writable"),
        (_rooms_written_directly, "only through basic_enter_room/basic_leave_room"),
        (_disconnect_elsewhere, "through basic_disconnect(sid, namespace)"),
        (_more_to_forget, "RoomIndexedManager must keep the same state"),
    ],
)
def test_an_upgrade_that_breaks_a_reliance_stops_the_gateway_naming_it(
    monkeypatch: pytest.MonkeyPatch, break_it: Any, named: str
) -> None:
    break_it(monkeypatch)
    with pytest.raises(internals.IncompatibleDependency) as refused:
        internals.check()
    message = str(refused.value)
    assert named in message
    assert "python-engineio" in message and "uvicorn" in message  # the versions installed
    assert "services/gateway/internals.py" in message


async def test_trigger_event_runs_the_handler_and_returns_its_refusal() -> None:
    eio = engineio.AsyncServer(async_mode="asgi")
    seen: list[Any] = []

    @eio.on("connect")
    async def refuse(sid: str, environ: dict[str, Any]) -> bool:
        seen.append((sid, environ["REMOTE_ADDR"]))
        return False

    @eio.on("message")
    async def message(sid: str, data: Any) -> None:
        seen.append((sid, data))

    refused = await internals.trigger_event(
        eio, "connect", "sid1", {"REMOTE_ADDR": "10.0.0.1"}, run_async=False
    )
    await internals.trigger_event(eio, "message", "sid1", "hello", run_async=False)
    assert refused is False
    assert seen == [("sid1", "10.0.0.1"), ("sid1", "hello")]


def test_allowed_origins_follow_the_cors_setting() -> None:
    environ = {"wsgi.url_scheme": "http", "HTTP_HOST": "gw.example:8001"}
    same_origin = engineio.AsyncServer(async_mode="asgi")
    listed = engineio.AsyncServer(async_mode="asgi", cors_allowed_origins=["https://ops.example"])
    anyone = engineio.AsyncServer(async_mode="asgi", cors_allowed_origins="*")
    assert internals.allowed_origins(same_origin, environ) == ["http://gw.example:8001"]
    assert internals.allowed_origins(listed, environ) == ["https://ops.example"]
    assert internals.allowed_origins(anyone, environ) is None


async def test_a_wrapped_request_handler_sees_every_request_of_the_asgi_app() -> None:
    eio = engineio.AsyncServer(async_mode="asgi")
    app = engineio.ASGIApp(eio, engineio_path="ws/events")
    seen: list[str] = []

    def wrap(handle_request: Any) -> Any:
        def noting(scope: Any, receive: Any, send: Any) -> Any:
            seen.append(scope["path"])
            return handle_request(scope, receive, send)

        return noting

    internals.wrap_handle_request(eio, wrap)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        opened = await client.get("/ws/events/", params={"EIO": "4", "transport": "polling"})
    assert opened.status_code == 200 and opened.text.startswith("0{")
    assert seen == ["/ws/events/"]
    parts = internals.socketio_app_parts(app)
    assert parts is not None and parts[0] is eio


async def _manager_with_clients(manager: socketio.AsyncManager, count: int) -> list[str]:
    """`count` clients connected to `manager` (each in the room `fleet` too), as
    python-socketio's server connects them."""
    socketio.AsyncServer(async_mode="asgi", client_manager=manager)
    sids = []
    for n in range(count):
        sid = await manager.connect(f"eio-{n}", "/")
        await manager.enter_room(sid, "/", "fleet")
        sids.append(sid)
    return sids


async def _work_to_disconnect(manager: socketio.AsyncManager, sids: list[str]) -> int:
    with counting_calls() as calls:
        for sid in sids:  # as python-socketio's server does on a client's disconnect
            manager.pre_disconnect(sid, "/")
            await manager.disconnect(sid, "/", ignore_queue=True)
    return calls.count


@pytest.mark.parametrize(
    ("manager_class", "searches_every_room"),
    [(socketio.AsyncManager, True), (internals.RoomIndexedManager, False)],
)
async def test_a_disconnect_looks_only_at_the_clients_own_rooms(
    manager_class: type[socketio.AsyncManager], searches_every_room: bool
) -> None:
    """python-socketio's manager searches every room (one per client) on each disconnect:
    O(N^2) for N clients leaving. The gateway's does the same work whatever N is. (If the
    first case fails, python-socketio fixed it upstream: RoomIndexedManager may go.)"""
    work = {}
    for count in (100, 1000):
        manager = manager_class()
        sids = await _manager_with_clients(manager, count)
        work[count] = await _work_to_disconnect(manager, sids[:20])
        assert len(manager.rooms["/"][None]) == count - 20
        assert len(manager.rooms["/"]["fleet"]) == count - 20
        assert not set(sids[:20]) & set(manager.rooms["/"])
        assert sorted(manager.get_rooms(sids[20], "/")) == sorted([sids[20], "fleet"])
        assert manager.get_rooms(sids[0], "/") == []
    if searches_every_room:
        assert work[1000] > 5 * work[100], work
    else:
        assert work[1000] == work[100], work
