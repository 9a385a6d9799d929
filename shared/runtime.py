"""What a process connects to: the database and the broker, created and closed by a lifespan.

`dronecast dev` builds one Runtime and shares it between the api, the gateway and the worker,
which is how the embedded store and broker are seen by all three.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared.broker import Broker, create_broker
from shared.db import Database, connect_database
from shared.settings import Settings


@dataclass
class Runtime:
    settings: Settings
    broker: Broker
    database: Database | None = None
    draining: bool = False
    warnings: list[str] = field(default_factory=list)
    # A MongoDB client to share (tests run several api instances over one embedded engine).
    mongo_client: Any = None

    @classmethod
    def create(cls, settings: Settings, mongo_client: Any = None) -> Runtime:
        runtime = cls(settings=settings, broker=create_broker(settings), mongo_client=mongo_client)
        if not settings.auth_enabled:
            runtime.warnings.append("AUTH_ENABLED=false: every request is trusted")
        if settings.embedded_store:
            runtime.warnings.append("embedded MongoDB engine: data is kept in memory only")
        if settings.embedded_broker:
            runtime.warnings.append("embedded broker: events stay inside this process")
        return runtime

    async def start(self, with_database: bool = True) -> None:
        await self.broker.start()
        if with_database:
            self.database = await connect_database(self.settings, self.mongo_client)

    async def stop(self) -> None:
        await self.broker.close()
        if self.database is not None and self.mongo_client is None:
            await self.database.close()

    async def readiness(self) -> dict[str, bool]:
        checks = {"redis": await self.broker.ping()}
        if self.database is not None:
            checks["mongodb"] = await self.database.ping()
        return checks
