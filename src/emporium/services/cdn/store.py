"""The image objects of cdn-service: every read and write of the blob port.

Layout (keys from `domain`): `images/<sha256>.<ext>` the original (metadata: width,
height), `renditions/<sha256>/w<width>.<ext>` a cached rendition, and
`products/<product id>/<sha256>.<ext>` an empty link saying the product uses that image.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from emporium.chassis.blob.base import BlobNotFound, BlobStore
from emporium.services.cdn.domain import (
    ImageInfo,
    image_metadata,
    object_key,
    product_link_key,
    stored_image,
)


@dataclass(frozen=True)
class StoredImage:
    info: ImageInfo
    stored_at: datetime


class ImageStore:
    """The repository over the blob port (a directory or an S3 bucket)."""

    def __init__(self, blobs: BlobStore) -> None:
        self.blobs = blobs

    async def find(self, digest: str, extension: str) -> StoredImage | None:
        """The original named `<digest>.<extension>`, or None."""
        head = await self.blobs.head(f"images/{digest}.{extension}")
        if head is None:
            return None
        info = stored_image(digest, extension, head.size, head.metadata)
        return None if info is None else StoredImage(info, head.last_modified)

    async def find_digest(self, digest: str) -> StoredImage | None:
        """The original with this digest, whatever its extension."""
        for candidate in await self.blobs.list(f"images/{digest}."):
            extension = candidate.key.rsplit(".", 1)[-1]
            found = await self.find(digest, extension)
            if found is not None:
                return found
        return None

    async def save_original(self, info: ImageInfo, data: bytes) -> StoredImage:
        """Store the bytes once: the key is their hash, so an existing object is the same."""
        existing = await self.find(info.digest, info.extension)
        if existing is not None:
            return existing
        stored = await self.blobs.put(
            object_key(info), data, info.content_type, image_metadata(info)
        )
        return StoredImage(info, stored.last_modified)

    async def original(self, info: ImageInfo) -> bytes:
        data, _ = await self.blobs.get(object_key(info))
        return data

    async def rendition(self, info: ImageInfo, width: int) -> bytes | None:
        try:
            data, _ = await self.blobs.get(object_key(info, width))
        except BlobNotFound:
            return None
        return data

    async def save_rendition(self, info: ImageInfo, width: int, data: bytes) -> None:
        await self.blobs.put(object_key(info, width), data, info.content_type)

    async def link(self, product_id: str, info: ImageInfo) -> None:
        await self.blobs.put(product_link_key(product_id, info), b"", "application/x-empty")

    async def linked(self, product_id: str) -> list[str]:
        """Names (`<digest>.<ext>`) of the images linked to the product."""
        prefix = product_link_key(product_id)
        return [b.key[len(prefix) :] for b in await self.blobs.list(prefix)]

    async def unlink_all(self, product_id: str) -> int:
        """Remove the product's links (never the shared bytes); how many there were."""
        links = await self.blobs.list(product_link_key(product_id))
        for blob in links:
            await self.blobs.delete(blob.key)
        return len(links)
