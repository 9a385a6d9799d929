"""The device hub as a typed dependency (kept beside the hub: importing it from
services/api/deps.py would tie every route module to the device code)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from services.api.devices.hub import DeviceHub


def get_device_hub(connection: HTTPConnection) -> DeviceHub:
    hub: DeviceHub = connection.app.state.device_hub
    return hub


DeviceHubDep = Annotated[DeviceHub, Depends(get_device_hub)]
