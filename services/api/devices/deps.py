"""Typed dependencies for the device WebSockets and the endpoints that read their state."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from services.api.devices.hub import DeviceHub
from shared.runtime import Runtime


def get_device_hub(connection: HTTPConnection) -> DeviceHub:
    hub: DeviceHub = connection.app.state.device_hub
    return hub


def get_runtime(connection: HTTPConnection) -> Runtime:
    runtime: Runtime = connection.app.state.runtime
    return runtime


DeviceHubDep = Annotated[DeviceHub, Depends(get_device_hub)]
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
