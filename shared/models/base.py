"""What every document with events has: an outbox, and a soft-delete marker.

A change and the events it causes are written in one single-document update (the outbox), so an
event whose write succeeded cannot be lost; see `shared/outbox.py`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field


def utcnow() -> datetime:
    # MongoDB keeps milliseconds; trimming here makes what we return equal what we read back.
    now = datetime.now(UTC).replace(tzinfo=None)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class OutboxMixin(BaseModel):
    # Bumped by every change; updates compare-and-set on it so diffs and events are exact.
    version: int = 0
    outbox: list[dict[str, Any]] = Field(default_factory=list)
    deletedAt: datetime | None = None
