"""Alert images, stored in GridFS's layout: bucket `alertImages`, i.e. the collections
`alertImages.files` (one document per image) and `alertImages.chunks` (its bytes, in chunks).

Any GridFS reader (pymongo's GridFSBucket, `mongofiles --prefix alertImages`) reads them, and
every api replica serves them. The documents are written with plain collection operations
(shared/alerts/images.py) rather than pymongo's AsyncGridFSBucket, because that one accepts
only a real pymongo database: this way the embedded engine stores the same documents through
the same code, and tests cover the one path there is.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from beanie import Document
from bson import ObjectId
from pydantic import ConfigDict, Field
from pymongo import ASCENDING, IndexModel

from shared.models.base import utcnow

IMAGE_BUCKET = "alertImages"
CHUNK_SIZE = 255 * 1024  # GridFS's default chunk size


class ImageFile(Document):
    """GridFS files document: `length`, `chunkSize`, `uploadDate`, `filename`, `metadata`."""

    model_config = ConfigDict(populate_by_name=True)

    length: int
    chunkSize: int = CHUNK_SIZE
    uploadDate: datetime = Field(default_factory=utcnow)
    filename: str
    metadata: dict[str, Any] = Field(default_factory=dict)

    class Settings:
        name = f"{IMAGE_BUCKET}.files"
        use_revision = False
        indexes = [IndexModel([("filename", ASCENDING), ("uploadDate", ASCENDING)])]


class ImageChunk(Document):
    """GridFS chunks document: chunk `n` of file `files_id`."""

    files_id: ObjectId
    n: int
    data: bytes

    model_config = ConfigDict(arbitrary_types_allowed=True)

    class Settings:
        name = f"{IMAGE_BUCKET}.chunks"
        use_revision = False
        indexes = [IndexModel([("files_id", ASCENDING), ("n", ASCENDING)], unique=True)]
