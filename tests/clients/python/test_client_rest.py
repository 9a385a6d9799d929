"""The REST client (dronecast_client.AsyncClient / Client) against the running product."""

from __future__ import annotations

import asyncio
import time

import pytest
from dronecast_client import (
    AsyncClient,
    Client,
    Conflict,
    Forbidden,
    NotFound,
    TransportError,
    Unauthorized,
    UnsupportedMediaType,
    ValidationError,
)
from dronecast_client.simulator import png_image

from tests.fixtures.auth import token
from tests.fixtures.redis_server import free_port


async def test_a_drone_is_registered_changed_and_deleted(product: str) -> None:
    async with AsyncClient(product) as api:
        drone = await api.register_drone("SDK1", name="Scout", detection_classes=[0, 2])
        assert (drone.serial, drone.device_name, drone.detection_classes) == (
            "SDK1",
            "Scout",
            [0, 2],
        )
        changed = await api.update_drone("SDK1", stream_is_on=True)
        assert changed.stream_is_on is True
        assert (await api.get_drone(drone.id)).stream_is_on is True
        page = await api.list_drones()
        assert [d.serial for d in page.items] == ["SDK1"] and page.total == 1
        await api.delete_drone(drone.id)
        with pytest.raises(NotFound):
            await api.get_drone_by_serial("SDK1")


async def test_the_apis_errors_are_raised_as_their_exception_with_detail(product: str) -> None:
    async with AsyncClient(product) as api:
        await api.register_drone("SDK2")
        with pytest.raises(Conflict) as taken:
            await api.register_drone("SDK2")
        assert taken.value.status_code == 409 and "SDK2" in taken.value.detail
        with pytest.raises(ValidationError) as invalid:
            await api.register_drone("not a serial!")
        assert invalid.value.status_code == 422 and invalid.value.error == "ValidationError"
        with pytest.raises(NotFound):
            await api.get_alert("alert_missing")


async def test_an_alert_is_responded_to_and_completed_with_its_picture(product: str) -> None:
    async with AsyncClient(product) as api:
        alert = await api.create_alert(
            "SDK3", "fire", 0.95, lat=40.7, lng=-74.0, description="smoke"
        )
        assert (alert.status, alert.severity) == ("pending", "critical")
        responded = await api.respond_to_alert(alert.alert_id, ["hold_position"])
        assert (responded.status, responded.actions) == ("responded", ["hold_position"])
        with pytest.raises(Conflict):
            await api.respond_to_alert(alert.alert_id, ["again"])
        with pytest.raises(UnsupportedMediaType):
            await api.upload_alert_image(alert.alert_id, b"not a picture", content_type="image/png")
        picture = png_image(8, 8, (0, 0, 255))
        completed = await api.upload_alert_image(alert.alert_id, picture)
        assert completed.status == "completed"
        assert await api.download(completed.image_url or "") == picture
        listed = await api.list_alerts(status="completed", drone_id="SDK3")
        assert [a.alert_id for a in listed.items] == [alert.alert_id]


async def test_a_task_is_created_listed_as_pending_and_cancelled(product: str) -> None:
    async with AsyncClient(product) as api:
        task = await api.create_task(
            "app1", "SDK4", "image_analysis", {"image_url": "x"}, priority=4
        )
        assert (task.status, task.priority, task.app_id) == ("pending", 4, "app1")
        assert [t.task_id for t in await api.pending_tasks("SDK4")] == [task.task_id]
        cancelled = await api.cancel_task(task.task_id)
        assert cancelled.status == "cancelled" and cancelled.final
        with pytest.raises(NotFound):
            await api.get_result(task.task_id)


async def test_readings_are_stored_in_a_batch_and_listed(product: str) -> None:
    async with AsyncClient(product) as api:
        readings = [
            {"sensor_id": "SDK5.battery", "sensor_type": "battery", "value": 90.0 - i,
             "unit": "percent", "drone_serial": "SDK5"}
            for i in range(3)
        ]  # fmt: skip
        accepted = await api.send_readings(readings)
        assert [r.sensor_id for r in accepted] == ["SDK5.battery"] * 3
        assert len({r.id for r in accepted}) == 3 and {r.status for r in accepted} == {"accepted"}
        deadline = time.monotonic() + 10  # the verdict follows the durable accept
        while (page := await api.list_readings(drone_serial="SDK5")).total < 3:
            assert time.monotonic() < deadline, page
            await asyncio.sleep(0.05)
        assert sorted(r.value for r in page.items) == [88.0, 89.0, 90.0]
        assert not any(r.is_anomaly for r in page.items)
        assert {r.id for r in page.items} == {r.id for r in accepted}
        assert (await api.monitoring_stats())["sensor_data_total"] == 3


async def test_the_blocking_client_has_the_same_methods(product: str) -> None:
    def use_it() -> tuple[str, int]:
        with Client(product) as api:
            drone = api.register_drone("SDK6", name="Blocking")
            return drone.serial, api.list_drones().total or 0

    assert await asyncio.to_thread(use_it) == ("SDK6", 1)


async def test_no_token_is_unauthorized_and_another_drones_is_forbidden(
    secured_product: str,
) -> None:
    async with AsyncClient(secured_product) as anonymous:
        with pytest.raises(Unauthorized):
            await anonymous.list_drones()
    async with AsyncClient(secured_product, token=token("admin")) as admin:
        await admin.register_drone("SDK7")
    async with AsyncClient(secured_product, token=token("drone", ["SDK8"], "SDK8")) as drone:
        with pytest.raises(NotFound):  # another drone's existence stays private
            await drone.get_drone_by_serial("SDK7")
        with pytest.raises(Forbidden):
            await drone.register_drone("SDK8")


async def test_an_unreachable_server_is_a_transport_error() -> None:
    async with AsyncClient(f"http://127.0.0.1:{free_port()}", timeout=2) as api:
        with pytest.raises(TransportError):
            await api.health()


class DropsFirstConnection:
    """A real HTTP server on a socket that reads the first request and closes the connection
    without an answer (as a server does with a kept-alive connection it times out just as the
    client reuses it); every later connection gets `202 []`."""

    def __init__(self) -> None:
        self.requests = 0
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            (int(line.split(b":")[1]) for line in head.split(b"\r\n")
             if line.lower().startswith(b"content-length:")),
            0,
        )  # fmt: skip
        await reader.readexactly(length)
        self.requests += 1
        if self.requests > 1:
            writer.write(
                b"HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\n"
                b"content-length: 2\r\nconnection: close\r\n\r\n[]"
            )
            await writer.drain()
        writer.close()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


READING = {"sensor_id": "t1", "sensor_type": "temperature", "value": 20.5}


async def test_readings_with_timestamps_are_sent_again_when_the_connection_broke() -> None:
    server = DropsFirstConnection()
    async with server as url, AsyncClient(url) as api:
        assert await api.send_readings([{**READING, "timestamp": "2026-12-03T10:00:00Z"}]) == []
    assert server.requests == 2


async def test_readings_without_timestamps_are_not_sent_twice() -> None:
    """Without timestamps the server would store them twice: the client says so instead."""
    server = DropsFirstConnection()
    async with server as url, AsyncClient(url) as api:
        with pytest.raises(TransportError, match="POST /api/v1/sensors/data"):
            await api.send_readings([READING])
    assert server.requests == 1
