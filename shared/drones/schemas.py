"""Request and response bodies for drones (seed 001 field names, camelCase)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
)

from shared.channels import ALL

SERIAL_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"


def _not_reserved(serial: str) -> str:
    if serial.lower() == ALL:
        raise ValueError(f"'{serial}' is reserved for fleet-wide channels (drone:all:*)")
    return serial


def not_nullable(schema: dict[str, Any]) -> None:
    """JSON Schema for an optional field that may be omitted but not sent as null."""
    options = schema.pop("anyOf", [])
    schema.update(next((option for option in options if option.get("type") != "null"), {}))
    schema.pop("default", None)


Serial = Annotated[
    str,
    Field(pattern=SERIAL_PATTERN, description="1-64 of [A-Za-z0-9_.-]; unique; 'all' is reserved"),
    AfterValidator(_not_reserved),
]


def _whole_number(value: object) -> object:
    # JSON has one number type: 3.0 is the integer 3 (JSON Schema agrees); 3.5 and "3" are not.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


DetectionClass = Annotated[StrictInt, Field(ge=0, le=1_000_000), BeforeValidator(_whole_number)]
DetectionClasses = Annotated[list[DetectionClass], Field(max_length=1000)]
ShortText = Annotated[str, Field(max_length=200)]


class DroneCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    deviceSerialNumber: Serial
    deviceName: ShortText | None = None
    deviceCategory: ShortText | None = None
    streamIsOn: StrictBool = False
    aiDetectionEnabled: StrictBool = False
    detectionClasses: DetectionClasses = Field(default_factory=list)


class DroneUpdate(BaseModel):
    """Only the fields sent are changed. Server-kept fields and the serial cannot be set."""

    model_config = ConfigDict(extra="forbid")

    deviceName: ShortText | None = None
    deviceCategory: ShortText | None = None
    # May be left out, never null: the schema says so, and the service refuses a null.
    streamIsOn: StrictBool | None = Field(None, json_schema_extra=not_nullable)
    aiDetectionEnabled: StrictBool | None = Field(None, json_schema_extra=not_nullable)
    detectionClasses: DetectionClasses | None = Field(None, json_schema_extra=not_nullable)


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
