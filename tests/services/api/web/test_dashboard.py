"""The operations dashboard at `/`, in Debian's chromium, against the whole product in one
process (`dronecast dev`): what an operator sees when the fleet changes.

Every page is also checked when its test ends: no console error and no request outside the
product's origin (tests/fixtures/dashboard.py).
"""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Locator, expect

from tests.fixtures.browser import WatchedPage
from tests.fixtures.dashboard import (
    MODULE_LOOP,
    OpenPage,
    Product,
    post_alert,
    register,
    send_anomaly,
)
from tests.fixtures.devices import DeviceClient

pytestmark = MODULE_LOOP


def row(page: WatchedPage, serial: str) -> Locator:
    return page.page.locator(f'#drone-table tr[data-serial="{serial}"]')


def card(page: WatchedPage, alert_id: str) -> Locator:
    return page.page.locator(f'#alert-feed li.card[data-alert-id="{alert_id}"]')


async def raise_alert(drone: DeviceClient, **fields: object) -> str:
    """The drone raises an alert over its WebSocket (seed 000's message); its alert_id."""
    data = {"alert_type": "intrusion", "score": 0.5, "location": {"lat": 1.0, "lng": 2.0}}
    await drone.send({"type": "alert", "data": {**data, "drone_id": drone.device_id, **fields}})
    (ack,) = await drone.wait_for("ack")
    alert_id: str = ack["alert_id"]
    return alert_id


def task_in(page: WatchedPage, column: str, task_id: str) -> Locator:
    return page.page.locator(
        f'#task-board .column[data-column="{column}"] li[data-task-id="{task_id}"]'
    )


async def test_a_drone_registered_over_rest_appears_within_a_second_without_a_reload(
    product: Product, page: WatchedPage
) -> None:
    await page.page.evaluate("window.sameDocument = true")

    await register(product.http, "DASH-REG-1", deviceName="Fresh", deviceCategory="Survey")

    await row(page, "DASH-REG-1").wait_for(timeout=1000)
    await expect(row(page, "DASH-REG-1").locator("td.name")).to_have_text("Fresh")
    await expect(row(page, "DASH-REG-1").locator("td.category")).to_have_text("Survey")
    assert await page.page.evaluate("window.sameDocument") is True, "the page was reloaded"


async def test_a_patch_updates_its_row_in_place(product: Product, page: WatchedPage) -> None:
    await register(product.http, "DASH-PATCH-1", deviceName="Before")
    await row(page, "DASH-PATCH-1").wait_for()
    element = await row(page, "DASH-PATCH-1").element_handle()

    response = await product.http.patch(
        "/api/v1/drones/sn/DASH-PATCH-1",
        json={"deviceName": "After", "streamIsOn": True, "detectionClasses": [0, 2, 5]},
    )
    assert response.status_code == 200

    updated = row(page, "DASH-PATCH-1")
    await expect(updated.locator("td.name")).to_have_text("After")
    await expect(updated.locator("td.stream .flag")).to_have_text("on")
    await expect(updated.locator("td.classes")).to_have_text("0, 2, 5")
    await expect(updated.locator("td.ai .flag")).to_have_text("off")
    assert element is not None and await element.evaluate("row => row.isConnected"), (
        "the row was replaced instead of updated"
    )


async def test_an_alert_raised_over_the_drone_websocket_appears_in_the_feed(
    product: Product, page: WatchedPage
) -> None:
    drone = await DeviceClient(product.url, "drone", "DASH-ALERT-1").connect()
    try:
        alert_id = await raise_alert(
            drone,
            alert_type="fire",
            score=0.95,
            location={"lat": 48.8566, "lng": 2.3522},
            description="Smoke over the east field",
        )

        feed_card = card(page, alert_id)
        await expect(feed_card).to_be_visible()
        await expect(feed_card).to_have_attribute("data-severity", "critical")
        await expect(feed_card).to_have_attribute("data-stage", "raised")
        await expect(feed_card.locator(".what")).to_have_text("fire")
        await expect(feed_card.locator(".serial-link")).to_have_text("DASH-ALERT-1")
        await expect(feed_card.locator(".body").first).to_contain_text("Smoke over the east field")
    finally:
        await drone.close()


async def test_a_task_moves_across_the_board(product: Product, page: WatchedPage) -> None:
    response = await product.http.post(
        "/api/processing-tasks",
        json={
            "app_id": "dash-app",
            "drone_id": "DASH-TASK-1",
            "task_type": "detect",
            "priority": 5,
        },
    )
    assert response.status_code == 201, response.text
    task_id = response.json()["task_id"]
    # The drone is not connected: the task waits.
    await expect(task_in(page, "queued", task_id)).to_be_visible()
    await expect(task_in(page, "queued", task_id).locator(".prio")).to_have_text("P5")

    drone = await DeviceClient(product.url, "drone", "DASH-TASK-1").connect()
    try:
        (dispatched,) = await drone.wait_for("processing_task")
        assert dispatched["task_id"] == task_id
        await expect(task_in(page, "dispatched", task_id)).to_be_visible()

        await drone.send(
            {"type": "task_status_update", "data": {"task_id": task_id, "status": "processing"}}
        )
        await expect(task_in(page, "running", task_id)).to_be_visible()

        await drone.send(
            {
                "type": "processing_result",
                "data": {"task_id": task_id, "result_data": {"objects": 3}, "success": True},
            }
        )
        await expect(task_in(page, "done", task_id)).to_be_visible()
        await expect(page.page.locator(f'#task-board li[data-task-id="{task_id}"]')).to_have_count(
            1
        )
    finally:
        await drone.close()


