"""The device clients (AsyncDroneClient, AsyncApplicationClient and their blocking forms)
against the product: typed messages, replies, reconnects, and nothing lost while away."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest
from dronecast_client import (
    AlertUpdate,
    AsyncApplicationClient,
    AsyncClient,
    AsyncDroneClient,
    Command,
    Conflict,
    ConnectionLost,
    DroneClient,
    Forbidden,
    NotFound,
    ProcessingResultReceived,
    ProcessingTask,
    TaskStatusUpdate,
    ValidationError,
)
from dronecast_client.models import DeviceMessage
from dronecast_client.simulator import png_image

from tests.fixtures.auth import token
from tests.fixtures.proxy import proxy_to

PICTURE = png_image(40, 30, (120, 60, 200))


async def next_of(
    client: AsyncApplicationClient | AsyncDroneClient, kind: type, timeout: float = 5
) -> DeviceMessage:
    while True:
        message = await client.next_message(timeout)
        if isinstance(message, kind):
            return message


async def test_an_alert_is_answered_commanded_and_completed(product: str) -> None:
    async with (
        AsyncDroneClient(product, "DEV1") as drone,
        AsyncApplicationClient(product, "app1") as app,
    ):
        alert = await drone.raise_alert("intrusion", 0.85, lat=40.7, lng=-74.0, description="x")
        created = await next_of(app, AlertUpdate)
        assert isinstance(created, AlertUpdate) and created.event == "alert.created"
        assert created.data.alert_id == alert.alert_id and alert.status == "pending"
        responded = await app.respond(alert.alert_id, ["capture_image"])
        command = await next_of(drone, Command)
        assert isinstance(command, Command) and command.actions == ["capture_image"]
        completed = await drone.send_image(alert.alert_id, PICTURE)
        async with AsyncClient(product) as api:
            served = await api.download(completed.image_url or "")
    assert responded.status == "responded" and completed.status == "completed"
    assert completed.image_received == 1 and completed.image_url == f"/uploads/{alert.alert_id}.png"
    assert served == PICTURE


async def test_an_image_kept_elsewhere_is_sent_as_its_url(product: str) -> None:
    async with (
        AsyncDroneClient(product, "DEV10") as drone,
        AsyncApplicationClient(product, "app10") as app,
    ):
        alert = await drone.raise_alert("fire", 0.5, lat=0, lng=0)
        await app.respond(alert.alert_id, ["photo"])
        completed = await drone.send_image(alert.alert_id, "https://cdn.example/p/1.jpg")
    assert completed.image_url == "https://cdn.example/p/1.jpg"


async def test_a_refused_message_raises_the_servers_error(product: str) -> None:
    async with (
        AsyncDroneClient(product, "DEV2") as drone,
        AsyncApplicationClient(product, "app2") as app,
    ):
        with pytest.raises(NotFound):
            await drone.send_image("alert_missing", "http://x/a.jpg")
        with pytest.raises(ValidationError) as invalid:
            await drone.raise_alert("meteor", 0.5, lat=0, lng=0)
        assert "alert_type" in invalid.value.detail
        alert = await drone.raise_alert("fire", 0.5, lat=0, lng=0)
        await app.respond(alert.alert_id, ["land"])
        with pytest.raises(Conflict):
            await app.respond(alert.alert_id, ["land"])
        # The socket stays usable after each refusal.
        assert (await drone.raise_alert("fire", 0.6, lat=0, lng=0)).status == "pending"


async def test_a_task_is_acknowledged_processed_and_its_result_reaches_the_application(
    product: str,
) -> None:
    async with (
        AsyncDroneClient(product, "DEV3") as drone,
        AsyncApplicationClient(product, "app3") as app,
    ):
        accepted = await app.create_task("DEV3", "object_detection", {"image_url": "x"}, priority=5)
        assert accepted.task_id.startswith("task_") and accepted.status == "pending"
        assert accepted.task is not None and accepted.deadline_at == accepted.task.deadline_at
        created = datetime.fromisoformat(accepted.task.created_at or "")
        deadline = datetime.fromisoformat(accepted.deadline_at or "")
        assert deadline - created == timedelta(hours=1)  # TASK_DEFAULT_DEADLINE_SECONDS
        task = await next_of(drone, ProcessingTask)
        assert isinstance(task, ProcessingTask) and task.task_id == accepted.task_id
        assert task.task_type == "object_detection" and task.input_data == {"image_url": "x"}
        await drone.report_status(task.task_id, additional_data={"progress": 50})
        status = await next_of(app, TaskStatusUpdate)
        await drone.report_result(task.task_id, {"detections": []}, processing_time=0.2)
        result = await next_of(app, ProcessingResultReceived)
    assert isinstance(status, TaskStatusUpdate) and status.additional_data == {"progress": 50}
    assert (
        isinstance(result, ProcessingResultReceived)
        and result.success
        and result.task_id == task.task_id
    )


async def test_messages_sent_while_cut_off_go_out_in_order_after_the_reconnect(
    product: str,
) -> None:
    async with proxy_to(product) as proxy, AsyncClient(product) as api:
        drone = await AsyncDroneClient(proxy.url, "DEV4", reconnect_delay=0.05).connect()
        try:
            accepted = [await api.create_task("app4", "DEV4", "scan", {"n": n}) for n in range(2)]
            task = await next_of(drone, ProcessingTask)
            await proxy.cut()
            assert not drone.connected or await asyncio.sleep(0.2) is None
            # Sent while the drone has no connection: queued, not lost.
            status = asyncio.create_task(
                drone.report_status(task.task_id, additional_data={"progress": 10})
            )
            result = asyncio.create_task(drone.report_result(task.task_id, {"done": True}))
            await asyncio.sleep(0.3)
            assert not status.done() and not result.done()
            await proxy.restore()
            acks = await asyncio.wait_for(asyncio.gather(status, result), 10)
        finally:
            await drone.close()
        stored = await api.get_result(task.task_id)
    assert [ack["for"] for ack in acks] == ["task_status_update", "processing_result"]
    assert stored.result_data == {"done": True} and task.task_id == accepted[0].task_id


async def test_a_command_for_a_drone_that_is_away_arrives_when_it_is_back(product: str) -> None:
    async with proxy_to(product) as proxy, AsyncApplicationClient(product, "app5") as app:
        drone = await AsyncDroneClient(proxy.url, "DEV5", reconnect_delay=0.05).connect()
        try:
            alert = await drone.raise_alert("fire", 0.9, lat=1, lng=1)
            await proxy.cut()
            await app.respond(alert.alert_id, ["return_to_base"])  # the drone is away
            await proxy.restore()
            command = await next_of(drone, Command, timeout=10)
        finally:
            await drone.close()
    assert isinstance(command, Command) and command.alert_id == alert.alert_id
    assert drone.connections == 2


async def test_an_alert_whose_answer_was_cut_off_is_not_sent_twice(product: str) -> None:
    async with proxy_to(product) as proxy, AsyncClient(product) as api:
        drone = await AsyncDroneClient(proxy.url, "DEV6", reconnect_delay=0.05).connect()
        try:
            proxy.hold_replies()  # the alert reaches the server; its ack never comes back
            raising = asyncio.create_task(drone.raise_alert("fire", 0.9, lat=1, lng=1))
            while (await api.list_alerts(drone_id="DEV6")).total == 0:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
            await proxy.cut()
            with pytest.raises(ConnectionLost):
                await raising
            await proxy.restore()
            await drone.wait_connected(10)
        finally:
            await drone.close()
        assert (await api.list_alerts(drone_id="DEV6")).total == 1


async def test_a_drone_may_connect_only_as_itself(secured_product: str) -> None:
    with pytest.raises(NotFound):  # another drone's existence stays private
        await AsyncDroneClient(
            secured_product, "DEV7", token=token("drone", ["DEV8"], "DEV8")
        ).connect()
    with pytest.raises(Forbidden):
        await AsyncDroneClient(secured_product, "DEV8", token=token("viewer")).connect()
    async with AsyncDroneClient(
        secured_product, "DEV8", token=token("drone", ["DEV8"], "DEV8")
    ) as drone:
        assert (await drone.raise_alert("fire", 0.5, lat=0, lng=0)).drone_id == "DEV8"


async def test_the_blocking_drone_client_has_the_same_methods(product: str) -> None:
    def fly() -> str:
        with DroneClient(product, "DEV9") as drone:
            return drone.raise_alert("environmental", 0.4, lat=1, lng=2).severity or ""

    assert await asyncio.to_thread(fly) == "medium"
