"""MongoDB through beanie: a real server when MONGODB_URI is set, the in-process engine otherwise.

The rest of the code never knows which one it has.
"""

from __future__ import annotations

from typing import Any

from beanie import init_beanie
from pymongo import AsyncMongoClient

from shared.logging import get_logger
from shared.models import DOCUMENT_MODELS
from shared.mongo_embedded import EmbeddedMongoClient
from shared.settings import Settings

log = get_logger(__name__)


class Database:
    def __init__(self, client: Any, name: str) -> None:
        self.client = client
        self.name = name

    @property
    def handle(self) -> Any:
        return self.client[self.name]

    async def ping(self) -> bool:
        try:
            await self.handle.command("ping")
        except Exception:  # any driver error means "not ready"; the probe reports it
            return False
        return True

    async def close(self) -> None:
        result = self.client.close()
        if hasattr(result, "__await__"):
            await result


async def connect_database(settings: Settings, client: Any = None) -> Database:
    """Connect and initialise beanie. `client` lets one process share an embedded engine."""
    if client is None:
        if settings.embedded_store:
            client = EmbeddedMongoClient()
            log.warning("embedded_mongodb", detail="in-process engine: data lives in memory only")
        else:
            client = AsyncMongoClient(
                settings.mongodb_uri, serverSelectionTimeoutMS=5000, tz_aware=False
            )
    database = Database(client, settings.database_name)
    await init_beanie(database=database.handle, document_models=DOCUMENT_MODELS)
    return database
