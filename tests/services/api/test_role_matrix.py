"""Every REST route against every role: 401 without a token, 403 for a role that may not, and
never 403 for one that may. The routes come from the live OpenAPI schema, so a route added
without an entry here fails the test instead of going unchecked."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from services.api.main import create_app
from shared.auth import ROLE_ACTIONS, Action, Role
from tests.conftest import drop_database, make_settings
from tests.fixtures.auth import SECRET, bearer

# (method, path template) -> the action it needs
ROUTE_ACTIONS: dict[tuple[str, str], Action] = {
    ("POST", "/api/v1/drones/register"): Action.MANAGE_DRONES,
    ("GET", "/api/v1/drones"): Action.READ,
    ("GET", "/api/v1/drones/sn/{sn}"): Action.READ,
    ("PATCH", "/api/v1/drones/sn/{sn}"): Action.MANAGE_DRONES,
    ("GET", "/api/v1/drones/{drone_id}"): Action.READ,
    ("PATCH", "/api/v1/drones/{drone_id}"): Action.MANAGE_DRONES,
    ("DELETE", "/api/v1/drones/{drone_id}"): Action.MANAGE_DRONES,
    ("GET", "/api/v1/alerts"): Action.READ,
    ("POST", "/api/v1/alerts"): Action.RAISE_ALERTS,
    ("GET", "/api/v1/alerts/{alert_id}"): Action.READ,
    ("PUT", "/api/v1/alerts/{alert_id}/response"): Action.RESPOND,
    ("PUT", "/api/v1/alerts/{alert_id}/image"): Action.RAISE_ALERTS,
    ("GET", "/api/v1/stats"): Action.READ,
    ("POST", "/api/v1/processing-tasks"): Action.MANAGE_TASKS,
    ("GET", "/api/v1/processing-tasks"): Action.READ,
    ("GET", "/api/v1/processing-tasks/drone/{drone_id}/pending"): Action.READ,
    ("GET", "/api/v1/processing-tasks/{task_id}"): Action.READ,
    ("POST", "/api/v1/processing-tasks/{task_id}/cancel"): Action.MANAGE_TASKS,
    ("GET", "/api/v1/processing-results/drone/{drone_id}"): Action.READ,
    ("GET", "/api/v1/processing-results/{task_id}"): Action.READ,
    ("POST", "/api/v1/sensors/data"): Action.SEND_TELEMETRY,
    ("GET", "/api/v1/sensors/data"): Action.READ,
    ("GET", "/api/v1/sensors/alerts"): Action.READ,
    ("PUT", "/api/v1/sensors/alerts/{alert_id}/resolve"): Action.RESPOND,
    ("GET", "/api/v1/monitoring/stats"): Action.READ,
    ("GET", "/api/v1/monitoring/health"): Action.READ,
    ("GET", "/api/v1/monitoring/metrics"): Action.READ,
    ("POST", "/api/v1/graphql"): Action.READ,
    ("GET", "/uploads/{filename}"): Action.READ,  # an alert's picture
}
# Served under /api/v1 only (drones: seed 001 has no other path; seed 004's are all /api/v1,
# GraphQL included).
NO_SEED_PATH = ("/api/drones", "/api/sensors", "/api/monitoring", "/api/graphql")
OPEN = {("GET", "/health"), ("GET", "/ready"), ("GET", "/api/v1/graphql")}  # that GET: GraphiQL
VALUES = {
    "sn": "SN1", "drone_id": "SN1", "alert_id": "alert_x", "task_id": "task_x",
    "filename": "alert_x.png",
}  # fmt: skip


@pytest.fixture(scope="module")
def app():  # type: ignore[no-untyped-def]
    return create_app(make_settings(auth_enabled=True, secret_key=SECRET))


@pytest.fixture
async def api(app) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield client
        await drop_database(app.state.runtime)


async def test_every_route_in_the_schema_is_in_the_matrix(api: httpx.AsyncClient) -> None:
    schema = (await api.get("/openapi.json")).json()
    routes = {
        (method.upper(), path)
        for path, operations in schema["paths"].items()
        for method in operations
    }
    assert routes - OPEN == set(ROUTE_ACTIONS), "add the new route to ROUTE_ACTIONS"


@pytest.mark.parametrize(("method", "template"), sorted(ROUTE_ACTIONS))
async def test_no_token_is_a_401(api: httpx.AsyncClient, method: str, template: str) -> None:
    response = await api.request(method, template.format(**VALUES), json={})
    assert response.status_code == 401


@pytest.mark.parametrize("role", [role.value for role in Role])
@pytest.mark.parametrize(("method", "template"), sorted(ROUTE_ACTIONS))
async def test_role_may_or_may_not(
    api: httpx.AsyncClient, role: str, method: str, template: str
) -> None:
    for path in (template, template.replace("/api/v1/", "/api/", 1)):
        response = await api.request(
            method, path.format(**VALUES), json={}, headers=bearer(role, ["SN1"])
        )
        if path.startswith(NO_SEED_PATH):
            continue
        allowed = ROUTE_ACTIONS[(method, template)] in ROLE_ACTIONS[Role(role)]
        if allowed:
            # 404/409/422 are fine here (the ids and bodies are dummies): not a 401 or 403.
            assert response.status_code not in (401, 403), (path, response.text)
        else:
            assert response.status_code == 403, (path, response.status_code, response.text)
            assert response.json()["error"] == "Forbidden"
