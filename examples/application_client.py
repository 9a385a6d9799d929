#!/usr/bin/env python3
"""An application on DroneCast's device WebSocket (hear alerts, answer them).

It connects to `/ws/application/{app_id}`, hears every alert as `alert_update`, decides what
the drone should do (a stand-in for a decision model), and sends a `response`; DroneCast
turns it into a `command` for the drone, wherever it is connected. It then sees the alert
responded and, once the drone sends its image, completed.

    dronecast dev &
    python examples/application_client.py --once &
    python examples/drone_client.py --once
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

ACTIONS = {
    "intrusion": ["activate_security_system", "notify_authorities", "record_video"],
    "fire": ["activate_fire_suppression", "notify_fire_department", "evacuate_area"],
    "accident": ["notify_emergency_services", "record_evidence", "secure_area"],
    "security_breach": ["lockdown_area", "notify_security", "track_intruder"],
    "environmental": ["monitor_conditions", "adjust_environmental_controls"],
}


def ws_url(http_url: str, path: str, token: str | None) -> str:
    base = http_url.rstrip("/").replace("https://", "wss://", 1).replace("http://", "ws://", 1)
    return f"{base}{path}?welcome=1" + (f"&token={token}" if token else "")


def say(*parts: Any) -> None:
    print("[application]", *parts, flush=True)


def decide(alert: dict[str, Any]) -> list[str]:
    """What the drone should do: a rule-based stand-in for a decision model."""
    actions = ACTIONS.get(alert["alert_type"], ["investigate", "monitor_closely"])
    return actions if alert["score"] > 0.5 else ["monitor_closely", "record_video"]


async def run(args: argparse.Namespace) -> int:
    url = ws_url(args.url, f"/ws/application/{args.app_id}", args.token)
    say(f"connecting to {url}")
    async with connect(url) as ws:
        async for frame in ws:
            if await handle(ws, json.loads(frame), args):
                return 0
    say("the server closed the connection")
    return 1


async def handle(ws: ClientConnection, message: dict[str, Any], args: argparse.Namespace) -> bool:
    """Returns True when done (--once and an alert completed)."""
    kind = message.get("type")
    if kind == "ping":
        await ws.send(json.dumps({"type": "pong"}))
    elif kind == "connection_established":
        say(f"connected as {message['client_id']}; waiting for alerts")
    elif kind == "alert_update":
        alert = message["data"]
        say(f"{message['event']}: {alert['alert_id']} {alert['alert_type']} "
            f"score={alert['score']} severity={alert['severity']} drone={alert['drone_id']} "
            f"status={alert['status']}")  # fmt: skip
        if message["event"] == "alert.created":
            actions = decide(alert)
            await ws.send(
                json.dumps(
                    {
                        "type": "response",
                        "alert_id": alert["alert_id"],
                        "data": {"actions": actions, "response": 1},
                    }
                )
            )
            say(f"response sent: {actions}")
        elif message["event"] == "alert.completed":
            say(f"image received for {alert['alert_id']}: {alert['image_url']}")
            return bool(args.once)
    elif kind == "ack":
        say(f"response stored: {message['alert_id']} status={message['data']['status']}")
    elif kind == "error":
        say(f"error from the server: {message['error']}: {message['detail']}")
    else:
        say(f"message: {message}")
    return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="DroneCast's base URL")
    parser.add_argument("--app-id", default="app_001", help="this application's id")
    parser.add_argument("--token", default=None, help="bearer token when auth is on")
    parser.add_argument("--once", action="store_true", help="exit after one completed alert")
    parser.add_argument("--timeout", type=float, default=120.0, help="with --once: give up after")
    args = parser.parse_args()
    try:
        return asyncio.run(asyncio.wait_for(run(args), args.timeout if args.once else None))
    except TimeoutError:
        say(f"no alert completed within {args.timeout}s")
        return 1
    except (OSError, ConnectionClosed) as exc:
        say(f"connection failed: {exc}")
        return 1
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
