"""One error tree, rendered by one handler as `{"error": "<Type>", "detail": "..."}`.

Expected errors are raised as `DroneCastError` subclasses and never become a 500.
"""

from __future__ import annotations

from typing import Any


class DroneCastError(Exception):
    status_code = 400
    error = "BadRequest"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.error, "detail": self.detail, **self.extra}


class NotFound(DroneCastError):
    status_code = 404
    error = "NotFound"


class Conflict(DroneCastError):
    status_code = 409
    error = "Conflict"


class InvalidInput(DroneCastError):
    status_code = 422
    error = "ValidationError"


class Unauthorized(DroneCastError):
    status_code = 401
    error = "Unauthorized"


class Forbidden(DroneCastError):
    status_code = 403
    error = "Forbidden"


class PayloadTooLarge(DroneCastError):
    status_code = 413
    error = "PayloadTooLarge"


class UnsupportedMediaType(DroneCastError):
    status_code = 415
    error = "UnsupportedMediaType"


class RateLimited(DroneCastError):
    status_code = 429
    error = "RateLimited"


class Unavailable(DroneCastError):
    status_code = 503
    error = "ServiceUnavailable"
