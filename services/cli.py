"""`dronecast`: run the product or one of its services, or issue a token."""

from __future__ import annotations

import argparse
import contextlib
import socket
import sys
import textwrap
from collections.abc import Sequence

import uvicorn
from pydantic import ValidationError

from shared.settings import Settings, UnsafeSettings

ROLES = ("admin", "operator", "viewer", "application", "drone", "detector")
SERVICE_PORTS = {"dev": 8000, "api": 8000, "gateway": 8001, "worker": 8002}
DEV_HOST = "127.0.0.1"  # `dronecast dev` is for this machine; the services bind HOST


def settings_help() -> str:
    """Every setting, from the Settings class itself, so the list cannot drift from it."""
    from shared.settings import Settings

    lines = ["settings (from the environment, or a .env file in the working directory):"]
    for name, field in Settings.model_fields.items():
        lines.append(
            f"  {name.upper()} = {_shown(name, field.get_default(call_default_factory=True))}"
        )
        lines += textwrap.wrap(field.description or "", 88, initial_indent=" " * 6,
                               subsequent_indent=" " * 6)  # fmt: skip
    return "\n".join(lines)


def _shown(name: str, default: object) -> str:
    if name == "secret_key":
        return "(a development key)"
    if default in ("", None, []):
        return "(empty)"
    return str(default).lower() if isinstance(default, bool) else str(default)


