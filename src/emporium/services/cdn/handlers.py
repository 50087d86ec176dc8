"""Use cases of cdn-service: accept an upload, serve an image (or a rendition), and forget a
deleted product's images.

The blob store has no transactions; every write here is idempotent by construction:
originals and renditions live under content-addressed keys (writing them again writes the
same bytes), and product links are named by product and digest.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from emporium.chassis.errors import DomainError, not_found
from emporium.chassis.rpc.identity import require_admin
from emporium.contracts.events import ProductUpdatedV1
from emporium.services.cdn.domain import (
    CACHE_CONTROL,
    check_product_id,
    inspect_upload,
    not_modified,
    parse_image_name,
    render,
    rendition_etag,
    rendition_width,
)
from emporium.services.cdn.store import ImageStore, StoredImage

log = logging.getLogger(__name__)


async def upload_image(images: ImageStore, product_id: str, data: bytes) -> StoredImage:
    """Admin only. Judge the bytes (415/413), store the original once, link the product.

    The declared content type and file name are deliberately not consulted: the bytes decide.
    """
    require_admin()
    if product_id:
        check_product_id(product_id)
    info = await asyncio.to_thread(inspect_upload, data)  # decoding pixels is CPU work
    stored = await images.save_original(info, data)
    if product_id:
        await images.link(product_id, info)
    log.info(
        "image stored",
        extra={"image_id": info.digest, "product_id": product_id, "bytes": info.size},
    )
    return stored


async def image_meta(images: ImageStore, image_id: str) -> StoredImage:
    """What is known about a stored original (public: the bytes are public too)."""
    found = await images.find_digest(image_id.lower()) if len(image_id) == 64 else None
    if found is None:
        raise not_found(f"no image {image_id!r}")
    return found


@dataclass(frozen=True)
class ServedImage:
    """One HTTP answer for an image: 200 with `body`, or 304 (empty body)."""

    status: int
    etag: str
    content_type: str
    body: bytes = b""
    cache_control: str = CACHE_CONTROL


async def serve_image(
    images: ImageStore, name: str, width_param: str | None, if_none_match: str | None
) -> ServedImage:
    """`GET /images/<digest>.<ext>[?w=]`: 404 unknown, 400 bad `w`, 304 when unchanged.

    A rendition is rendered on first request and kept in the blob store, so each
    (image, width) is rendered once however many caches ask for it.
    """
    parsed = parse_image_name(name)
    stored = await images.find(*parsed) if parsed else None
    if stored is None:
        raise not_found(f"no image {name!r}")
    info = stored.info
    width = rendition_width(width_param, info.width)
    etag = rendition_etag(info, width)
    if not_modified(if_none_match, etag):
        return ServedImage(304, etag, info.content_type)
    if width is None:
        return ServedImage(200, etag, info.content_type, await images.original(info))
    body = await images.rendition(info, width)
    if body is None:
        original = await images.original(info)
        body = await asyncio.to_thread(render, original, info, width)
        await images.save_rendition(info, width, body)
    return ServedImage(200, etag, info.content_type, body)


async def forget_deleted_product(images: ImageStore, event: ProductUpdatedV1) -> int:
    """On `product.updated` with `deleted`: drop the product's image links (not the bytes,
    which another product may share and which cached pages may still show). Other updates
    need nothing here. Idempotent: a second delivery finds no links left."""
    if not event.deleted:
        return 0
    try:
        check_product_id(event.product_id)
    except DomainError:
        return 0  # an id we could never have linked
    removed = await images.unlink_all(event.product_id)
    log.info("deleted product's image links removed", extra={"product_id": event.product_id})
    return removed
