"""The in-process MongoDB engine: mongomock-motor, adapted to what beanie 2 calls.

beanie 2 speaks pymongo's async API, which differs from motor's in two places we hit:
`list_collection_names` takes keyword options, and `aggregate` is awaited to get a cursor.
"""

from __future__ import annotations

from typing import Any

from mongomock_motor import AsyncMongoMockClient, AsyncMongoMockCollection, AsyncMongoMockDatabase


class _Collection(AsyncMongoMockCollection):
    async def aggregate(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        return super().aggregate(*args, **kwargs)


class _Database(AsyncMongoMockDatabase):
    def get_collection(self, *args: Any, **kwargs: Any) -> Any:
        return _Collection(self, self.delegate.get_collection(*args, **kwargs))  # type: ignore[arg-type]

    async def list_collection_names(  # type: ignore[override]
        self, filter: Any = None, **_: Any
    ) -> list[str]:
        names: list[str] = self.delegate.list_collection_names(filter=filter)
        return names


class EmbeddedMongoClient(AsyncMongoMockClient):
    def get_database(self, *args: Any, **kwargs: Any) -> Any:
        return _Database(self, super().get_database(*args, **kwargs).delegate)

    def close(self) -> None:
        return None
