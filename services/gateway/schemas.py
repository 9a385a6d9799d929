"""What a Socket.IO client may send (seed 001's `subscribe` / `unsubscribe`, plus recovery)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from shared.drones.schemas import Serial
from shared.events import EVENT_ID_RE

EventId = Annotated[str, Field(pattern=EVENT_ID_RE.pattern, max_length=42)]


class SubscribeRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    all: StrictBool = False
    droneSerial: Serial | None = None
    droneSerials: list[Serial] = Field(default_factory=list, max_length=10_000)
    lastEventId: EventId | None = None
    snapshot: StrictBool = False

    @model_validator(mode="after")
    def _has_target(self) -> SubscribeRequest:
        if not self.all and not self.droneSerial and not self.droneSerials:
            raise ValueError("say what to subscribe to: {all: true}, droneSerial or droneSerials")
        return self

    @property
    def serials(self) -> set[str]:
        serials = set(self.droneSerials)
        if self.droneSerial:
            serials.add(self.droneSerial)
        return serials