async def test_a_failed_task_shows_its_reason(product: Product, page: WatchedPage) -> None:
    response = await product.http.post(
        "/api/processing-tasks",
        json={"app_id": "dash-app", "drone_id": "DASH-TASK-2", "task_type": "map", "priority": 2},
    )
    task_id = response.json()["task_id"]
    drone = await DeviceClient(product.url, "drone", "DASH-TASK-2").connect()
    try:
        await drone.wait_for("processing_task")
        await drone.send(
            {
                "type": "processing_result",
                "data": {
                    "task_id": task_id,
                    "result_data": {},
                    "success": False,
                    "error_message": "camera obstructed",
                },
            }
        )
        failed = task_in(page, "failed", task_id)
        await expect(failed).to_be_visible()
        await expect(failed.locator(".reason")).to_have_text("camera obstructed")
    finally:
        await drone.close()


async def test_an_anomaly_is_marked_on_the_drones_sparkline(
    product: Product, page: WatchedPage
) -> None:
    await register(product.http, "DASH-TEL-1")
    await row(page, "DASH-TEL-1").click()
    drawer = page.page.locator('#drawer[data-serial="DASH-TEL-1"]')
    await expect(drawer).to_be_visible()

    flagged = await send_anomaly(product.http, "DASH-TEL-1", "temp-a")

    sparkline = drawer.locator('.sparkline[data-sensor-id="temp-a"]')
    marks = sparkline.locator("circle.anomaly-mark")
    await expect(marks).to_have_count(1)
    await expect(marks.locator("title")).to_have_text(flagged["message"] or "96.0 celsius")
    # The steady history around it is drawn too, and the anomaly reached the feed.
    await expect(sparkline.locator("polyline")).to_have_attribute(
        "points", re.compile(r"(\S+ ){50}")
    )
    await expect(
        page.page.locator(f'#alert-feed li.card[data-anomaly-id="{flagged["id"]}"]')
    ).to_be_visible()


async def test_an_edit_in_the_drawer_goes_through_rest_and_comes_back_as_an_event(
    product: Product, page: WatchedPage
) -> None:
    await register(product.http, "DASH-EDIT-1", deviceName="Old name")
    await row(page, "DASH-EDIT-1").click()
    form = page.page.locator("#drone-form")
    await expect(form.locator('input[name="deviceName"]')).to_have_value("Old name")

    await form.locator('input[name="deviceName"]').fill("New name")
    await form.locator('input[name="aiDetectionEnabled"]').check()
    await form.locator('input[name="detectionClasses"]').fill("1, 7")
    await form.locator('button[type="submit"]').click()

    await expect(form.locator(".form-status")).to_contain_text("Applied: event")
    await expect(row(page, "DASH-EDIT-1").locator("td.name")).to_have_text("New name")
    await expect(row(page, "DASH-EDIT-1").locator("td.ai .flag")).to_have_text("on")
    stored = (await product.http.get("/api/v1/drones/sn/DASH-EDIT-1")).json()
    assert (stored["deviceName"], stored["aiDetectionEnabled"], stored["detectionClasses"]) == (
        "New name",
        True,
        [1, 7],
    )
    recent = page.page.locator("#drawer .recent li")
    await expect(recent.first).to_contain_text("drone.")


async def test_an_alert_answered_from_the_feed_goes_to_the_drone_and_shows_its_image(
    product: Product, page: WatchedPage
) -> None:
    drone = await DeviceClient(product.url, "drone", "DASH-RESP-1").connect()
    try:
        alert_id = await raise_alert(drone)
        feed_card = card(page, alert_id)
        await feed_card.locator("button.respond").click()
        dialog = page.page.locator("#respond-dialog")
        await dialog.locator('input[name="actions"]').fill("hover, take_photo")
        await dialog.locator('button[type="submit"]').click()

        (command,) = await drone.wait_for("command")
        assert command["actions"] == ["hover", "take_photo"]
        await expect(feed_card).to_have_attribute("data-stage", "command")
        await expect(feed_card.locator(".actions")).to_have_text("actions: hover, take_photo")
        await expect(feed_card.locator("button.respond")).to_be_hidden()

        image_url = f"{product.url}/static/dashboard/favicon.svg"
        await drone.send({"type": "image", "data": {"alert_id": alert_id, "image_url": image_url}})
        await expect(feed_card).to_have_attribute("data-stage", "completed")
        await expect(feed_card.locator("img.evidence")).to_have_attribute("src", image_url)
    finally:
        await drone.close()


