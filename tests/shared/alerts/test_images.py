"""Alert images are kept in GridFS's own layout: pymongo's GridFSBucket reads what the image
repository writes, and the repository reads what GridFSBucket writes (several chunks each)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import gridfs
import httpx
import pymongo

from shared.alerts.images import image_repository, image_type
from tests.conftest import REAL_MONGODB_URI


@contextlib.contextmanager
def official_bucket(api_client: httpx.AsyncClient) -> Iterator[gridfs.GridFSBucket]:
    """pymongo's own (synchronous) GridFSBucket on the database the api uses."""
    handle: Any = api_client.app.state.runtime.database.handle  # type: ignore[attr-defined]
    if REAL_MONGODB_URI:
        with pymongo.MongoClient(REAL_MONGODB_URI) as client:
            yield gridfs.GridFSBucket(client[handle.name], bucket_name="alertImages")
    else:
        from mongomock_motor import enabled_gridfs_integration

        with enabled_gridfs_integration():  # lets gridfs accept the in-process engine
            yield gridfs.GridFSBucket(handle.delegate, bucket_name="alertImages")


PICTURE = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 3000  # 768 KB: four chunks


async def test_pymongos_gridfs_reads_a_stored_image(api_client: httpx.AsyncClient) -> None:
    meta = {"contentType": "image/png", "alert_id": "alert_1", "drone_id": "d1"}
    await image_repository.put("alert_1.png", PICTURE, meta)
    with official_bucket(api_client) as bucket:
        stream = bucket.open_download_stream_by_name("alert_1.png")
        assert stream.read() == PICTURE
        assert stream.metadata == meta and stream.chunk_size == 255 * 1024


async def test_an_image_gridfs_wrote_is_read_and_served(api_client: httpx.AsyncClient) -> None:
    meta = {"contentType": "image/png", "alert_id": "alert_2", "drone_id": "d2"}
    with official_bucket(api_client) as bucket:
        bucket.upload_from_stream("alert_2.png", PICTURE, metadata=meta)
    stored = await image_repository.get("alert_2.png")
    assert stored is not None and stored.data == PICTURE
    assert (stored.media_type, stored.drone_id) == ("image/png", "d2")
    served = await api_client.get("/uploads/alert_2.png")
    assert served.content == PICTURE


def test_the_three_formats_are_told_by_their_first_bytes() -> None:
    assert image_type(b"\xff\xd8\xff\xdb rest") == "image/jpeg"
    assert image_type(b"\x89PNG\r\n\x1a\n rest") == "image/png"
    assert image_type(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image/webp"
    assert image_type(b"GIF89a") is None and image_type(b"RIFF\x00\x00\x00\x00WAVE") is None
