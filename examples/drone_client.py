#!/usr/bin/env python3
"""A drone on DroneCast's device WebSocket: raise an alert, carry out the command, send a picture.

It connects to `/ws/drone/{drone_id}`, raises an alert, waits for the command an application
sends back, "executes" it, and reports the image, which completes the alert. It answers the
server's heartbeat pings, so a vanished drone is noticed quickly.

    dronecast dev &
    python examples/application_client.py --once &
    python examples/drone_client.py --once

Without --once it raises an alert every --interval seconds until interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

ALERT_TYPES = ["intrusion", "fire", "accident", "security_breach", "environmental"]
# A 1x1 PNG: what the camera "took".
PICTURE = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGNgYGAAAAAEAAH2FzhVAAAAAElFTkSuQmCC"
)


def ws_url(http_url: str, path: str, token: str | None) -> str:
    base = http_url.rstrip("/").replace("https://", "wss://", 1).replace("http://", "ws://", 1)
    return f"{base}{path}?welcome=1" + (f"&token={token}" if token else "")


def say(*parts: Any) -> None:
    print("[drone]", *parts, flush=True)


class Drone:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.sent = 0
        self.completed = 0

    async def run(self) -> int:
        url = ws_url(self.args.url, f"/ws/drone/{self.args.drone_id}", self.args.token)
        say(f"connecting to {url}")
        async with connect(url) as ws:
            await ws.send(json.dumps({"type": "ping", "data": {"drone_id": self.args.drone_id}}))
            await self.raise_alert(ws)
            async for frame in ws:
                if await self.handle(ws, json.loads(frame)):
                    return 0
        say("the server closed the connection")
        return 1

    async def raise_alert(self, ws: ClientConnection) -> None:
        n = self.sent
        alert: dict[str, Any] = {
            "type": "alert",
            "data": {
                "alert_type": ALERT_TYPES[n % len(ALERT_TYPES)],
                "score": round(0.7 + (n * 0.1) % 0.3, 2),
                "location": {"lat": 40.7128 + n * 0.001, "lng": -74.0060 + n * 0.001},
                "drone_id": self.args.drone_id,
                "description": f"Simulated {ALERT_TYPES[n % len(ALERT_TYPES)]} alert #{n + 1}",
            },
        }
        self.sent += 1
        await ws.send(json.dumps(alert))
        say(f"alert sent: {alert['data']['alert_type']} score={alert['data']['score']}")

    async def handle(self, ws: ClientConnection, message: dict[str, Any]) -> bool:
        """Returns True when the drone is done (--once and its alert completed)."""
        kind = message.get("type")
        if kind == "ping":
            await ws.send(json.dumps({"type": "pong"}))
        elif kind == "pong":
            say("server answered our ping")
        elif kind == "connection_established":
            say(f"connected as {message['client_id']} (session {message['session'][:8]})")
        elif kind == "ack" and message.get("for") == "alert":
            say(f"alert stored: {message['alert_id']} status={message['data']['status']}")
        elif kind == "command":
            say(f"command for {message['alert_id']}: actions={message['actions']}")
            say("executing actions and taking a picture...")
            await asyncio.sleep(self.args.work_seconds)
            # The picture itself, base64: the server stores it and serves it at the alert's
            # image_url. (A picture kept elsewhere can be sent as {"image_url": ...} instead.)
            picture = {"alert_id": message["alert_id"], "image_data": PICTURE}
            await ws.send(json.dumps({"type": "image", "data": picture}))
            say(f"image sent: the picture for {message['alert_id']}")
        elif kind == "ack" and message.get("for") == "image":
            self.completed += 1
            data = message["data"]
            say(f"alert {message['alert_id']} is {data['status']}; picture at {data['image_url']}")
            if self.args.once:
                return True
            await asyncio.sleep(self.args.interval)
            await self.raise_alert(ws)
        elif kind == "error":
            say(f"error from the server: {message['error']}: {message['detail']}")
        else:
            say(f"message: {message}")
        return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="DroneCast's base URL")
    parser.add_argument("--drone-id", default="drone_001", help="the drone's serial")
    parser.add_argument("--token", default=None, help="bearer token when auth is on")
    parser.add_argument("--once", action="store_true", help="exit after one completed alert")
    parser.add_argument("--interval", type=float, default=30.0, help="seconds between alerts")
    parser.add_argument("--work-seconds", type=float, default=1.0, help="time to 'execute'")
    parser.add_argument("--timeout", type=float, default=60.0, help="give up after this long")
    args = parser.parse_args()
    try:
        timeout = args.timeout if args.once else None
        return asyncio.run(asyncio.wait_for(Drone(args).run(), timeout))
    except TimeoutError:
        say(f"no command within {args.timeout}s: is an application connected?")
        return 1
    except (OSError, ConnectionClosed) as exc:
        say(f"connection failed: {exc}")
        return 1
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
