"""The in-process MongoDB engine: mongomock-motor, adapted to what beanie 2 calls and to the
volumes telemetry writes.

beanie 2 speaks pymongo's async API, which differs from motor's in two places we hit:
`list_collection_names` takes keyword options, and `aggregate` is awaited to get a cursor.

Two costs of mongomock would make telemetry's cost per reading grow with what is stored:
- it checks every TTL index on *every* access, scanning the whole collection each time; here
  expiry runs at most once per `TTL_MONITOR_SECONDS`, as MongoDB's own TTL monitor does (every
  60 s there), and costs what expires rather than what is stored: each TTL field has a heap of
  (value, _id) kept by every write, which MongoDB's TTL index is (a scan of a million readings
  paused the process for ~0.5 s a minute);
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
import heapq
import itertools
import time
from datetime import UTC, datetime
from typing import Any

import bson
from mongomock import collection as mongomock_collection
from mongomock import store as mongomock_store
from mongomock_motor import AsyncMongoMockClient, AsyncMongoMockCollection, AsyncMongoMockDatabase
from pymongo.errors import BulkWriteError
from pymongo.results import InsertManyResult

TTL_MONITOR_SECONDS = 60.0
_FREEZE_EVERY = 20_000
_unfrozen = 0

_Store = mongomock_store.CollectionStore
_set_document = _Store.__setitem__
_drop_store = _Store.drop
_order = itertools.count()  # ties in a heap never compare documents' ids
_mongomock_update = mongomock_collection.Collection._update


def _ttl_key(value: Any) -> datetime | None:
    """When a document's TTL field makes it expire, as MongoDB reads it (the earliest date of
    an array), naive UTC; None when it never does (absent, not a date)."""
    if isinstance(value, list):
        dates = [_ttl_key(item) for item in value if isinstance(item, datetime)]
        return min((d for d in dates if d is not None), default=None)
    if not isinstance(value, datetime):
        return None
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def _heaps(store: Any) -> dict[str, list[tuple[datetime, int, Any]]]:
    heaps: dict[str, list[tuple[datetime, int, Any]]] | None = getattr(
        store, "_dronecast_ttl_heaps", None
    )
    if heaps is None:
        heaps = store._dronecast_ttl_heaps = {}
    return heaps


def _remember(store: Any, document: Any) -> None:
    """Put a written document in the heap of each TTL field (an update that moves its date
    adds an entry; the stale one is checked against the document when it comes up)."""
    for field, heap in _heaps(store).items():
        key = _ttl_key(document.get(field))
        if key is not None:
            heapq.heappush(heap, (key, next(_order), document["_id"]))


def _set_and_remember(store: Any, key: Any, document: Any) -> None:
    _set_document(store, key, document)
    _remember(store, document)


def _drop_and_forget(store: Any) -> None:
    _drop_store(store)
    _heaps(store).clear()


def _expire(store: Any, field: str, expire_after: int, now: datetime) -> None:
    heaps = _heaps(store)
    heap = heaps.get(field)
    if heap is None:  # first time for this field: one scan of what is there already
        heap = heaps[field] = []
        for document in list(store._documents.values()):
            key = _ttl_key(document.get(field))
            if key is not None:
                heap.append((key, next(_order), document["_id"]))
        heapq.heapify(heap)
    cutoff = now.timestamp() - expire_after
    documents = store._documents
    while heap and heap[0][0].replace(tzinfo=UTC).timestamp() <= cutoff:
        _, _, key = heapq.heappop(heap)
        document = documents.get(key)
        if document is None:
            continue  # deleted since
        current = _ttl_key(document.get(field))
        if current is None:
            continue  # no longer expires
        if current.replace(tzinfo=UTC).timestamp() <= cutoff:
            del store[key]
        else:  # updated in place to a later date: its turn comes then
            heapq.heappush(heap, (current, next(_order), key))


def _update_and_mark(collection: Any, *args: Any, **kwargs: Any) -> Any:
    """mongomock changes documents in place on update: a store written to that way has its
    heaps rebuilt (one scan) at its next expiry. Telemetry readings are never updated."""
    try:
        return _mongomock_update(collection, *args, **kwargs)
    finally:
        collection._store._dronecast_ttl_dirty = True


def _expire_due(store: Any) -> None:
    """What mongomock's `_remove_expired_documents` does, at the cost of what expires."""
    if getattr(store, "_dronecast_ttl_dirty", False):
        store._dronecast_ttl_dirty = False
        _heaps(store).clear()
    now = datetime.now(UTC)
    for index in list(store._ttl_indexes.values()):
        try:
            expire_after = int(index["expireAfterSeconds"])
        except (TypeError, ValueError):
            continue
        if len(index["key"]) != 1:
            continue  # as MongoDB: TTL on one field only
        _expire(store, next(iter(index["key"]))[0], expire_after, now)


def _expire_like_mongodb(store: Any) -> None:
    now = time.monotonic()
    if now - getattr(store, "_dronecast_expired_at", float("-inf")) < TTL_MONITOR_SECONDS:
        return
    store._dronecast_expired_at = now
    _expire_due(store)


def _mongomock_collection(collection: Any) -> Any:
    """The mongomock collection behind mongomock-motor's wrapper (`.delegate` would be a
    sub-collection named "delegate")."""
    return collection._AsyncMongoMockCollection__collection


def expire_now(collection: Any) -> None:
    """Run the TTL monitor for `collection` at once (tests)."""
    store = _mongomock_collection(collection)._store
    store._dronecast_expired_at = time.monotonic()
    _expire_due(store)


_Store._remove_expired_documents = _expire_like_mongodb  # type: ignore[method-assign]
_Store.__setitem__ = _set_and_remember  # type: ignore[method-assign]
_Store.drop = _drop_and_forget  # type: ignore[method-assign]
mongomock_collection.Collection._update = _update_and_mark  # type: ignore[method-assign,assignment]


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
            _remember(store, document)
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
