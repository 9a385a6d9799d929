"""Alerts (seed 000): create, respond, attach the image, and the events and commands they cause.

Lifecycle `pending -> responded -> completed`. Each step compare-and-sets on the alert's
`version`, with its event in the same update (outbox), so of two racing responses exactly one
wins and the other gets a 409. A response also leaves the drone's command in the alert
(`command_state: pending`); the replica holding the drone's socket is nudged to deliver it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from pymongo.errors import PyMongoError

from shared.alerts.images import (
    ImageRepository,
    StoredImage,
    checked_image,
    image_filename,
    image_repository,
    image_url,
)
from shared.alerts.repository import AlertRepository, alert_repository
from shared.alerts.schemas import (
    AlertFields,
    AlertFilters,
    AlertResponseBody,
    ImageFields,
)
from shared.auth import Action, Principal
from shared.broker import Broker
from shared.errors import Conflict, Forbidden, NotFound
from shared.events import EventName, PendingEvent
from shared.logging import get_logger
from shared.models import Alert
from shared.models.alert import (
    AlertStatus,
    AlertType,
    CommandState,
    Location,
    Severity,
    severity_for_score,
)
from shared.models.base import utcnow
from shared.nudges import COMMANDS, nudge_drone
from shared.outbox import drain, outbox_entries
from shared.runtime import Runtime

log = get_logger(__name__)

_MAX_ATTEMPTS = 20
_MAX_ID_ATTEMPTS = 5

Changes = Callable[[datetime], dict[str, Any]]


class ConnectionCounter(Protocol):
    """Whoever knows the open device sockets (the api's device hub), for `stats`."""

    async def connection_counts(self) -> dict[str, Any]: ...


def new_alert_id() -> str:
    return f"alert_{uuid.uuid4().hex[:16]}"


def scoped(principal: Principal, query: dict[str, Any]) -> dict[str, Any]:
    """Narrow a query to the drones the caller may see."""
    if principal.drones is None:
        return query
    wanted = query.get("drone_id")
    if wanted is not None:
        return query if wanted in principal.drones else {**query, "drone_id": {"$in": []}}
    return {**query, "drone_id": {"$in": sorted(principal.drones)}}


def _diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        field: {"old": before[field], "new": value}
        for field, value in after.items()
        if before[field] != value
    }


