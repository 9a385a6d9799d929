"""Processing tasks and results over REST (seed 003's shapes and paths, and /api/v1)."""

from __future__ import annotations

import httpx
import pytest

from shared.tasks.schemas import ResultReport, StatusReport
from shared.tasks.service import task_service
from tests.fixtures.events import EventRecorder, record_all

SEED_TASK = {
    "app_id": "App001",
    "drone_id": "Drone001",
    "task_type": "image_analysis",
    "input_data": {
        "image_url": "https://example.com/image.jpg",
        "analysis_type": "object_detection",
        "parameters": {"confidence_threshold": 0.8, "max_objects": 10},
    },
    "priority": 3,
}


async def create(
    api: httpx.AsyncClient, path: str = "/api/processing-tasks", **fields: object
) -> str:
    response = await api.post(path, json={**SEED_TASK, **fields})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["message"] == "Processing task created successfully"
    return str(body["task_id"])


async def test_seed_create_and_get(api_client: httpx.AsyncClient) -> None:
    events: EventRecorder = await record_all(api_client.app.state.broker)  # type: ignore[attr-defined]
    task_id = await create(api_client)
    assert task_id.startswith("task_")
    for path in (f"/api/processing-tasks/{task_id}", f"/api/v1/processing-tasks/{task_id}"):
        task = (await api_client.get(path)).json()
        assert {k: task[k] for k in SEED_TASK} == SEED_TASK
        assert task["status"] == "pending"
        assert task["created_at"].endswith("Z") and task["updated_at"].endswith("Z")
    [created] = await events.wait_for(1)
    assert created["event"] == "task.created" and created["serial"] == "Drone001"
    assert events.channels == ["drone:Drone001:task"]


async def test_pending_list_is_in_dispatch_order(api_client: httpx.AsyncClient) -> None:
    low = await create(api_client, priority=1)
    urgent = await create(api_client, priority=5)
    normal = await create(api_client, priority=3)
    await create(api_client, drone_id="Other")
    response = await api_client.get("/api/processing-tasks/drone/Drone001/pending?limit=10")
    body = response.json()
    assert body["drone_id"] == "Drone001" and body["count"] == 3
    assert [t["task_id"] for t in body["tasks"]] == [urgent, normal, low]
    limited = (await api_client.get("/api/processing-tasks/drone/Drone001/pending?limit=1")).json()
    assert limited["count"] == 1


async def test_results_by_task_and_by_drone(api_client: httpx.AsyncClient) -> None:
    broker = api_client.app.state.broker  # type: ignore[attr-defined]
    task_id = await create(api_client)
    await task_service.report_status(broker, "Drone001", StatusReport(task_id=task_id))
    await task_service.report_result(
        broker,
        "Drone001",
        ResultReport(
            task_id=task_id,
            result_data={"detected_objects": [{"type": "person", "confidence": 0.95}]},
            processing_time=1.25,
        ),
    )
    result = (await api_client.get(f"/api/processing-results/{task_id}")).json()
    assert result["task_id"] == task_id and result["drone_id"] == "Drone001"
    assert result["result_data"]["detected_objects"][0]["type"] == "person"
    assert result["processing_time"] == 1.25 and result["success"] is True
    by_drone = (await api_client.get("/api/processing-results/drone/Drone001?limit=50")).json()
    assert by_drone["count"] == 1 and by_drone["drone_id"] == "Drone001"
    task = (await api_client.get(f"/api/v1/processing-tasks/{task_id}")).json()
    assert task["status"] == "completed"


async def test_cancel_pending_then_409(api_client: httpx.AsyncClient) -> None:
    task_id = await create(api_client)
    cancelled = await api_client.post(f"/api/v1/processing-tasks/{task_id}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = await api_client.post(f"/api/v1/processing-tasks/{task_id}/cancel")
    assert again.status_code == 409 and again.json()["error"] == "Conflict"


async def test_list_filters_and_paginates(api_client: httpx.AsyncClient) -> None:
    for n in range(5):
        await create(api_client, task_type=f"type-{n % 2}")
    listed = (await api_client.get("/api/v1/processing-tasks?task_type=type-0&limit=2")).json()
    assert listed["total"] == 3 and listed["count"] == 2
    assert all(t["task_type"] == "type-0" for t in listed["tasks"])


@pytest.mark.parametrize(
    "body",
    [
        {"priority": 0},
        {"priority": 6},
        {"drone_id": "bad drone"},
        {"drone_id": {"$ne": None}},
        {"input_data": {"n": 10**400}},  # beyond a double
        {"input_data": {"$where": "sleep(1000)"}},
        {"input_data": "not an object"},
        {"status": "completed"},
        {"task_id": "task_mine"},
        {"task_type": ""},
    ],
)
async def test_invalid_task_is_a_422_and_stores_nothing(
    api_client: httpx.AsyncClient, body: dict
) -> None:
    response = await api_client.post("/api/v1/processing-tasks", json={**SEED_TASK, **body})
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "ValidationError"
    assert (await api_client.get("/api/v1/processing-tasks")).json()["total"] == 0


async def test_whole_numbers_beyond_64_bits_are_kept_as_doubles(
    api_client: httpx.AsyncClient,
) -> None:
    """MongoDB has no bigger integer; a JavaScript client would read such a number as a double
    too. 64-bit integers stay exact."""
    input_data = {"big": 2**70, "exact": 2**63 - 1, "tiny": 0.5}
    task_id = await create(api_client, input_data=input_data)
    stored = (await api_client.get(f"/api/v1/processing-tasks/{task_id}")).json()["input_data"]
    assert stored == {"big": float(2**70), "exact": 2**63 - 1, "tiny": 0.5}
    assert isinstance(stored["exact"], int)


@pytest.mark.parametrize(
    "path",
    [
        "/api/processing-tasks/task_nope",
        "/api/processing-results/task_nope",
        "/api/v1/processing-tasks/task_nope/cancel",
    ],
)
async def test_unknown_task_is_a_404(api_client: httpx.AsyncClient, path: str) -> None:
    method = "POST" if path.endswith("cancel") else "GET"
    response = await api_client.request(method, path)
    assert response.status_code == 404 and response.json()["error"] == "NotFound"


async def test_times_are_iso_8601_only(api_client: httpx.AsyncClient) -> None:
    assert (await api_client.get("/api/v1/processing-tasks?until=0.5")).status_code == 422
    ok = await api_client.get("/api/v1/processing-tasks?since=2020-01-01T00:00:00Z")
    assert ok.status_code == 200
