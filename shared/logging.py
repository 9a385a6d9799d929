"""Structured logs: one JSON object per line, with keyword fields.

log = get_logger(__name__)
log.info("drone_registered", serial="SN1", drone_id="...")
"""

from __future__ import annotations

import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson

# The id of the request (or device message) being handled, added to every log line under it.
request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


# What a credential looks like wherever a library may print it: a `token=` query parameter
# (uvicorn logs WebSocket paths with their query), an Authorization header value, and any JWT
# (a Socket.IO `auth` payload in a frame dump at DEBUG, an exception's text).
_CREDENTIALS = re.compile(
    r"(?P<query>(?:\b|_)token=)[^&\s\"'\\]+"
    r"|(?P<scheme>\bBearer\s+)[^\s\"',;\\]+"
    r"|eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*",
    re.IGNORECASE,
)
REDACTED = "[redacted]"


def _redact_match(match: re.Match[str]) -> str:
    return (match.group("query") or match.group("scheme") or "") + REDACTED


class Redactor:
    """Takes credentials out of a finished log line: tokens (as above) and the process's own
    secrets (SECRET_KEY), at every level and from every library's logger."""

    def __init__(self, secrets: tuple[str, ...] = ()) -> None:
        self.secrets = tuple(secret for secret in secrets if len(secret) >= 8)

    def __call__(self, line: str) -> str:
        line = _CREDENTIALS.sub(_redact_match, line)
        for secret in self.secrets:
            line = line.replace(secret, REDACTED)
        return line


class JsonFormatter(logging.Formatter):
    def __init__(self, redact: Redactor | None = None) -> None:
        super().__init__()
        self.redact = redact or Redactor()

    def format(self, record: logging.LogRecord) -> str:
        return self.redact(self._format(record))

    def _format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if fields:
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class PlainFormatter(JsonFormatter):
    def _format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None) or {}
        extra = " ".join(f"{key}={value}" for key, value in fields.items())
        line = f"{record.levelname.lower():7} {record.name}: {record.getMessage()} {extra}".rstrip()
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class StructuredLogger:
    """A thin wrapper so call sites pass fields as keywords."""

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger

    def _log(self, level: int, event: str, exc_info: bool, fields: dict[str, Any]) -> None:
        if self._logger.isEnabledFor(level):
            current_request = request_id.get()
            if current_request is not None:
                fields = {"request_id": current_request, **fields}
            self._logger.log(level, event, exc_info=exc_info, extra={"fields": fields})

    def debug(self, event: str, /, **fields: Any) -> None:
        self._log(logging.DEBUG, event, False, fields)

    def info(self, event: str, /, **fields: Any) -> None:
        self._log(logging.INFO, event, False, fields)

    def warning(self, event: str, /, **fields: Any) -> None:
        self._log(logging.WARNING, event, False, fields)

    def error(self, event: str, /, **fields: Any) -> None:
        self._log(logging.ERROR, event, False, fields)

    def exception(self, event: str, /, **fields: Any) -> None:
        self._log(logging.ERROR, event, True, fields)


def get_logger(name: str) -> StructuredLogger:
    return StructuredLogger(logging.getLogger(name))


def configure_logging(
    level: str = "INFO", json_format: bool = True, secrets: tuple[str, ...] = ()
) -> None:
    """Every log line of the process to stderr, one per line, credentials and `secrets`
    redacted."""
    handler = logging.StreamHandler(sys.stderr)
    redact = Redactor(secrets)
    handler.setFormatter(JsonFormatter(redact) if json_format else PlainFormatter(redact))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn's own loggers go through the same handler, in the same format.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