class AlertService:
    def __init__(self, repository: AlertRepository, images: ImageRepository) -> None:
        self.repository = repository
        self.images = images

    async def create(
        self, broker: Broker, principal: Principal, body: AlertFields, drone_id: str
    ) -> Alert:
        principal.require(Action.RAISE_ALERTS, drone_id)
        now = utcnow()
        for _ in range(_MAX_ID_ATTEMPTS):
            alert = Alert(
                alert_id=new_alert_id(),
                alert_type=body.alert_type,
                score=body.score,
                image_url=body.image_url,
                location=Location(lat=body.location.lat, lng=body.location.lng),
                drone_id=drone_id,
                timestamp=body.timestamp or now,
                description=body.description,
                severity=body.severity or severity_for_score(body.score),
                created_at=now,
            )
            created = PendingEvent(EventName.ALERT_CREATED, drone_id, {"full": alert.public()})
            alert.outbox = outbox_entries([created])
            if await self.repository.insert(alert):
                await drain(broker, Alert, alert.id, alert.outbox)
                log.info("alert_created", alert_id=alert.alert_id, drone_id=drone_id)
                return alert
        raise Conflict("could not allocate an alert_id; try again")

    async def get(self, principal: Principal, alert_id: str) -> Alert:
        """The alert, if it exists and the caller may see its drone (404 otherwise)."""
        alert = await self.repository.get(alert_id)
        if alert is None or not principal.may_see(alert.drone_id):
            raise NotFound(f"no alert with alert_id '{alert_id}'")
        return alert

    async def find(
        self, principal: Principal, filters: AlertFilters, limit: int, offset: int
    ) -> tuple[list[Alert], int]:
        return await self.repository.find_page(scoped(principal, filters.query()), limit, offset)

    async def respond(
        self, broker: Broker, principal: Principal, alert_id: str, body: AlertResponseBody
    ) -> Alert:
        """`pending -> responded`, leaving the drone's command pending in the same write."""

        def changes(now: datetime) -> dict[str, Any]:
            return {
                "status": AlertStatus.RESPONDED.value,
                "response": 1,
                "actions": list(body.actions),
                "responded_at": now,
                "command_state": CommandState.PENDING.value,
                "command_session": None,
                "command_delivered_at": None,
            }

        written = await self._transition(
            broker,
            principal,
            Action.RESPOND,
            alert_id,
            AlertStatus.PENDING,
            EventName.ALERT_RESPONDED,
            changes,
        )
        await nudge_drone(broker, written.drone_id, COMMANDS)
        return written

    async def attach_image(
        self,
        broker: Broker,
        principal: Principal,
        alert_id: str,
        image_url: str,
        as_drone: str | None = None,
    ) -> Alert:
        """`responded -> completed` with the image's URL. `as_drone`: the drone socket it came
        from, which may only complete its own alerts."""

        def changes(now: datetime) -> dict[str, Any]:
            return {
                "status": AlertStatus.COMPLETED.value,
                "image_received": 1,
                "image_url": image_url,
                "completed_at": now,
            }

        return await self._transition(
            broker,
            principal,
            Action.RAISE_ALERTS,
            alert_id,
            AlertStatus.RESPONDED,
            EventName.ALERT_COMPLETED,
            changes,
            as_drone=as_drone,
        )

    async def upload_image(
        self,
        broker: Broker,
        principal: Principal,
        alert_id: str,
        data: bytes,
        max_bytes: int,
        as_drone: str | None = None,
    ) -> Alert:
        """Store the picture (JPEG, PNG or WebP by its content; at most `max_bytes`) and
        complete the alert with its `/uploads/...` URL. Nothing is kept if the alert may not
        take it (404, 403, 409)."""
        media_type = checked_image(data, max_bytes)
        alert = await self.get(principal, alert_id)
        principal.require(Action.RAISE_ALERTS, alert.drone_id)
        if as_drone is not None and alert.drone_id != as_drone:
            raise Forbidden(f"alert '{alert_id}' belongs to drone '{alert.drone_id}'")
        if alert.status is not AlertStatus.RESPONDED:
            raise Conflict(
                f"alert '{alert_id}' is {alert.status.value}; an image needs it responded",
                status=alert.status.value,
            )
        filename = image_filename(alert_id, media_type)
        metadata = {"contentType": media_type, "alert_id": alert_id, "drone_id": alert.drone_id}
        file_id = await self.images.put(filename, data, metadata)
        try:
            return await self.attach_image(
                broker, principal, alert_id, image_url(filename), as_drone
            )
        except BaseException:
            await self.images.delete(file_id)  # lost a race for the alert: keep no orphan
            raise

    async def attach(
        self,
        broker: Broker,
        principal: Principal,
        alert_id: str,
        image: ImageFields,
        max_bytes: int,
        as_drone: str | None = None,
    ) -> Alert:
        """An image given by URL (kept as is) or as base64 bytes (stored)."""
        data = image.image_bytes()
        if data is None:
            assert image.image_url is not None  # ImageFields holds exactly one of the two
            return await self.attach_image(broker, principal, alert_id, image.image_url, as_drone)
        return await self.upload_image(broker, principal, alert_id, data, max_bytes, as_drone)

    async def image(self, principal: Principal, filename: str) -> StoredImage:
        """A stored image, if the caller may see its alert's drone (404 otherwise)."""
        image = await self.images.get(filename)
        if image is None or not principal.may_see(image.drone_id):
            raise NotFound(f"no image '{filename}'")
        return image

    async def _transition(
        self,
        broker: Broker,
        principal: Principal,
        action: Action,
        alert_id: str,
        required: AlertStatus,
        event_name: EventName,
        make_changes: Changes,
        as_drone: str | None = None,
    ) -> Alert:
        for _ in range(_MAX_ATTEMPTS):
            alert = await self.get(principal, alert_id)
            principal.require(action, alert.drone_id)
            if as_drone is not None and alert.drone_id != as_drone:
                raise Forbidden(f"alert '{alert_id}' belongs to drone '{alert.drone_id}'")
            if alert.status is not required:
                raise Conflict(
                    f"alert '{alert_id}' is {alert.status.value}; "
                    f"this needs it to be {required.value}",
                    status=alert.status.value,
                )
            changes = make_changes(utcnow())
            after = Alert.model_validate({**alert.model_dump(), **changes})
            public_before, public_after = alert.public(), after.public()
            event = PendingEvent(
                event_name,
                alert.drone_id,
                {"full": public_after, "changes": _diff(public_before, public_after)},
            )
            written = await self.repository.compare_and_set(alert, changes, outbox_entries([event]))
            if written is not None:
                await drain(broker, Alert, written.id, written.outbox)
                log.info(
                    "alert_transition",
                    alert_id=alert_id,
                    status=written.status.value,
                    drone_id=written.drone_id,
                )
                return written
            # Someone changed it since we read it: look again (a lost race becomes a 409).
        raise Conflict(f"alert '{alert_id}' is being changed concurrently; try again")

    # --- commands (delivered by the api's device hub) ---------------------------------------------

    async def claim_command(self, drone_id: str, session: str) -> Alert | None:
        return await self.repository.claim_command(drone_id, session, utcnow())

    async def release_command(self, alert_id: str, session: str) -> bool:
        return await self.repository.release_command(alert_id, session)

    async def release_unconfirmed(self, session: str, since: datetime) -> int:
        return await self.repository.release_unconfirmed(session, since)

    async def drones_with_pending_commands(self, drone_ids: list[str]) -> set[str]:
        return await self.repository.drones_with_pending_commands(drone_ids)

    # --- statistics --------------------------------------------------------------------------

    async def stats(
        self, principal: Principal, runtime: Runtime, hub: ConnectionCounter
    ) -> dict[str, Any]:
        checks = await runtime.readiness()
        storage = {name: "ok" if ok else "unavailable" for name, ok in checks.items()}
        counts: dict[str, Any] | None = None
        if checks.get("mongodb"):
            try:
                raw = await self.repository.counts(scoped(principal, {}))
            except PyMongoError as exc:
                log.warning("stats_unavailable", error=str(exc))
                storage["mongodb"] = "unavailable"
            else:
                counts = {
                    "total": sum(raw["status"].values()),
                    "by_status": {s.value: raw["status"].get(s.value, 0) for s in AlertStatus},
                    "by_type": {t.value: raw["type"].get(t.value, 0) for t in AlertType},
                    "by_severity": {v.value: raw["severity"].get(v.value, 0) for v in Severity},
                    "commands_pending": raw["command"].get(CommandState.PENDING.value, 0),
                }
        connections = await hub.connection_counts()
        return {"alerts": counts, "connections": connections, "storage": storage}


alert_service = AlertService(alert_repository, image_repository)
