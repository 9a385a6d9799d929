"""The in-process MongoDB engine: mongomock-motor, adapted to what beanie 2 calls and to the
volumes telemetry writes.

beanie 2 speaks pymongo's async API, which differs from motor's in two places we hit:
`list_collection_names` takes keyword options, and `aggregate` is awaited to get a cursor.

Two costs of mongomock would make telemetry's cost per reading grow with what is stored:
- it checks every TTL index on *every* access, scanning the whole collection each time; here
  expiry runs at most once per `TTL_MONITOR_SECONDS`, as MongoDB's own TTL monitor does (every
  60 s there);
- its insert validates and copies each document field by field. An unordered `insert_many`
  (what the telemetry consumer uses) into a collection with no unique index other than `_id`
  takes the documents as given: BSON-encoded once to check them, then stored under their `_id`,
  duplicates refused one by one like MongoDB (`BulkWriteError`, code 11000).
- it keeps every document as Python objects, which the cyclic garbage collector would walk in
  each full collection, a pause that grows with what is stored although documents (plain
  dicts, lists and scalars) are freed by reference counting alone. After every
  `_FREEZE_EVERY` documents taken by the lean path, `gc.freeze()` moves what exists to the
  permanent generation, so collection pauses stay independent of the store's size.
Neither changes what a query sees; the same code runs against a real MongoDB.
"""

from __future__ import annotations

import gc
import time
from typing import Any

import bson
from mongomock import store as mongomock_store
from mongomock_motor import AsyncMongoMockClient, AsyncMongoMockCollection, AsyncMongoMockDatabase
from pymongo.errors import BulkWriteError
from pymongo.results import InsertManyResult

TTL_MONITOR_SECONDS = 60.0
_FREEZE_EVERY = 20_000
_unfrozen = 0

_expire_now = mongomock_store.CollectionStore._remove_expired_documents


def _expire_like_mongodb(store: Any) -> None:
    now = time.monotonic()
    if now - getattr(store, "_dronecast_expired_at", float("-inf")) < TTL_MONITOR_SECONDS:
        return
    store._dronecast_expired_at = now
    _expire_now(store)


def _mongomock_collection(collection: Any) -> Any:
    """The mongomock collection behind mongomock-motor's wrapper (`.delegate` would be a
    sub-collection named "delegate")."""
    return collection._AsyncMongoMockCollection__collection


def expire_now(collection: Any) -> None:
    """Run the TTL monitor for `collection` at once (tests)."""
    store = _mongomock_collection(collection)._store
    store._dronecast_expired_at = time.monotonic()
    _expire_now(store)


mongomock_store.CollectionStore._remove_expired_documents = _expire_like_mongodb  # type: ignore[method-assign]


class _Collection(AsyncMongoMockCollection):
    async def aggregate(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        return super().aggregate(*args, **kwargs)

    async def insert_many(  # type: ignore[override]
        self, documents: Any, ordered: bool = True, **kwargs: Any
    ) -> Any:
        store = _mongomock_collection(self)._store
        unique = any(index.get("unique") for index in store.indexes.values())
        if ordered or unique or kwargs:
            return await super().insert_many(documents, ordered=ordered, **kwargs)
        stored = store._documents
        inserted, errors = [], []
        for position, document in enumerate(documents):
            bson.encode(document)  # refuses what MongoDB would not store
            key = document["_id"]
            if key in stored:
                errors.append({"index": position, "code": 11000, "errmsg": "E11000 duplicate key"})
                continue
            stored[key] = document
            inserted.append(key)
        global _unfrozen
        _unfrozen += len(inserted)
        if _unfrozen >= _FREEZE_EVERY:
            _unfrozen = 0
            gc.freeze()
        if errors:
            raise BulkWriteError({"writeErrors": errors, "nInserted": len(inserted)})
        return InsertManyResult(inserted, acknowledged=True)


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