DESCRIPTIONS = {
    "dev": "The whole product in one process on http://127.0.0.1:8000: the operations "
    "dashboard at /, REST, /docs, device WebSockets and Socket.IO at /ws/events. Embedded "
    "store and broker unless MONGODB_URI / REDIS_URL are set. Auth is off (say --auth to turn "
    "it on).",
    "api": "The REST + device WebSocket service and the dashboard at / (default port 8000). "
    "Needs MONGODB_URI and REDIS_URL.",
    "gateway": "The Socket.IO gateway at /ws/events (default port 8001). Needs MONGODB_URI and "
    "REDIS_URL.",
    "worker": "The worker: task routing, timeouts, outbox relay; serves probes and metrics "
    "(default port 8002). Needs MONGODB_URI and REDIS_URL.",
    "token": "Print a signed bearer token (HS256 with SECRET_KEY).",
    "simulate": "A simulated fleet against a running DroneCast: drones registered over REST "
    "and connected over their WebSocket, flights with telemetry at 1 Hz per sensor and "
    "injected faults, alerts answered by a simulated application, processing tasks. The same "
    "--seed gives the same fleet. One progress line on stderr; exits 0 after --duration.",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dronecast",
        description="DroneCast: the real-time event backbone for drone fleets.",
        epilog=settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("dev", "api", "gateway", "worker"):
        sub = commands.add_parser(
            name,
            help=DESCRIPTIONS[name],
            description=DESCRIPTIONS[name],
            epilog=settings_help(),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if name == "dev":
            host_help = f"listen address (default {DEV_HOST}: this machine only)"
        else:
            default_host = Settings.model_fields["host"].default
            host_help = f"listen address (HOST; default {default_host}: every interface)"
        sub.add_argument("--host", help=host_help)
        sub.add_argument(
            "--port", type=int, help=f"listen port (PORT; default {SERVICE_PORTS[name]})"
        )
        if name == "dev":
            sub.add_argument("--auth", action="store_true", help="require tokens (AUTH_ENABLED)")
    token = commands.add_parser(
        "token", help=DESCRIPTIONS["token"], description=DESCRIPTIONS["token"]
    )
    token.add_argument("--role", required=True, choices=ROLES)
    token.add_argument(
        "--drones",
        default=None,
        help="the drones the token may see and act for: comma-separated serials, or * for "
        "every drone (default: * for admin; no drone for the other roles)",
    )
    token.add_argument("--sub", default=None, help="subject (default: the role)")
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600)")
    simulate = commands.add_parser(
        "simulate", help=DESCRIPTIONS["simulate"], description=DESCRIPTIONS["simulate"]
    )
    try:
        from dronecast_client.simulator import add_arguments
    except ImportError:  # the client is its own distribution; `make setup` installs it
        simulate.set_defaults(missing_client=True)
    else:
        add_arguments(simulate)
    return parser


def _simulate(args: argparse.Namespace) -> int:
    if getattr(args, "missing_client", False):
        print(
            "dronecast simulate needs the Python client: pip install -e clients/python",
            file=sys.stderr,
        )
        return 2
    from dronecast_client.simulator import run

    return run(args)


def _serve(command: str, args: argparse.Namespace) -> None:
    from shared.logging import configure_logging

    overrides: dict[str, object] = {}
    if command == "dev":
        overrides = {"environment": "dev", "auth_enabled": bool(args.auth), "cors_origins": ["*"]}
    settings = Settings(**overrides)  # type: ignore[arg-type]
    if command != "dev":
        settings.refuse_embedded_in_production()
    configure_logging(settings.log_level, settings.log_json, secrets=(settings.secret_key,))
    host = args.host or (settings.host if command != "dev" else DEV_HOST)
    port = args.port or settings.port or SERVICE_PORTS[command]
    if command == "dev":
        from services.dev import create_dev_app

        app: object = create_dev_app(settings)
        print(
            f"DroneCast dev on http://{host}:{port}  (dashboard: /, docs: /docs, "
            "Socket.IO: /ws/events)\n"
            + (
                "  AUTH IS OFF: every request is trusted. Use --auth to require tokens.\n"
                if not settings.auth_enabled
                else ""
            ),
            file=sys.stderr,
        )
    elif command == "api":
        from services.api.main import create_app

        app = create_app(settings)
    elif command == "gateway":
        from services.gateway.main import create_gateway_app

        app = create_gateway_app(settings)
    else:
        from services.worker.main import create_worker_app

        app = create_worker_app(settings)
    from services.gateway.wire import WebSocketProtocol

    config = uvicorn.Config(
        app,  # type: ignore[arg-type]
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        backlog=settings.accept_backlog,
        timeout_graceful_shutdown=int(settings.drain_seconds) or None,
        timeout_keep_alive=settings.http_keep_alive_seconds,
        # A device frame over MAX_BODY_BYTES (a drone's image message: over the picture's size
        # limit) is answered with an `error` message and the socket stays open; one over this
        # ceiling is not read at all (close 1009).
        ws_max_size=settings.device_frame_ceiling,
        # Compression is per connection: it would redo, for every recipient, the frame the
        # gateway encodes once per event. socket.io's Node server ships with it off too.
        ws_per_message_deflate=False,
        # Socket.IO WebSocket clients get the gateway's lean connection
        # (services/gateway/wire.py); every other WebSocket gets uvicorn's websockets-sansio.
        ws=WebSocketProtocol,
    )
    ready = f"==> DroneCast is ready on http://{host}:{port}" if command == "dev" else None
    server = _Server(config, ready)
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    if not server.started:
        raise SystemExit(3)  # as uvicorn.run: it could not start (port taken, bad settings)


class _Server(uvicorn.Server):
    """uvicorn's server, saying once when it serves (for someone waiting at a terminal)."""

    def __init__(self, config: uvicorn.Config, ready_line: str | None) -> None:
        super().__init__(config)
        self.ready_line = ready_line

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self.ready_line:
            print(self.ready_line, file=sys.stderr, flush=True)


def _token(args: argparse.Namespace) -> None:
    from shared.auth import Role, issue_token

    settings = Settings()
    role = Role(args.role)
    given = args.drones if args.drones is not None else ("*" if role is Role.ADMIN else "")
    drones = None if given.strip() == "*" else [s for s in given.split(",") if s.strip()]
    if drones == []:
        print(
            f"dronecast: note: this {role.value} token may see no drone (--drones names them)",
            file=sys.stderr,
        )
    print(issue_token(settings, role, args.sub or role.value, drones, args.ttl))


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        if args.command == "token":
            _token(args)
        elif args.command == "simulate":
            raise SystemExit(_simulate(args))
        else:
            _serve(args.command, args)
    except ValidationError as exc:
        print(f"dronecast: {describe_settings_error(exc)}", file=sys.stderr)
        raise SystemExit(2) from exc
    except UnsafeSettings as exc:
        print(f"dronecast: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc


def describe_settings_error(error: ValidationError) -> str:
    """pydantic's report in one line: each bad setting by its environment name, and why."""
    parts = []
    for problem in error.errors():
        name = ".".join(str(part) for part in problem.get("loc", ())).upper()
        message = str(problem["msg"]).removeprefix("Value error, ")
        parts.append(f"{name}: {message}" if name else message)
    return "invalid settings: " + "; ".join(parts)


if __name__ == "__main__":
    main()
