"""One error tree for everything the client raises.

The server answers a bad request with `{"error": "<Type>", "detail": "..."}`: over REST with an
HTTP status, on a device socket as `{"type": "error", ...}`. Both become the same exception
class, chosen by the error's name (then by the status), so `except NotFound` works for either.
"""

from __future__ import annotations

from typing import Any


class DroneCastError(Exception):
    """Base of every error this package raises."""


class TransportError(DroneCastError):
    """DroneCast could not be reached, or the connection broke before an answer came."""


class ConnectionLost(TransportError):
    """The socket closed while a message that must not be sent twice waited for its answer:
    it may or may not have been applied (an `alert` raised twice would be two alerts)."""


class ClientClosed(DroneCastError):
    """The client was closed; it sends and receives nothing more."""


class APIError(DroneCastError):
    """DroneCast refused a request. `status_code` is the HTTP status (None on a socket),
    `error` the server's error name, `detail` its explanation."""

    status_code: int | None = None
    default_error = "Error"

    def __init__(
        self,
        detail: str,
        *,
        error: str | None = None,
        status_code: int | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        self.error = error or self.default_error
        self.detail = detail
        if status_code is not None:
            self.status_code = status_code
        self.body: dict[str, Any] = body or {"error": self.error, "detail": detail}
        super().__init__(f"{self.error}: {detail}")


class BadRequest(APIError):
    status_code = 400
    default_error = "BadRequest"


class Unauthorized(APIError):
    status_code = 401
    default_error = "Unauthorized"


class Forbidden(APIError):
    status_code = 403
    default_error = "Forbidden"


class NotFound(APIError):
    status_code = 404
    default_error = "NotFound"


class Conflict(APIError):
    status_code = 409
    default_error = "Conflict"


class PayloadTooLarge(APIError):
    status_code = 413
    default_error = "PayloadTooLarge"


class UnsupportedMediaType(APIError):
    status_code = 415
    default_error = "UnsupportedMediaType"


class ValidationError(APIError):
    status_code = 422
    default_error = "ValidationError"


class RateLimited(APIError):
    status_code = 429
    default_error = "RateLimited"

    @property
    def retry_after(self) -> float | None:
        value = self.body.get("retry_after")
        return float(value) if isinstance(value, int | float) else None


class ServiceUnavailable(APIError):
    status_code = 503
    default_error = "ServiceUnavailable"


class ServerError(APIError):
    """An unexpected answer (5xx, or not the API's JSON)."""

    status_code = 500
    default_error = "ServerError"


_BY_NAME: dict[str, type[APIError]] = {
    cls.default_error: cls
    for cls in (
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        Conflict,
        PayloadTooLarge,
        UnsupportedMediaType,
        ValidationError,
        RateLimited,
        ServiceUnavailable,
    )
}
_BY_NAME.update(
    {
        # Names a device socket uses for what REST would call a 400 or 422.
        "UnknownMessageType": BadRequest,
        "UnsupportedFrame": BadRequest,
        "InvalidSubscribe": BadRequest,
        "InvalidUnsubscribe": BadRequest,
        "TooManyConnections": RateLimited,
        "TooManySubscriptions": RateLimited,
    }
)
_BY_STATUS: dict[int, type[APIError]] = {
    cls.status_code: cls for cls in _BY_NAME.values() if cls.status_code is not None
}


def error_from(body: Any, status_code: int | None = None) -> APIError:
    """The exception for an error body (`{"error", "detail", ...}`) and HTTP status."""
    if not isinstance(body, dict):
        body = {"error": "ServerError", "detail": str(body)[:500]}
    name = str(body.get("error") or "")
    detail = str(body.get("detail") or body.get("message") or name or "no detail")
    cls = _BY_NAME.get(name)
    if cls is None and status_code is not None:
        cls = _BY_STATUS.get(status_code, ServerError if status_code >= 500 else BadRequest)
    return (cls or BadRequest)(detail, error=name or None, status_code=status_code, body=body)
