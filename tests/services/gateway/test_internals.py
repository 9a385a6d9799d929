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
from engineio import packet as eio_packet
from engineio.async_socket import AsyncSocket
from uvicorn.protocols.websockets import websockets_sansio_impl
from uvicorn.server import ServerState

from services.gateway import internals


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
