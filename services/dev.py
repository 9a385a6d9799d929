"""`dronecast dev`: api, gateway and worker in one process, sharing one runtime.

With neither MONGODB_URI nor REDIS_URL set that runtime is the embedded store and broker, so the
whole product runs with nothing else installed.
"""

from __future__ import annotations

import socketio

from services.api.main import create_app
from services.gateway.server import SOCKETIO_PATH, Gateway
from services.worker.main import Worker
from shared.runtime import Runtime
from shared.settings import Settings


def create_dev_app(settings: Settings) -> socketio.ASGIApp:
    runtime = Runtime.create(settings)
    gateway = Gateway(settings, runtime.broker, runtime)
    worker = Worker(runtime, relay_outbox=False)  # the api in this process relays already
    api = create_app(settings, runtime=runtime, components=[runtime, gateway, worker])
    api.state.gateway = gateway
    api.state.worker = worker
    return socketio.ASGIApp(gateway.sio, other_asgi_app=api, socketio_path=SOCKETIO_PATH)
