"""Nudges on `device_nudge_channel("drone", serial)`: tell whichever replica holds a drone's
socket to look at the database, which is the truth. A lost nudge delays, never loses: each
replica also checks its drones' pending commands every lease renewal.
"""

from __future__ import annotations

from typing import Any

import orjson

from shared.broker import Broker, BrokerUnavailable
from shared.channels import device_nudge_channel
from shared.logging import get_logger

log = get_logger(__name__)

DRONE = "drone"
COMMANDS = "commands"  # the drone has pending commands
SESSION = "session"  # a newer connection owns the drone; older sockets must close


async def nudge_drone(broker: Broker, drone_id: str, what: str, **fields: Any) -> None:
    try:
        await broker.notify(
            device_nudge_channel(DRONE, drone_id), orjson.dumps({"what": what, **fields})
        )
    except BrokerUnavailable as exc:
        log.warning("nudge_failed", drone_id=drone_id, what=what, error=str(exc))


def parse_nudge(payload: bytes) -> dict[str, Any]:
    try:
        decoded = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return {}
    return decoded if isinstance(decoded, dict) else {}
