"""Types every domain's bodies share."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema
from typing_extensions import TypeAliasType

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")
_MAX_DEPTH = 32


def naive_utc(moment: datetime) -> datetime:
    """Store UTC without tzinfo (what MongoDB hands back); a naive time is taken as UTC."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    if moment.microsecond % 1000:  # most times come in whole milliseconds: no copy then
        moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    return moment


def time_window(since: datetime | None, until: datetime | None) -> dict[str, datetime] | None:
    """The MongoDB range `since <= t <= until` of a list filter, or None without bounds."""
    window: dict[str, datetime] = {}
    if since is not None:
        window["$gte"] = naive_utc(since)
    if until is not None:
        window["$lte"] = naive_utc(until)
    return window or None


def _iso_8601_only(value: Any) -> Any:
    """pydantic would also take a number (or a numeric string) as Unix time; the schema says
    ISO 8601, so only that is accepted."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _ISO_DATE.match(value):
        raise ValueError("must be an ISO 8601 date-time, e.g. 2026-01-01T12:00:00Z")
    return value


IsoDatetime = Annotated[datetime, BeforeValidator(_iso_8601_only)]
UtcDatetime = Annotated[datetime, BeforeValidator(_iso_8601_only), AfterValidator(naive_utc)]


Int64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]


def _as_double(value: Any) -> Any:
    """A whole number beyond 64 bits is kept as a double, as a JavaScript client would read
    it (MongoDB has no bigger integer); one beyond a double's range is refused."""
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:
            raise ValueError("number too large") from None
    return value


# Any other number: a fraction, or a whole number beyond 64 bits (then a double). The schema
# says "number", so what it calls valid is what we accept.
Fraction = Annotated[
    float,
    BeforeValidator(_as_double),
    Field(allow_inf_nan=False),
    WithJsonSchema({"type": "number"}),
]
# Not a MongoDB operator, no NUL.
Key = Annotated[str, Field(pattern=r"^([^$\x00][^\x00]*)?$", max_length=256)]
# Keys that do not match are refused, and the schema says so (not just "patternProperties").
JsonObject = TypeAliasType(
    "JsonObject",
    "Annotated[dict[Key, JsonValue], Field(json_schema_extra={'additionalProperties': False})]",
)
JsonValue = TypeAliasType(
    "JsonValue",
    "str | bool | Int64 | Fraction | list[JsonValue] | JsonObject | None",
)


def _depth(value: Any, depth: int = 0) -> None:
    if depth > _MAX_DEPTH:
        raise ValueError(f"nested deeper than {_MAX_DEPTH} levels")
    children = (
        value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    )
    for child in children:
        _depth(child, depth + 1)


def _bounded(value: dict[str, Any]) -> dict[str, Any]:
    _depth(value)
    return value


# Free-form JSON a client hands us to keep (task input, result data): any JSON object that
# MongoDB stores as given: 64-bit integers, no operator keys, bounded nesting. The schema says
# so too, so what it calls valid is what we accept.
StorableDocument = Annotated[JsonObject, AfterValidator(_bounded)]
