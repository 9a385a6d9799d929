"""What the api serves to browsers, over HTTP: the dashboard page and its configuration, the API
docs pages, and `/static/`, all from the product itself."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import httpx
import pytest
from pydantic import ValidationError

from services.api.web.endpoints import EVENTS_PATH, STATIC_DIR, embedded_json
from services.gateway.server import SOCKETIO_PATH
from shared.auth import ROLE_ACTIONS
from tests.conftest import in_process_api, make_settings


class _Assets(HTMLParser):
    """Every URL a page asks the browser to load (scripts, styles, icons, images)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        for name in ("src", "href"):
            if tag in ("script", "link", "img") and found.get(name):
                self.urls.append(str(found[name]))


def assets(html: str) -> list[str]:
    parser = _Assets()
    parser.feed(html)
    return parser.urls


def embedded_config(html: str) -> dict[str, object]:
    match = re.search(
        r'<script id="dronecast-config" type="application/json">(.*?)</script>', html, re.S
    )
    assert match, "no configuration in the page"
    config: dict[str, object] = json.loads(match.group(1))
    return config


async def test_the_dashboard_is_served_at_the_root(api_client: httpx.AsyncClient) -> None:
    response = await api_client.get("/")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "DroneCast" in response.text
    config = embedded_config(response.text)
    assert config["authEnabled"] is False
    assert config["eventsUrl"] == ""
    assert config["eventsPath"] == EVENTS_PATH == f"/{SOCKETIO_PATH}"
    assert config["roles"] == {
        role.value: sorted(action.value for action in actions)
        for role, actions in ROLE_ACTIONS.items()
    }


async def test_the_dashboard_answers_head_like_get(api_client: httpx.AsyncClient) -> None:
    response = await api_client.head("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")


async def test_every_asset_of_every_page_is_the_products_own(
    api_client: httpx.AsyncClient,
) -> None:
    for page in ("/", "/docs", "/redoc", "/api/v1/graphql"):
        html = (await api_client.get(page)).text
        urls = assets(html)
        assert urls, page
        for url in urls:
            assert url.startswith("/static/"), f"{page} loads {url}"
            response = await api_client.get(url)
            assert response.status_code == 200, f"{page}: {url} answers {response.status_code}"


async def test_the_dashboard_may_connect_only_to_the_product() -> None:
    settings = make_settings(public_events_url="https://events.example.com")
    async for client in in_process_api(settings):
        response = await client.get("/")
        policy = response.headers["content-security-policy"]
        directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
        assert directives["default-src"] == "'self'"
        assert directives["script-src"] == "'self'"
        assert directives["connect-src"].split() == [
            "'self'",
            "https://events.example.com",
            "wss://events.example.com",
        ]
        assert embedded_config(response.text)["eventsUrl"] == "https://events.example.com"


@pytest.mark.parametrize(
    "value", ["events.example.com", "https://events.example.com/ws", "ftp://x", "https://a b"]
)
def test_the_events_url_must_be_an_origin(value: str) -> None:
    with pytest.raises(ValidationError):
        make_settings(public_events_url=value)


def test_nothing_in_the_config_can_close_its_script_element() -> None:
    hostile = {"eventsUrl": "</script><script>alert(1)</script>"}
    encoded = embedded_json(hostile)
    assert "<" not in encoded
    assert json.loads(encoded) == hostile


async def test_static_files_are_revalidated_and_compressed(
    api_client: httpx.AsyncClient,
) -> None:
    url = "/static/vendor/swagger-ui/swagger-ui-bundle.js"
    first = await api_client.get(url, headers={"Accept-Encoding": "gzip"})
    assert first.status_code == 200
    assert first.headers["content-encoding"] == "gzip"
    assert first.headers["cache-control"] == "no-cache"
    assert (
        len(first.content) == (STATIC_DIR / "vendor/swagger-ui/swagger-ui-bundle.js").stat().st_size
    )

    again = await api_client.get(url, headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304


async def test_a_missing_static_file_is_a_404(api_client: httpx.AsyncClient) -> None:
    response = await api_client.get("/static/dashboard/nope.js")
    assert response.status_code == 404


async def test_graphiql_is_not_served_in_production() -> None:
    settings = make_settings(environment="production", secret_key="x" * 40)
    async for client in in_process_api(settings):
        assert (await client.get("/api/v1/graphql")).status_code == 405
        assert embedded_config((await client.get("/")).text)["graphiql"] is False
