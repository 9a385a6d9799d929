"""Device WebSockets (seed 000): `/ws/drone/{drone_id}` and `/ws/application/{app_id}`.

JSON text frames. A drone sends `alert` and `image` and receives `command`; an application
receives `alert_update` and sends `response`. Every message gets an `ack` or an `error`; see
`shared/devices/schemas.py` and the README.
"""

from __future__ import annotations

from fastapi import APIRouter, WebSocket

from services.api.devices.connection import DeviceKind
from services.api.devices.deps import DeviceHubDep

router = APIRouter(tags=["device websockets"])


@router.websocket("/ws/drone/{drone_id}")
async def drone_socket(websocket: WebSocket, drone_id: str, hub: DeviceHubDep) -> None:
    """`drone_id` is the drone's serial (`deviceSerialNumber`); it need not be registered."""
    await hub.serve(websocket, DeviceKind.DRONE, drone_id)


@router.websocket("/ws/application/{app_id}")
async def application_socket(websocket: WebSocket, app_id: str, hub: DeviceHubDep) -> None:
    await hub.serve(websocket, DeviceKind.APPLICATION, app_id)