async def test_an_image_on_another_site_is_a_link_not_a_request(
    product: Product, page: WatchedPage
) -> None:
    alert = await post_alert(product.http, "DASH-IMG-1")
    await product.http.put(f"/api/v1/alerts/{alert['alert_id']}/response", json={"actions": ["x"]})
    await product.http.put(
        f"/api/v1/alerts/{alert['alert_id']}/image",
        json={"image_url": "https://images.example.com/a.jpg"},
    )
    feed_card = card(page, alert["alert_id"])
    await expect(feed_card.locator("a.image-link")).to_have_attribute(
        "href", "https://images.example.com/a.jpg"
    )
    await expect(feed_card.locator("img")).to_have_count(0)


async def test_the_event_log_filters_by_kind_and_serial_and_pauses(
    product: Product, page: WatchedPage
) -> None:
    log = page.page.locator("#event-log")
    await register(product.http, "DASH-LOG-1")
    await register(product.http, "DASH-LOG-2")
    await expect(log.locator('li[data-serial="DASH-LOG-2"]')).to_have_count(1)

    await page.page.fill("#log-serial", "DASH-LOG-1")
    await expect(log.locator('li[data-serial="DASH-LOG-2"]')).to_have_count(0)
    serials = await log.locator("li").evaluate_all("rows => rows.map(r => r.dataset.serial)")
    assert set(serials) == {"DASH-LOG-1"}
    await page.page.fill("#log-serial", "")
    await page.page.uncheck('#log-kinds input[value="drone"]')
    await expect(log.locator('li[data-kind="drone"]')).to_have_count(0)
    await page.page.check('#log-kinds input[value="drone"]')
    await expect(log.locator('li[data-serial="DASH-LOG-2"]')).to_have_count(1)

    await page.page.click("#log-pause")
    before = await log.locator("li").count()
    await register(product.http, "DASH-LOG-3")
    await expect(page.page.locator("#log-pause")).to_have_text("Resume (1 new)")
    assert await log.locator('li[data-serial="DASH-LOG-3"]').count() == 0
    assert await log.locator("li").count() == before
    await page.page.click("#log-pause")
    await expect(log.locator('li[data-serial="DASH-LOG-3"]')).to_have_count(1)


async def test_the_state_that_exists_is_there_when_the_page_opens(
    product: Product, open_page: OpenPage
) -> None:
    await register(product.http, "DASH-OLD-1", deviceName="Was here")
    alert = await post_alert(product.http, "DASH-OLD-1", alert_type="accident", score=0.75)
    task = (
        await product.http.post(
            "/api/processing-tasks",
            json={"app_id": "dash-app", "drone_id": "DASH-OLD-9", "task_type": "scan"},
        )
    ).json()

    page = await open_page(f"{product.url}/")

    await expect(row(page, "DASH-OLD-1").locator("td.name")).to_have_text("Was here")
    await expect(card(page, alert["alert_id"])).to_have_attribute("data-severity", "high")
    await expect(task_in(page, "queued", task["task_id"])).to_be_visible()
    drones = (await product.http.get("/api/v1/drones", params={"limit": 1})).json()["total"]
    online = sum(
        drone["online"]
        for drone in (await product.http.get("/api/v1/drones", params={"limit": 500})).json()[
            "drones"
        ]
    )
    await expect(page.page.locator('.kpi[data-kpi="drones"] .value')).to_have_text(
        f"{online} / {drones}"
    )


@pytest.mark.parametrize(
    ("path", "ready"),
    [
        ("/docs", ".swagger-ui .info .title"),
        ("/redoc", "text=DroneCast API"),
        ("/api/v1/graphql", ".graphiql-container .graphiql-query-editor"),
    ],
)
async def test_the_api_docs_load_offline(
    product: Product, open_page: OpenPage, path: str, ready: str
) -> None:
    page = await open_page(f"{product.url}{path}", wait_live=False)
    await page.page.wait_for_selector(ready)
    # The pages' own assets, all from the product (the fixture checks nothing else was asked).
    assert any("/static/vendor/" in url for url in page.requests)


async def test_graphiql_runs_a_seed_query(product: Product, open_page: OpenPage) -> None:
    await send_anomaly(product.http, "DASH-GQL-1", "temp-g")
    page = await open_page(f"{product.url}/api/v1/graphql", wait_live=False)
    await page.page.locator(".graphiql-execute-button").click()
    await expect(page.page.locator(".graphiql-response")).to_contain_text("DASH-GQL-1")


async def test_a_drones_drawer_opens_from_the_keyboard(product: Product, page: WatchedPage) -> None:
    await register(product.http, "DASH-KEY-1")
    await row(page, "DASH-KEY-1").focus()
    await page.page.keyboard.press("Enter")
    await expect(page.page.locator('#drawer[data-serial="DASH-KEY-1"]')).to_be_visible()
    await page.page.keyboard.press("Escape")
    await expect(page.page.locator("#drawer")).to_be_hidden()
