"""`/api/v1/drones` (seed 001/002)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from services.api.deps import BrokerDep, PageDep
from services.api.security import CanManageDrones, CanRead
from shared.drones.schemas import DroneCreate, DroneList, DroneOut, DroneUpdate
from shared.drones.service import drone_service

router = APIRouter(prefix="/api/v1/drones", tags=["drones"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such drone (or not one the token may see)"},
    409: {"description": "Serial already registered"},
}


@router.post("/register", status_code=201, response_model=DroneOut, responses=_ERRORS)
async def register_drone(
    body: DroneCreate, broker: BrokerDep, principal: CanManageDrones
) -> dict[str, Any]:
    """Register a drone. Publishes `drone.created` on `drone:{serial}:created`."""
    return (await drone_service.register(broker, principal, body)).public()


@router.get("", response_model=DroneList, responses=_ERRORS)
async def list_drones(
    page: PageDep,
    principal: CanRead,
    streamIsOn: bool | None = None,
    aiDetectionEnabled: bool | None = None,
    online: bool | None = None,
    deviceCategory: str | None = None,
) -> dict[str, Any]:
    """List the drones the token may see, oldest first, with optional filters."""
    filters = {
        "streamIsOn": streamIsOn,
        "aiDetectionEnabled": aiDetectionEnabled,
        "online": online,
        "deviceCategory": deviceCategory,
    }
    drones, total = await drone_service.list(principal, page.limit, page.offset, filters)
    return page.body("drones", [drone.public() for drone in drones], total)


@router.get("/sn/{sn}", response_model=DroneOut, responses=_ERRORS)
async def get_drone_by_serial(sn: str, principal: CanRead) -> dict[str, Any]:
    return (await drone_service.get_by_serial(principal, sn)).public()


@router.patch("/sn/{sn}", response_model=DroneOut, responses=_ERRORS)
async def update_drone_by_serial(
    sn: str, body: DroneUpdate, broker: BrokerDep, principal: CanManageDrones
) -> dict[str, Any]:
    """Change only the fields sent. Publishes `drone.updated` with the changed fields, plus
    `drone.stream.status`, `drone.ai.detection.toggled` or `drone.detection.classes.changed`."""
    drone = await drone_service.get_by_serial(principal, sn)
    return (await drone_service.update(broker, drone, body)).public()


@router.get("/{drone_id}", response_model=DroneOut, responses=_ERRORS)
async def get_drone(drone_id: str, principal: CanRead) -> dict[str, Any]:
    return (await drone_service.get(principal, drone_id)).public()


@router.patch("/{drone_id}", response_model=DroneOut, responses=_ERRORS)
async def update_drone(
    drone_id: str, body: DroneUpdate, broker: BrokerDep, principal: CanManageDrones
) -> dict[str, Any]:
    """Change only the fields sent (same events as `PATCH /sn/{sn}`)."""
    drone = await drone_service.get(principal, drone_id)
    return (await drone_service.update(broker, drone, body)).public()


@router.delete("/{drone_id}", response_model=DroneOut, responses=_ERRORS)
async def delete_drone(
    drone_id: str, broker: BrokerDep, principal: CanManageDrones
) -> dict[str, Any]:
    """Delete a drone; returns it as it was. Publishes `drone.deleted`."""
    drone = await drone_service.get(principal, drone_id)
    return (await drone_service.delete(broker, drone)).public()
