"""Alert images: what is accepted (JPEG, PNG or WebP, told by their first bytes, not their name
or the declared type) and where they are kept (GridFS bucket `alertImages`; see
shared/models/image.py). Served at `/uploads/{filename}`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from beanie import SortDirection
from bson import ObjectId

from shared.errors import PayloadTooLarge, UnsupportedMediaType
from shared.models.image import CHUNK_SIZE, ImageChunk, ImageFile

UPLOADS_PATH = "/uploads"
EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}


def image_type(data: bytes) -> str | None:
    """The image's media type from its magic bytes; None if it is none of the three."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def checked_image(data: bytes, max_bytes: int) -> str:
    """The media type of acceptable image bytes; 413 or 415 otherwise."""
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"an image may hold at most {max_bytes} bytes (MAX_IMAGE_BYTES)")
    kind = image_type(data)
    if kind is None:
        raise UnsupportedMediaType("the image must be JPEG, PNG or WebP (judged by its content)")
    return kind


def image_filename(alert_id: str, media_type: str) -> str:
    return f"{alert_id}.{EXTENSIONS[media_type]}"


def image_url(filename: str) -> str:
    return f"{UPLOADS_PATH}/{filename}"


@dataclass
class StoredImage:
    filename: str
    media_type: str
    drone_id: str
    alert_id: str
    data: bytes
    uploaded_at: datetime
    file_id: str


class ImageRepository:
    """The two GridFS collections. Chunks are written before their files document, so an
    image is visible only once it is whole (as GridFS writers do)."""

    async def put(self, filename: str, data: bytes, metadata: dict[str, Any]) -> str:
        file_id = ObjectId()
        chunks = [
            ImageChunk(files_id=file_id, n=n, data=data[start : start + CHUNK_SIZE])
            for n, start in enumerate(range(0, len(data), CHUNK_SIZE))
        ]
        if chunks:
            await ImageChunk.insert_many(chunks)
        await ImageFile(id=file_id, length=len(data), filename=filename, metadata=metadata).insert()
        return str(file_id)

    async def get(self, filename: str) -> StoredImage | None:
        """The newest file of that name (GridFS's revision -1), whole."""
        found = (
            await ImageFile.find(ImageFile.filename == filename)
            .sort([("uploadDate", SortDirection.DESCENDING)])
            .limit(1)
            .to_list()
        )
        if not found:
            return None
        file = found[0]
        chunks = (
            await ImageChunk.find(ImageChunk.files_id == file.id)
            .sort([("n", SortDirection.ASCENDING)])
            .to_list()
        )
        data = b"".join(chunk.data for chunk in chunks)
        if len(data) != file.length:
            return None  # half-written or damaged: not served
        meta = file.metadata
        return StoredImage(
            filename=file.filename,
            media_type=str(meta.get("contentType", "application/octet-stream")),
            drone_id=str(meta.get("drone_id", "")),
            alert_id=str(meta.get("alert_id", "")),
            data=data,
            uploaded_at=file.uploadDate,
            file_id=str(file.id),
        )

    async def delete(self, file_id: str) -> None:
        oid = ObjectId(file_id)
        await ImageFile.find(ImageFile.id == oid).delete()
        await ImageChunk.find(ImageChunk.files_id == oid).delete()


image_repository = ImageRepository()
