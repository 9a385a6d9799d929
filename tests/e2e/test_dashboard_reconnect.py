"""The dashboard when the gateway behind it dies: the api and the gateway are separate processes
on a real Redis (the gateway on its own origin, as `PUBLIC_EVENTS_URL` tells the page). The
gateway is killed, the fleet changes meanwhile, and another gateway process takes its place: the
page says "reconnecting", then "resumed", and shows every event, none missing, none twice."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
import redis.asyncio as redis
from playwright.async_api import Browser, expect

from shared.channels import EVENT_STREAM
from tests.e2e.conftest import service_env
from tests.fixtures.browser import chromium, new_page
from tests.fixtures.dashboard import LIVE, LOADED
from tests.fixtures.servers import ServiceProcess

pytestmark = pytest.mark.e2e

CHANGES_WHILE_AWAY = 6


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


async def stream_ids_after(redis_url: str, after: str) -> list[str]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        entries = await client.xrange(EVENT_STREAM, min=f"({after}" if after else "-")
    finally:
        await client.aclose()
    return [entry_id for entry_id, _ in entries]


async def test_a_gateway_replaced_under_the_page_resumes_it_with_no_event_missing(
    redis_url: str, browser: Browser
) -> None:
    env = service_env(redis_url)
    gateway = ServiceProcess("gateway", env)
    api = ServiceProcess("api", {**env, "PUBLIC_EVENTS_URL": gateway.url})
    gateway.env["CORS_ORIGINS"] = json.dumps([api.url])
    api.start(wait_ready=False)
    gateway.start()
    api.wait_ready()
    replacement: ServiceProcess | None = None
    before = await stream_ids_after(redis_url, "")
    page = await new_page(browser)
    try:
        async with httpx.AsyncClient(base_url=api.url) as http:
            await page.page.goto(f"{api.url}/")
            await page.page.wait_for_selector(LIVE)
            await page.page.wait_for_selector(LOADED)
            register = {"deviceSerialNumber": "RECON-1", "deviceName": "name-0"}
            assert (await http.post("/api/v1/drones/register", json=register)).status_code == 201
            row = page.page.locator('#drone-table tr[data-serial="RECON-1"]')
            await expect(row.locator("td.name")).to_have_text("name-0")

            gateway.kill()
            await expect(page.page.locator("#connection")).to_have_attribute(
                "data-state", "reconnecting"
            )
            await page.screenshot("dashboard-reconnecting")
            for n in range(1, CHANGES_WHILE_AWAY + 1):
                response = await http.patch(
                    "/api/v1/drones/sn/RECON-1", json={"deviceName": f"name-{n}"}
                )
                assert response.status_code == 200
            # The page cannot know yet.
            await expect(row.locator("td.name")).to_have_text("name-0")

            replacement = ServiceProcess("gateway", gateway.env, port=gateway.port).start()
            connection = page.page.locator("#connection")
            await expect(connection).to_have_attribute("data-state", "resumed", timeout=20_000)
            await expect(connection.locator(".detail")).to_contain_text(
                f"{CHANGES_WHILE_AWAY} missed events replayed"
            )
            await expect(row.locator("td.name")).to_have_text(f"name-{CHANGES_WHILE_AWAY}")
            await page.screenshot("dashboard-resumed")

            published = await stream_ids_after(redis_url, before[-1] if before else "")
            shown = await page.page.locator("#event-log li").evaluate_all(
                "rows => rows.map(row => row.dataset.eventId)"
            )
            assert sorted(shown) == sorted(published), "the page's log is not what was published"
            assert len(set(shown)) == len(shown), "an event was shown twice"
            names = await page.page.locator(
                '#event-log li[data-serial="RECON-1"] .d'
            ).all_text_contents()
            assert [
                f"deviceName: name-{n - 1} → name-{n}" for n in range(CHANGES_WHILE_AWAY, 0, -1)
            ] == [name for name in names if name.startswith("deviceName")]
        # Chromium itself reports each attempt to reach the killed gateway; the page logs nothing.
        page.expect_console_errors(r"ERR_CONNECTION_REFUSED")
        page.assert_clean(api.url, gateway.url)
    finally:
        await page.page.context.close()
        for process in (replacement, gateway, api):
            if process is not None:
                process.stop()
