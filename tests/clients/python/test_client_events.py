"""The events client (dronecast_client.AsyncEventsClient / EventsClient) against the product."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from dronecast_client import (
    AsyncClient,
    AsyncEventsClient,
    DroneEvent,
    Event,
    EventsClient,
    EventsLost,
    Forbidden,
    Resumed,
    Snapshot,
    Unauthorized,
)
from dronecast_client.models import StreamItem

from tests.fixtures.auth import token
from tests.fixtures.proxy import proxy_to


async def take(events: AsyncEventsClient, count: int, timeout: float = 5) -> list[StreamItem]:
    return [await events.next_event(timeout) for _ in range(count)]


async def events_until(
    events: AsyncEventsClient, done: Any, timeout: float = 10
) -> list[StreamItem]:
    """Items until `done(items)` says enough."""
    items: list[StreamItem] = []
    while not done(items):
        items.append(await events.next_event(timeout))
    return items


async def test_subscribed_to_all_it_gets_typed_drone_events_in_order(product: str) -> None:
    async with AsyncEventsClient(product) as events, AsyncClient(product) as api:
        await events.subscribe(all=True)
        await api.register_drone("EV1")
        await api.update_drone("EV1", stream_is_on=True)
        created, updated, stream = await take(events, 3)
    assert isinstance(created, DroneEvent) and created.event == "drone.created"
    assert created.full is not None and created.full["deviceSerialNumber"] == "EV1"
    assert isinstance(updated, DroneEvent) and updated.changes["streamIsOn"] == {
        "old": False,
        "new": True,
    }
    assert isinstance(stream, DroneEvent) and stream.event == "drone.stream.status"
    assert created.id < updated.id < stream.id and events.last_event_id == stream.id


async def test_a_snapshot_comes_first_when_asked_for(product: str) -> None:
    async with AsyncClient(product) as api, AsyncEventsClient(product) as events:
        await api.register_drone("EV2", name="Before")
        await events.subscribe(serials=["EV2"], snapshot=True)
        snapshot = await events.next_event(5)
    assert isinstance(snapshot, Snapshot) and snapshot.serial == "EV2"
    assert snapshot.state is not None and snapshot.state["deviceName"] == "Before"


async def test_after_a_network_cut_it_resumes_and_gets_what_it_missed_once(product: str) -> None:
    async with proxy_to(product) as proxy, AsyncClient(product) as api:
        events = await AsyncEventsClient(proxy.url, reconnect_delay=0.05).connect()
        try:
            await events.subscribe(serials=["EV3"])
            await api.register_drone("EV3")
            (created,) = await take(events, 1)
            await proxy.cut()
            for name in ("one", "two", "three"):
                await api.update_drone("EV3", name=name)  # while it is cut off
            await proxy.restore()
            # The missed events come first, then `Resumed` saying how many were replayed.
            items = await events_until(events, lambda got: any(isinstance(i, Resumed) for i in got))
            with pytest.raises(TimeoutError):
                await events.next_event(0.5)  # and nothing twice
        finally:
            await events.close()
    resumed = [i for i in items if isinstance(i, Resumed)]
    assert items[-1] is resumed[-1]
    names = [i.changes["deviceName"]["new"] for i in items if isinstance(i, Event)]
    assert names == ["one", "two", "three"]
    assert len(resumed) == 1 and resumed[0].replayed == 3 and resumed[0].after == created.id


async def test_a_cut_before_any_event_still_loses_nothing(product: str) -> None:
    """It resumes from where its subscription began, not from 'now'."""
    async with proxy_to(product) as proxy, AsyncClient(product) as api:
        events = await AsyncEventsClient(proxy.url, reconnect_delay=0.05).connect()
        try:
            await events.subscribe(all=True)
            await proxy.cut()
            await api.register_drone("EV4")
            await proxy.restore()
            items = await events_until(events, lambda got: any(isinstance(i, Event) for i in got))
        finally:
            await events.close()
    assert [i.event for i in items if isinstance(i, Event)] == ["drone.created"]


async def test_a_resume_outside_the_replay_window_says_events_were_lost(product: str) -> None:
    async with AsyncClient(product) as api, AsyncEventsClient(product) as events:
        await api.register_drone("EV5")
        ack = await events.subscribe(all=True, last_event_id="1-0")  # long gone
        (lost,) = await take(events, 1)
    assert ack["recovered"] is False
    assert isinstance(lost, EventsLost) and lost.after == "1-0"


async def test_a_token_limited_to_one_drone_may_not_subscribe_to_another(
    secured_product: str,
) -> None:
    detector = token("detector", ["EV6"])
    async with AsyncEventsClient(secured_product, token=detector) as events:
        with pytest.raises(Forbidden):
            await events.subscribe(serials=["EV7"])
        ack = await events.subscribe(all=True)  # all of *its* drones
    assert ack["droneSerials"] == ["EV6"]
    with pytest.raises(Unauthorized):
        await AsyncEventsClient(secured_product).connect()


async def test_the_blocking_events_client_iterates_in_a_thread(product: str) -> None:
    def watch() -> list[str]:
        with EventsClient(product) as events:
            events.subscribe(serials=["EV8"])
            ready.set()
            return [
                item.event
                for item, _ in zip(events, range(2), strict=False)
                if isinstance(item, Event)
            ]

    ready = __import__("threading").Event()
    watcher = asyncio.create_task(asyncio.to_thread(watch))
    await asyncio.to_thread(ready.wait, 5)
    async with AsyncClient(product) as api:
        await api.register_drone("EV8")
        await api.update_drone("EV8", ai_detection_enabled=True)
    assert await asyncio.wait_for(watcher, 10) == ["drone.created", "drone.updated"]
