"""Alerts with AUTH_ENABLED: roles decide what a token may do, its drones what it may see."""

from __future__ import annotations

import httpx
import pytest

from tests.fixtures.auth import bearer

BODY = {"alert_type": "fire", "score": 0.9, "location": {"lat": 1.0, "lng": 2.0}}


@pytest.fixture
async def api(secured: httpx.AsyncClient) -> httpx.AsyncClient:
    return secured


async def raise_alert(api: httpx.AsyncClient, drone: str) -> str:
    response = await api.post(
        "/api/alerts", json={**BODY, "drone_id": drone}, headers=bearer("drone", [drone])
    )
    assert response.status_code == 201, response.text
    alert_id: str = response.json()["alert_id"]
    return alert_id


async def test_no_token_is_a_401(api: httpx.AsyncClient) -> None:
    assert (await api.get("/api/alerts")).status_code == 401
    assert (await api.post("/api/alerts", json={**BODY, "drone_id": "MINE"})).status_code == 401


async def test_a_drone_raises_alerts_only_as_itself(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/api/alerts", json={**BODY, "drone_id": "THEIRS"}, headers=bearer("drone", ["MINE"])
    )
    assert response.status_code == 404
    assert (await api.get("/api/alerts", headers=bearer("admin"))).json()["total"] == 0


async def test_a_viewer_reads_but_may_not_respond(api: httpx.AsyncClient) -> None:
    alert_id = await raise_alert(api, "MINE")
    assert (await api.get(f"/api/alerts/{alert_id}", headers=bearer("viewer"))).status_code == 200
    response = await api.put(
        f"/api/alerts/{alert_id}/response", json={"actions": ["a"]}, headers=bearer("viewer")
    )
    assert response.status_code == 403
    stored = await api.get(f"/api/alerts/{alert_id}", headers=bearer("admin"))
    assert stored.json()["status"] == "pending"


async def test_a_scoped_application_sees_and_responds_only_to_its_drones(
    api: httpx.AsyncClient,
) -> None:
    mine = await raise_alert(api, "MINE")
    theirs = await raise_alert(api, "THEIRS")
    app = bearer("application", ["MINE"])
    listed = (await api.get("/api/alerts", headers=app)).json()
    assert [a["alert_id"] for a in listed["alerts"]] == [mine]
    assert (await api.get(f"/api/alerts/{theirs}", headers=app)).status_code == 404
    refused = await api.put(f"/api/alerts/{theirs}/response", json={"actions": ["a"]}, headers=app)
    assert refused.status_code == 404
    accepted = await api.put(f"/api/alerts/{mine}/response", json={"actions": ["a"]}, headers=app)
    assert accepted.status_code == 200
    stats = (await api.get("/api/stats", headers=app)).json()
    assert stats["alerts"]["total"] == 1
