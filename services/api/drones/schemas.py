"""Request and response bodies for drones (seed 001 field names, camelCase)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictInt

from shared.channels import ALL

SERIAL_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"


def _not_reserved(serial: str) -> str:
    if serial.lower() == ALL:
        raise ValueError(f"'{serial}' is reserved for fleet-wide channels (drone:all:*)")
    return serial


Serial = Annotated[
    str,
    Field(pattern=SERIAL_PATTERN, description="1-64 of [A-Za-z0-9_.-]; unique; 'all' is reserved"),
    AfterValidator(_not_reserved),
]
DetectionClass = Annotated[StrictInt, Field(ge=0, le=1_000_000)]
ShortText = Annotated[str, Field(max_length=200)]


class DroneCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    deviceSerialNumber: Serial
    deviceName: ShortText | None = None
    deviceCategory: ShortText | None = None
    streamIsOn: StrictBool = False
    aiDetectionEnabled: StrictBool = False
    detectionClasses: list[DetectionClass] = Field(default_factory=list, max_length=1000)


class DroneUpdate(BaseModel):
    """Only the fields sent are changed. Server-kept fields and the serial cannot be set."""

    model_config = ConfigDict(extra="forbid")

    deviceName: ShortText | None = None
    deviceCategory: ShortText | None = None
    streamIsOn: StrictBool | None = None
    aiDetectionEnabled: StrictBool | None = None
    detectionClasses: list[DetectionClass] | None = Field(None, max_length=1000)


NOT_NULL_FIELDS = ("streamIsOn", "aiDetectionEnabled", "detectionClasses")


class DroneOut(BaseModel):
    id: str
    deviceSerialNumber: str
    deviceName: str | None
    deviceCategory: str | None
    streamIsOn: bool
    aiDetectionEnabled: bool
    detectionClasses: list[int]
    online: bool
    lastSeenAt: str | None
    createdAt: str
    updatedAt: str


class DroneList(BaseModel):
    drones: list[DroneOut]
    count: int = Field(description="Drones in this page")
    total: int = Field(description="Drones matching the filters")
    limit: int
    offset: int
