"""The dashboard with authentication on: it asks for a token, keeps it for the tab, shows only
what the token's role and drones allow, and says plainly when a token expired or was refused."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from playwright.async_api import expect

from shared.auth import ROLE_ACTIONS, Role
from tests.conftest import make_settings
from tests.fixtures.auth import SECRET, bearer, token
from tests.fixtures.browser import WatchedPage
from tests.fixtures.dashboard import (
    LIVE,
    LOADED,
    MODULE_LOOP,
    OpenPage,
    Product,
    post_alert,
    run_product,
)

pytestmark = MODULE_LOOP

PROMPT = "#token-dialog[open]"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def product() -> AsyncIterator[Product]:
    async for running in run_product(make_settings(auth_enabled=True, secret_key=SECRET)):
        running.http.headers.update(bearer("admin"))
        for serial in ("AUTH-1", "AUTH-2"):
            response = await running.http.post(
                "/api/v1/drones/register", json={"deviceSerialNumber": serial}
            )
            assert response.status_code == 201, response.text
        await post_alert(running.http, "AUTH-1", alert_type="intrusion", score=0.8)
        yield running


async def sign_in(page: WatchedPage, bearer_token: str) -> None:
    await page.page.wait_for_selector(PROMPT)
    await page.page.fill("#token-dialog textarea", bearer_token)
    await page.page.click('#token-dialog button[type="submit"]')


async def signed_in(open_page: OpenPage, product: Product, bearer_token: str) -> WatchedPage:
    page = await open_page(f"{product.url}/", wait_live=False)
    await sign_in(page, bearer_token)
    await page.page.wait_for_selector(LIVE)
    await page.page.wait_for_selector(LOADED)
    return page


async def test_it_asks_for_a_token_and_keeps_it_for_the_tab(
    product: Product, open_page: OpenPage
) -> None:
    page = await open_page(f"{product.url}/", wait_live=False)
    await expect(page.page.locator(PROMPT)).to_be_visible()
    await expect(page.page.locator("#drone-table tbody tr[data-serial]")).to_have_count(0)

    admin = token("admin", sub="ops-lead")
    await sign_in(page, admin)
    await expect(page.page.locator('#drone-table tr[data-serial="AUTH-2"]')).to_be_visible()
    await expect(page.page.locator("#identity .who")).to_have_text("admin · ops-lead · all drones")
    assert await page.page.evaluate("sessionStorage.getItem('dronecast.token')") == admin

    await page.page.reload()
    await page.page.wait_for_selector(LIVE)
    await expect(page.page.locator(PROMPT)).to_have_count(0)
    await expect(page.page.locator('#drone-table tr[data-serial="AUTH-2"]')).to_be_visible()


async def test_a_viewer_is_not_offered_what_it_may_not_do(
    product: Product, open_page: OpenPage
) -> None:
    assert not ROLE_ACTIONS[Role.VIEWER] & {"manage_drones", "respond", "manage_tasks"}
    page = await signed_in(open_page, product, token("viewer"))

    await expect(page.page.locator("#register-drone")).to_be_hidden()
    pending = page.page.locator('#alert-feed li.card[data-stage="raised"]').first
    await expect(pending).to_be_visible()
    await expect(pending.locator("button.respond")).to_be_hidden()
    await page.page.click('#drone-table tr[data-serial="AUTH-1"]')
    await expect(page.page.locator('#drone-form input[name="deviceName"]')).to_be_disabled()
    await expect(page.page.locator("#drone-form .form-actions")).to_be_hidden()


async def test_an_operator_is_offered_its_actions(product: Product, open_page: OpenPage) -> None:
    page = await signed_in(open_page, product, token("operator"))

    await expect(page.page.locator("#register-drone")).to_be_visible()
    pending = page.page.locator('#alert-feed li.card[data-stage="raised"]').first
    await expect(pending.locator("button.respond")).to_be_visible()
    await page.page.click('#drone-table tr[data-serial="AUTH-1"]')
    await expect(page.page.locator('#drone-form input[name="deviceName"]')).to_be_enabled()


async def test_a_token_for_some_drones_shows_only_those(
    product: Product, open_page: OpenPage
) -> None:
    page = await signed_in(open_page, product, token("operator", drones=["AUTH-2"]))

    await expect(page.page.locator('#drone-table tr[data-serial="AUTH-2"]')).to_be_visible()
    await expect(page.page.locator("#drone-table tbody tr[data-serial]")).to_have_count(1)
    await expect(page.page.locator("#identity .who")).to_have_text("operator · operator · 1 drone")
    # AUTH-1's alert is not this token's business.
    await expect(page.page.locator("#alert-feed li.card")).to_have_count(0)


async def test_an_expired_token_gets_a_clear_prompt(product: Product, open_page: OpenPage) -> None:
    page = await open_page(f"{product.url}/", wait_live=False)
    await page.page.wait_for_selector(PROMPT)
    expired = token("admin", ttl=-60)
    await page.page.evaluate("t => sessionStorage.setItem('dronecast.token', t)", expired)
    await page.page.reload()

    await expect(page.page.locator(PROMPT)).to_be_visible()
    await expect(page.page.locator("#token-dialog .reason")).to_contain_text("expired")
    await sign_in(page, token("admin"))
    await page.page.wait_for_selector(LIVE)


async def test_a_token_that_runs_out_while_open_brings_the_prompt_back(
    product: Product, open_page: OpenPage
) -> None:
    page = await signed_in(open_page, product, token("admin", ttl=5))

    await expect(page.page.locator(PROMPT)).to_be_visible(timeout=10_000)
    await expect(page.page.locator("#token-dialog .reason")).to_contain_text("expired")
    # What was on the page stays there behind the prompt.
    await expect(page.page.locator('#drone-table tr[data-serial="AUTH-1"]')).to_be_attached()


async def test_a_token_the_server_refuses_is_asked_for_again(
    product: Product, open_page: OpenPage
) -> None:
    forged = token("admin").rsplit(".", 1)[0] + ".c2lnbmVkLWJ5LXNvbWVvbmUtZWxzZQ"
    page = await open_page(f"{product.url}/", wait_live=False)
    await sign_in(page, forged)

    await expect(page.page.locator(PROMPT)).to_be_visible()
    await expect(page.page.locator("#token-dialog .reason")).to_contain_text("refused")
    await page.page.fill("#token-dialog textarea", token("admin"))
    await page.page.click('#token-dialog button[type="submit"]')
    await page.page.wait_for_selector(LIVE)
    await expect(page.page.locator('#drone-table tr[data-serial="AUTH-1"]')).to_be_visible()


async def test_something_that_is_not_a_token_is_refused_in_the_dialog(
    product: Product, open_page: OpenPage
) -> None:
    page = await open_page(f"{product.url}/", wait_live=False)
    await sign_in(page, "hello")

    await expect(page.page.locator("#token-dialog .error")).to_contain_text("not a token")
    await expect(page.page.locator(PROMPT)).to_be_visible()


async def test_graphiql_opened_from_the_page_sends_the_token(
    product: Product, open_page: OpenPage
) -> None:
    page = await signed_in(open_page, product, token("viewer"))
    await page.page.click("#graphiql-link")
    await page.page.wait_for_selector(".graphiql-container .graphiql-query-editor")
    await expect(page.page.locator(".graphiql-editor-tool")).to_contain_text("Authorization")
    await page.page.locator(".graphiql-execute-button").click()
    await expect(page.page.locator(".graphiql-response")).to_contain_text('"anomalyAlerts"')
    await expect(page.page.locator(".graphiql-response")).not_to_contain_text("Unauthorized")
