"""docs/messages.md against the running product: every example a client sends is taken (an
`ack` or a `pong`, never an `error`), and every example the server sends has the shape of what
it really sends (the same fields, and the same fields in `data`)."""

from __future__ import annotations

import asyncio
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import socketio
from websockets.asyncio.client import ClientConnection, connect

from shared.events import EventName, PendingEvent
from tests.conftest import make_settings
from tests.fixtures.devices import FAST_PRESENCE
from tests.fixtures.product import served_product
from tests.fixtures.servers import REPO

DOC = REPO / "docs" / "messages.md"
HEADING = re.compile(r"^### `(?P<name>[^`]+)`(?P<ack> ack)? · (?P<sender>\w+) → (?P<receiver>\w+)")
# Ids in the examples, replaced by the real ones of the scenario.
EXAMPLE_ALERT, EXAMPLE_TASK, EXAMPLE_EVENT = (
    "alert_4d3ab1459727480c",
    "task_b670381f6200",
    "1796294818612-0",
)


@dataclass
class Entry:
    name: str
    sender: str
    receiver: str
    ack: bool
    examples: list[dict[str, Any]] = field(default_factory=list)


def entries() -> list[Entry]:
    found: list[Entry] = []
    block: list[str] | None = None
    for line in DOC.read_text().splitlines():
        heading = HEADING.match(line)
        if heading:
            found.append(
                Entry(heading["name"], heading["sender"], heading["receiver"], bool(heading["ack"]))
            )
        elif line.startswith("```json"):
            block = []
        elif line.startswith("```") and block is not None:
            found[-1].examples.append(json.loads("\n".join(block)))
            block = None
        elif block is not None:
            block.append(line)
    return found


def shape(message: Any) -> tuple[frozenset[str], frozenset[str]]:
    """Its fields, and the fields of its `data` when that is an object."""
    data = message.get("data") if isinstance(message, dict) else None
    return frozenset(message), frozenset(data) if isinstance(data, dict) else frozenset()


class Device:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.received: list[dict[str, Any]] = []
        self.replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for frame in self.ws:
            message = orjson.loads(frame)
            self.received.append(message)
            if message["type"] in ("ack", "pong", "error"):
                self.replies.put_nowait(message)

    async def send(self, message: dict[str, Any]) -> dict[str, Any]:
        await self.ws.send(orjson.dumps(message).decode())
        return await asyncio.wait_for(self.replies.get(), 5)

    async def wait_for(self, kind: str) -> dict[str, Any]:
        for _ in range(500):
            matching = [m for m in self.received if m["type"] == kind]
            if matching:
                return matching[-1]
            await asyncio.sleep(0.01)
        raise AssertionError(f"no {kind}: {[m['type'] for m in self.received]}")


def example_of(doc: list[Entry], name: str, sender: str, index: int = 0) -> dict[str, Any]:
    entry = next(e for e in doc if (e.name, e.sender, e.ack) == (name, sender, False))
    return entry.examples[index]


def substituted(example: dict[str, Any], ids: dict[str, str]) -> dict[str, Any]:
    text = json.dumps(example)
    for placeholder, real in ids.items():
        text = text.replace(placeholder, real)
    return dict(json.loads(text))


