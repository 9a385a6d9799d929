"""Bearer JWTs (HS256 with SECRET_KEY): issue, verify, and the principal they describe.

Claims: `sub`, `role`, `drones` (serials, or "*"), `exp`, `iat`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import jwt

from shared.errors import Forbidden, NotFound, Unauthorized
from shared.settings import Settings

ALGORITHM = "HS256"


class Role(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    VIEWER = "viewer"
    APPLICATION = "application"
    DRONE = "drone"
    DETECTOR = "detector"


class Action(StrEnum):
    READ = "read"  # GET anything about the drones in scope
    SUBSCRIBE = "subscribe"  # Socket.IO events of the drones in scope
    MANAGE_DRONES = "manage_drones"  # register, update, delete
    RESPOND = "respond"  # respond to alerts
    RAISE_ALERTS = "raise_alerts"  # create alerts, attach images
    MANAGE_TASKS = "manage_tasks"  # create and cancel processing tasks
    ACT_AS_DRONE = "act_as_drone"  # the drone WebSocket, task status and results
    SEND_TELEMETRY = "send_telemetry"  # sensor readings (seed 004), for the drones in scope


ROLE_ACTIONS: dict[Role, frozenset[Action]] = {
    Role.ADMIN: frozenset(Action),
    Role.OPERATOR: frozenset(
        {Action.READ, Action.SUBSCRIBE, Action.MANAGE_DRONES, Action.RESPOND, Action.MANAGE_TASKS}
    ),
    Role.VIEWER: frozenset({Action.READ, Action.SUBSCRIBE}),
    Role.APPLICATION: frozenset(
        {Action.READ, Action.SUBSCRIBE, Action.RESPOND, Action.MANAGE_TASKS}
    ),
    # A drone's token names only itself, so what it reads and hears is its own.
    Role.DRONE: frozenset(
        {
            Action.READ,
            Action.SUBSCRIBE,
            Action.ACT_AS_DRONE,
            Action.RAISE_ALERTS,
            Action.SEND_TELEMETRY,
        }
    ),
    Role.DETECTOR: frozenset({Action.READ, Action.SUBSCRIBE}),
}


@dataclass(frozen=True, slots=True)
class Principal:
    sub: str
    role: Role
    drones: frozenset[str] | None  # None: every drone ("*")

    def may_see(self, serial: str) -> bool:
        return self.drones is None or serial in self.drones

    def can(self, action: Action) -> bool:
        return action in ROLE_ACTIONS[self.role]

    def require(self, action: Action, serial: str | None = None) -> None:
        """Refuse what this principal may not do: 403 for the action, and 404 for a drone
        outside its scope (whether that drone exists is not its business)."""
        if not self.can(action):
            raise Forbidden(f"role '{self.role.value}' may not {action.value.replace('_', ' ')}")
        if serial is not None and not self.may_see(serial):
            raise NotFound(f"no drone '{serial}'")


# Who everyone is when AUTH_ENABLED=false (the embedded default says so loudly).
ANONYMOUS_ADMIN = Principal(sub="anonymous", role=Role.ADMIN, drones=None)


def issue_token(
    settings: Settings,
    role: Role,
    sub: str,
    drones: list[str] | None,
    ttl_seconds: int = 3600,
) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": sub,
        "role": role.value,
        "drones": "*" if drones is None else sorted(set(drones)),
        "iat": now,
        "exp": now + ttl_seconds,
    }
    return jwt.encode(claims, settings.secret_key, algorithm=ALGORITHM)


def verify_token(settings: Settings, token: str) -> Principal:
    try:
        claims = jwt.decode(
            token,
            settings.secret_key,
            algorithms=[ALGORITHM],
            options={"require": ["exp", "sub", "role"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("token expired") from exc
    except jwt.InvalidTokenError as exc:
        # Plain: the decoder's words (encodings, byte offsets) help no client and show internals.
        raise Unauthorized("invalid token") from exc
    try:
        role = Role(claims["role"])
    except ValueError as exc:
        raise Unauthorized(f"unknown role '{claims['role']}'") from exc
    drones = claims.get("drones", [])
    if drones == "*":
        scope = None
    elif isinstance(drones, list) and all(isinstance(serial, str) for serial in drones):
        scope = frozenset(drones)
    else:
        raise Unauthorized("claim 'drones' must be a list of serials or '*'")
    return Principal(sub=str(claims["sub"]), role=role, drones=scope)


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
