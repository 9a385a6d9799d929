"""The REST API over httpx: drones, alerts, processing tasks, telemetry.

    async with AsyncClient("http://127.0.0.1:8000", token=token) as api:
        drone = await api.register_drone("SN1", name="Scout")

    with Client("http://127.0.0.1:8000") as api:
        drone = api.register_drone("SN1", name="Scout")

An error answer (`{"error", "detail"}`) raises the matching `dronecast_client.errors` class;
an unreachable server raises `TransportError`.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import httpx

from dronecast_client._portal import HasTwin, Portal, blocking
from dronecast_client.errors import TransportError, error_from
from dronecast_client.models import (
    AcceptedReading,
    Alert,
    AnomalyAlert,
    Drone,
    Model,
    Page,
    Reading,
    Task,
    TaskResult,
)

# Methods that do the same thing when sent twice.
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})

M = TypeVar("M", bound=Model)

DEFAULT_TIMEOUT = 10.0
_DRONE_FIELDS = {
    "name": "deviceName",
    "category": "deviceCategory",
    "stream_is_on": "streamIsOn",
    "ai_detection_enabled": "aiDetectionEnabled",
    "detection_classes": "detectionClasses",
}


def _drone_body(fields: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(fields) - set(_DRONE_FIELDS)
    if unknown:
        raise TypeError(f"unknown drone field(s): {', '.join(sorted(unknown))}")
    return {_DRONE_FIELDS[key]: value for key, value in fields.items()}


def _params(**values: Any) -> dict[str, Any]:
    return {
        key: (str(value).lower() if isinstance(value, bool) else value)
        for key, value in values.items()
        if value is not None
    }


def _page(body: dict[str, Any], key: str, model: type[M]) -> Page[M]:
    items = [model.model_validate(item) for item in body.get(key, [])]
    return Page[M](
        items=items,
        count=body.get("count", len(items)),
        total=body.get("total"),
        limit=body.get("limit"),
        offset=body.get("offset"),
    )


def alert_fields(
    drone_id: str,
    alert_type: str,
    score: float,
    lat: float,
    lng: float,
    description: str | None,
    severity: str | None,
) -> dict[str, Any]:
    """An alert as the API takes it (REST body, or a drone's `alert` message data)."""
    fields: dict[str, Any] = {
        "drone_id": drone_id,
        "alert_type": alert_type,
        "score": score,
        "location": {"lat": lat, "lng": lng},
    }
    fields.update(_params(description=description, severity=severity))
    return fields


def task_fields(
    app_id: str,
    drone_id: str,
    task_type: str,
    input_data: Mapping[str, Any] | None,
    priority: int,
    deadline_seconds: float | None,
) -> dict[str, Any]:
    """A processing task as the API takes it (REST body, or `processing_task` data)."""
    fields: dict[str, Any] = {
        "app_id": app_id,
        "drone_id": drone_id,
        "task_type": task_type,
        "input_data": dict(input_data or {}),
        "priority": priority,
    }
    fields.update(_params(deadline_seconds=deadline_seconds))
    return fields


def image_bytes(image: bytes | str | Path) -> bytes:
    return bytes(image) if isinstance(image, bytes | bytearray) else Path(image).read_bytes()


def guess_image_type(image: bytes | str | Path) -> str:
    """From the file name if there is one, else from the bytes' first bytes."""
    if not isinstance(image, bytes | bytearray):
        guessed, _ = mimetypes.guess_type(str(image))
        if guessed:
            return guessed
        image = Path(image).read_bytes()[:16]
    head = bytes(image[:16])
    if head.startswith(b"\x89PNG"):
        return "image/png"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "image/webp"
    return "image/jpeg"


class AsyncClient:
    """DroneCast's REST API. `token`: a bearer token (`dronecast token`), unless auth is off."""

    def __init__(
        self,
        url: str = "http://127.0.0.1:8000",
        *,
        token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.url, headers=headers, timeout=timeout, transport=transport
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def request(
        self, method: str, path: str, *, idempotent: bool | None = None, **kwargs: Any
    ) -> Any:
        """Any API call; returns the decoded JSON body. Raises an `APIError` on an error.

        A request that could not be sent is tried once more. So is one whose connection broke
        before any answer came (a kept-alive connection the server closed as it was reused),
        when sending it twice does no harm: GET, HEAD, OPTIONS, PUT and DELETE, or
        `idempotent=True`."""
        again = method.upper() in _IDEMPOTENT if idempotent is None else idempotent
        for attempt in (1, 2):
            try:
                response = await self._http.request(method, path, **kwargs)
                break
            except httpx.ConnectError as exc:  # nothing was sent
                if attempt == 2:
                    raise TransportError(f"{method} {path}: {exc!r}") from exc
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
                if attempt == 2 or not again:
                    raise TransportError(f"{method} {path}: {exc!r}") from exc
            except httpx.HTTPError as exc:
                raise TransportError(f"{method} {path}: {exc!r}") from exc
        if response.is_success:
            if not response.content:
                return None
            if response.headers.get("content-type", "").startswith("application/json"):
                return response.json()
            return response.content
        try:
            body = response.json()
        except ValueError:
            body = {"error": "", "detail": response.text[:500]}
        if isinstance(body, dict) and response.headers.get("retry-after"):
            body.setdefault("retry_after", float(response.headers["retry-after"]))
        raise error_from(body, response.status_code)

    # --- health ---------------------------------------------------------------------------------

    async def health(self) -> dict[str, Any]:
        """`/health`: alive, with `authEnabled` and warnings."""
        body: dict[str, Any] = await self.request("GET", "/health")
        return body

    async def ready(self) -> bool:
        """True when the service and its MongoDB and Redis answer (`/ready`)."""
        try:
            response = await self._http.get("/ready")
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    # --- drones ---------------------------------------------------------------------------------

    async def register_drone(self, serial: str, **fields: Any) -> Drone:
        """Register a drone. `fields`: name, category, stream_is_on, ai_detection_enabled,
        detection_classes. A serial already taken raises `Conflict`."""
        body = {"deviceSerialNumber": serial, **_drone_body(fields)}
        return Drone.model_validate(
            await self.request("POST", "/api/v1/drones/register", json=body)
        )

    async def list_drones(
        self, *, limit: int | None = None, offset: int | None = None
    ) -> Page[Drone]:
        body = await self.request(
            "GET", "/api/v1/drones", params=_params(limit=limit, offset=offset)
        )
        return _page(body, "drones", Drone)

    async def get_drone(self, drone_id: str) -> Drone:
        """By the drone's `id`."""
        return Drone.model_validate(await self.request("GET", f"/api/v1/drones/{drone_id}"))

    async def get_drone_by_serial(self, serial: str) -> Drone:
        return Drone.model_validate(await self.request("GET", f"/api/v1/drones/sn/{serial}"))

    async def update_drone(self, serial: str, **fields: Any) -> Drone:
        """Change only the given fields (see `register_drone`); events go out for what changed."""
        body = _drone_body(fields)
        return Drone.model_validate(
            await self.request("PATCH", f"/api/v1/drones/sn/{serial}", json=body)
        )

    async def delete_drone(self, drone_id: str) -> Drone:
        return Drone.model_validate(await self.request("DELETE", f"/api/v1/drones/{drone_id}"))

    # --- alerts ---------------------------------------------------------------------------------

    async def create_alert(
        self,
        drone_id: str,
        alert_type: str,
        score: float,
        *,
        lat: float,
        lng: float,
        description: str | None = None,
        severity: str | None = None,
    ) -> Alert:
        """Store an alert as `pending`, as if its drone had raised it."""
        body = alert_fields(drone_id, alert_type, score, lat, lng, description, severity)
        return Alert.model_validate(await self.request("POST", "/api/v1/alerts", json=body))

    async def list_alerts(
        self,
        *,
        status: str | None = None,
        drone_id: str | None = None,
        alert_type: str | None = None,
        severity: str | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> Page[Alert]:
        params = _params(
            status=status,
            drone_id=drone_id,
            alert_type=alert_type,
            severity=severity,
            since=since,
            until=until,
            limit=limit,
            offset=offset,
        )
        return _page(await self.request("GET", "/api/v1/alerts", params=params), "alerts", Alert)

    async def get_alert(self, alert_id: str) -> Alert:
        return Alert.model_validate(await self.request("GET", f"/api/v1/alerts/{alert_id}"))

    async def respond_to_alert(self, alert_id: str, actions: Iterable[str]) -> Alert:
        """`pending -> responded`; the drone receives the actions as a `command`."""
        body = {"actions": list(actions), "response": 1}
        return Alert.model_validate(
            await self.request("PUT", f"/api/v1/alerts/{alert_id}/response", json=body)
        )

    async def upload_alert_image(
        self, alert_id: str, image: bytes | str | Path, *, content_type: str | None = None
    ) -> Alert:
        """Attach the picture (JPEG, PNG or WebP bytes, or a file path) to a responded alert:
        it completes, and its `image_url` serves the picture."""
        data = image_bytes(image)
        headers = {"Content-Type": content_type or guess_image_type(image)}
        return Alert.model_validate(
            await self.request(
                "PUT", f"/api/v1/alerts/{alert_id}/image", content=data, headers=headers
            )
        )

    async def download(self, path: str) -> bytes:
        """The bytes at a server path, e.g. an alert's `image_url`."""
        content = await self.request("GET", path)
        return content if isinstance(content, bytes) else bytes(str(content), "utf-8")

    async def stats(self) -> dict[str, Any]:
        """Alerts by status, type and severity; open sockets; MongoDB and Redis status."""
        body: dict[str, Any] = await self.request("GET", "/api/v1/stats")
        return body

    # --- processing tasks -----------------------------------------------------------------------

    async def create_task(
        self,
        app_id: str,
        drone_id: str,
        task_type: str,
        input_data: Mapping[str, Any] | None = None,
        *,
        priority: int = 3,
        deadline_seconds: float | None = None,
    ) -> Task:
        """A task for a drone; it waits as `pending` until the drone is connected."""
        body = task_fields(app_id, drone_id, task_type, input_data, priority, deadline_seconds)
        created = await self.request("POST", "/api/v1/processing-tasks", json=body)
        return Task.model_validate(created["task"])

    async def get_task(self, task_id: str) -> Task:
        return Task.model_validate(await self.request("GET", f"/api/v1/processing-tasks/{task_id}"))

    async def list_tasks(
        self,
        *,
        drone_id: str | None = None,
        app_id: str | None = None,
        status: str | None = None,
        task_type: str | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> Page[Task]:
        params = _params(
            drone_id=drone_id,
            app_id=app_id,
            status=status,
            task_type=task_type,
            limit=limit,
            offset=offset,
        )
        body = await self.request("GET", "/api/v1/processing-tasks", params=params)
        return _page(body, "tasks", Task)

    async def pending_tasks(self, drone_id: str, *, limit: int = 10) -> list[Task]:
        """A drone's pending tasks, in the order they will be dispatched."""
        body = await self.request(
            "GET",
            f"/api/v1/processing-tasks/drone/{drone_id}/pending",
            params={"limit": limit},
        )
        return [Task.model_validate(item) for item in body["tasks"]]

    async def cancel_task(self, task_id: str) -> Task:
        return Task.model_validate(
            await self.request("POST", f"/api/v1/processing-tasks/{task_id}/cancel")
        )

    async def get_result(self, task_id: str) -> TaskResult:
        return TaskResult.model_validate(
            await self.request("GET", f"/api/v1/processing-results/{task_id}")
        )

    async def results_for_drone(self, drone_id: str, *, limit: int = 50) -> list[TaskResult]:
        body = await self.request(
            "GET", f"/api/v1/processing-results/drone/{drone_id}", params={"limit": limit}
        )
        return [TaskResult.model_validate(item) for item in body["results"]]

    # --- telemetry ------------------------------------------------------------------------------

    async def send_readings(self, readings: Iterable[Mapping[str, Any]]) -> list[AcceptedReading]:
        """Send readings (at most 500 per call), in order, as one batch: once this returns the
        batch is durable, all of it. Each is `{"sensor_id", "sensor_type", "value", ...}`. The
        answer gives each reading's `id`; the verdict follows within moments (`list_readings`,
        `anomaly_alerts`, or `telemetry.anomaly` events). Sending the same readings again (with
        their `timestamp`s) stores them once."""
        batch = [dict(reading) for reading in readings]
        # With their timestamps, readings sent twice are stored once: safe to send again.
        again = all(reading.get("timestamp") is not None for reading in batch)
        body = await self.request("POST", "/api/v1/sensors/data", json=batch, idempotent=again)
        return [AcceptedReading.model_validate(item) for item in body]

    async def list_readings(
        self,
        *,
        sensor_id: str | None = None,
        sensor_type: str | None = None,
        drone_serial: str | None = None,
        is_anomaly: bool | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> Page[Reading]:
        params = _params(
            sensor_id=sensor_id,
            sensor_type=sensor_type,
            drone_serial=drone_serial,
            is_anomaly=is_anomaly,
            since=since,
            until=until,
            limit=limit,
            offset=offset,
        )
        body = await self.request("GET", "/api/v1/sensors/data", params=params)
        return _page(body, "readings", Reading)

    async def anomaly_alerts(
        self,
        *,
        severity: str | None = None,
        resolved: bool | None = None,
        drone_serial: str | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> Page[AnomalyAlert]:
        params = _params(
            severity=severity,
            resolved=resolved,
            drone_serial=drone_serial,
            limit=limit,
            offset=offset,
        )
        body = await self.request("GET", "/api/v1/sensors/alerts", params=params)
        return _page(body, "alerts", AnomalyAlert)

    async def resolve_anomaly(self, alert_id: str) -> AnomalyAlert:
        return AnomalyAlert.model_validate(
            await self.request("PUT", f"/api/v1/sensors/alerts/{alert_id}/resolve")
        )

    async def monitoring_stats(self) -> dict[str, Any]:
        body: dict[str, Any] = await self.request("GET", "/api/v1/monitoring/stats")
        return body


class Client(HasTwin):
    """The blocking form of `AsyncClient`: the same methods, returning plain values."""

    def __init__(
        self,
        url: str = "http://127.0.0.1:8000",
        *,
        token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self._portal = Portal("dronecast-rest")
        self.url = url.rstrip("/")

        async def make() -> AsyncClient:
            return AsyncClient(url, token=token, timeout=timeout)

        self._twin: AsyncClient = self._portal.call(make())

    def __enter__(self) -> Client:
        return self

    request = blocking(AsyncClient.request)
    health = blocking(AsyncClient.health)
    ready = blocking(AsyncClient.ready)
    register_drone = blocking(AsyncClient.register_drone)
    list_drones = blocking(AsyncClient.list_drones)
    get_drone = blocking(AsyncClient.get_drone)
    get_drone_by_serial = blocking(AsyncClient.get_drone_by_serial)
    update_drone = blocking(AsyncClient.update_drone)
    delete_drone = blocking(AsyncClient.delete_drone)
    create_alert = blocking(AsyncClient.create_alert)
    list_alerts = blocking(AsyncClient.list_alerts)
    get_alert = blocking(AsyncClient.get_alert)
    respond_to_alert = blocking(AsyncClient.respond_to_alert)
    upload_alert_image = blocking(AsyncClient.upload_alert_image)
    download = blocking(AsyncClient.download)
    stats = blocking(AsyncClient.stats)
    create_task = blocking(AsyncClient.create_task)
    get_task = blocking(AsyncClient.get_task)
    list_tasks = blocking(AsyncClient.list_tasks)
    pending_tasks = blocking(AsyncClient.pending_tasks)
    cancel_task = blocking(AsyncClient.cancel_task)
    get_result = blocking(AsyncClient.get_result)
    results_for_drone = blocking(AsyncClient.results_for_drone)
    send_readings = blocking(AsyncClient.send_readings)
    list_readings = blocking(AsyncClient.list_readings)
    anomaly_alerts = blocking(AsyncClient.anomaly_alerts)
    resolve_anomaly = blocking(AsyncClient.resolve_anomaly)
    monitoring_stats = blocking(AsyncClient.monitoring_stats)