async def test_the_message_reference_matches_the_product() -> None:
    doc = entries()
    assert len(doc) > 25 and all(entry.examples for entry in doc)
    async with (
        served_product(make_settings(**FAST_PRESENCE)) as product,
        httpx.AsyncClient(base_url=product.url) as http,
    ):
        url = product.url
        sio = socketio.AsyncClient(reconnection=False)
        events: dict[str, list[Any]] = defaultdict(list)
        sio.on("*", lambda name, data=None: events[name].append(data))
        await sio.connect(url, socketio_path="/ws/events", transports=["websocket"])
        sio_acks: list[dict[str, Any]] = []
        # Registered before it connects: going online is then also a `drone.updated`.
        await http.post("/api/v1/drones/register", json={"deviceSerialNumber": "drone_002"})
        await http.post("/api/v1/drones/register", json={"deviceSerialNumber": "drone_001"})
        for subscribe in (example_of(doc, "subscribe", "client", 0),):
            sio_acks.append(await sio.call("subscribe", subscribe, timeout=5))
        ws = url.replace("http://", "ws://")
        drone = Device(await connect(f"{ws}/ws/drone/drone_001?welcome=1"))
        app = Device(await connect(f"{ws}/ws/application/app_001?welcome=1"))
        ids: dict[str, str] = {}

        def example(name: str, sender: str, index: int = 0) -> dict[str, Any]:
            return substituted(example_of(doc, name, sender, index), ids)

        async def responded_alert() -> str:
            ack = await drone.send(example("alert", "drone"))
            ids[EXAMPLE_ALERT] = ack["alert_id"]
            assert (await app.send(example("response", "application")))["type"] == "ack"
            await drone.wait_for("command")
            return str(ack["alert_id"])

        replies: list[tuple[str, dict[str, Any]]] = []
        # Every message a client sends, as the reference shows it.
        await responded_alert()
        for index in range(2):
            await responded_alert()
            replies.append(("image", await drone.send(example("image", "drone", index))))
        replies.append(
            ("processing_task", reply := await app.send(example("processing_task", "application")))
        )
        ids[EXAMPLE_TASK] = reply["task_id"]
        await drone.wait_for("processing_task")
        for name in ("task_status_update", "processing_result", "ping"):
            replies.append((name, await drone.send(example(name, "drone"))))
        await drone.ws.send(json.dumps(example("pong", "drone")))  # no reply
        await app.wait_for("processing_result_received")
        # What the server sends in the other cases: a cancelled task, an error, its ping.
        task = (
            await http.post(
                "/api/v1/processing-tasks",
                json={"app_id": "app_001", "drone_id": "drone_001", "task_type": "scan"},
            )
        ).json()
        await drone.wait_for("processing_task")
        await http.post(f"/api/v1/processing-tasks/{task['task_id']}/cancel")
        await drone.wait_for("task_cancelled")
        replies.append(
            (
                "error",
                await drone.send(
                    {"type": "image", "data": {"alert_id": "alert_missing", "image_url": "x"}}
                ),
            )
        )
        await drone.wait_for("ping")
        # Socket.IO: a resume with snapshots, an unsubscribe, a refusal, a broadcast.
        ids[EXAMPLE_EVENT] = events["drone:event"][0]["id"]
        sio_acks.append(await sio.call("subscribe", example("subscribe", "client", 1), timeout=5))
        sio_acks.append(await sio.call("unsubscribe", example("unsubscribe", "client"), timeout=5))
        sio_acks.append(await sio.call("subscribe", {"droneSerial": "not a serial!"}, timeout=5))
        await product.broker.publish(
            PendingEvent(EventName.SYSTEM_BROADCAST, None, {"message": "hello"})
        )
        await asyncio.sleep(0.3)
        for device in (drone, app):
            await device.ws.close()
        await sio.disconnect()

    for name, reply in replies:
        expected = "error" if name == "error" else "pong" if name == "ping" else "ack"
        assert reply["type"] == expected, (name, reply)
    assert [ack["ok"] for ack in sio_acks] == [True, True, True, False]
    assert sio_acks[1]["recovered"] is True and "snapshots" in sio_acks[1]

    seen: dict[tuple[str, str], list[Any]] = {
        ("drone", "device"): drone.received,
        ("application", "device"): app.received,
    }
    unchecked = []
    for entry in doc:
        if entry.sender != "server":
            continue
        if entry.receiver == "client":
            real = sio_acks if entry.ack else events[entry.name]
        else:
            real = [m for m in seen[(entry.receiver, "device")] if m["type"] == entry.name]
        for documented in entry.examples:
            candidates = [m for m in real if _same_kind(documented, m)]
            if not candidates:
                unchecked.append((entry.name, documented.get("error") or documented.get("for")))
                continue
            assert shape(documented) in {shape(m) for m in candidates}, (
                entry.name,
                documented,
                candidates[-1],
            )
    # Only notices that need a failure to happen (a lost bus, a slow reader) are not checked.
    assert sorted(unchecked, key=str) == [
        ("error", "EventsLost"),
        ("error", "EventsLost"),
        ("error", "SlowConsumer"),
    ]


def _same_kind(documented: dict[str, Any], real: Any) -> bool:
    if not isinstance(real, dict):
        return False
    for key in ("for", "error", "ok"):
        if (
            key in documented
            and documented.get(key) != real.get(key)
            and not (key == "error" and real.get("ok") is False)
        ):
            return False
    if "event" in documented and "event" in real:
        return bool(documented["event"].split(".")[0] == real["event"].split(".")[0])
    return True
