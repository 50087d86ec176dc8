"""Image rules of cdn-service: what counts as an image, where it is stored, how it is cached.

An upload is judged by its bytes, never by its file name or declared content type: Pillow
must recognise it as JPEG, PNG or WebP and its pixels must decode. Objects are
content-addressed (the SHA-256 of the bytes is the key and the ETag), so a URL never changes
meaning and can be cached forever (`immutable`). Renditions (`?w=`) are snapped to a small
set of widths so a client cannot make us render and store one image per possible integer,
and are never wider than the original (no upscaling).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from emporium.chassis.errors import DomainError, ErrorCode, FieldError, invalid

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_PIXELS = 40_000_000  # refuse decompression bombs long before memory runs out
RENDITION_WIDTHS = (64, 128, 256, 512, 1024, 2048)
CACHE_CONTROL = "public, max-age=31536000, immutable"

_FORMATS = {
    "JPEG": ("image/jpeg", "jpg"),
    "PNG": ("image/png", "png"),
    "WEBP": ("image/webp", "webp"),
}


@dataclass(frozen=True)
class ImageInfo:
    """What we learned from an accepted upload."""

    digest: str  # hex SHA-256 of the original bytes; also the strong ETag
    content_type: str
    extension: str
    width: int
    height: int
    size: int

    @property
    def etag(self) -> str:
        return f'"{self.digest}"'


def too_large(size: int) -> DomainError:
    return DomainError(
        f"image is {size} bytes; the limit is {MAX_UPLOAD_BYTES} bytes",
        ErrorCode.PAYLOAD_TOO_LARGE,
        "too_large",
        [FieldError("file", "larger than 10 MiB")],
    )


def not_an_image(detail: str) -> DomainError:
    return DomainError(
        f"not a JPEG, PNG or WebP image: {detail}",
        ErrorCode.UNSUPPORTED_MEDIA_TYPE,
        "not_an_image",
        [FieldError("file", "must be a JPEG, PNG or WebP image")],
    )


def inspect_upload(data: bytes) -> ImageInfo:
    """Accept the bytes as an image or raise 413/415 with the reason."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise too_large(len(data))
    if not data:
        raise not_an_image("empty file")
    try:
        with Image.open(io.BytesIO(data)) as image:
            fmt = image.format or ""
            width, height = image.size
            if fmt not in _FORMATS:
                raise not_an_image(f"format {fmt or 'unknown'}")
            if width * height > MAX_PIXELS:
                raise not_an_image(f"{width}x{height} pixels is too many")
            image.load()  # decode the pixels: a truncated or corrupt file fails here
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise not_an_image(type(exc).__name__) from exc
    content_type, extension = _FORMATS[fmt]
    digest = hashlib.sha256(data).hexdigest()
    return ImageInfo(digest, content_type, extension, width, height, len(data))


def object_key(info: ImageInfo, width: int | None = None) -> str:
    """Where the original (or a rendition) lives in the object store."""
    if width is None:
        return f"images/{info.digest}.{info.extension}"
    return f"renditions/{info.digest}/w{width}.{info.extension}"


def rendition_width(requested: str | None, original_width: int) -> int | None:
    """The width to serve for `?w=`: None means the original. The request is snapped up to
    the next allowed width and capped at the original width (no upscaling)."""
    if requested is None or requested == "":
        return None
    try:
        wanted = int(requested)
    except ValueError:
        raise invalid("w must be a positive integer", FieldError("w", "not an integer")) from None
    if wanted < 1 or wanted > RENDITION_WIDTHS[-1]:
        raise invalid(
            f"w must be between 1 and {RENDITION_WIDTHS[-1]}",
            FieldError("w", "out of range"),
        )
    snapped = next(w for w in RENDITION_WIDTHS if w >= wanted)
    if snapped >= original_width:
        return None
    return snapped


def render(data: bytes, info: ImageInfo, width: int) -> bytes:
    """Scale the original down to `width`, keeping the aspect ratio and the format."""
    with Image.open(io.BytesIO(data)) as image:
        height = max(1, round(image.height * width / image.width))
        resized = image.resize((width, height), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        fmt = "WEBP" if info.extension == "webp" else ("PNG" if info.extension == "png" else "JPEG")
        if fmt == "JPEG" and resized.mode not in ("RGB", "L"):
            resized = resized.convert("RGB")
        resized.save(out, format=fmt)
        return out.getvalue()


def rendition_etag(info: ImageInfo, width: int | None) -> str:
    """A strong ETag per representation: the digest, plus the width for a rendition."""
    return info.etag if width is None else f'"{info.digest}-w{width}"'


def not_modified(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 If-None-Match: weak comparison over a list, `*` matches anything."""
    if not if_none_match:
        return False
    candidates = [c.strip() for c in if_none_match.split(",")]
    bare = etag.removeprefix("W/")
    return any(c == "*" or c.removeprefix("W/") == bare for c in candidates)


# -- names, URLs and product links ------------------------------------------------------------

_EXTENSIONS = {ext: content_type for content_type, ext in _FORMATS.values()}
_HEX = frozenset("0123456789abcdef")
MAX_PRODUCT_ID_LENGTH = 128


def image_url(base_url: str, info: ImageInfo) -> str:
    """The public URL of the original: `<base>/images/<digest>.<ext>`."""
    return f"{base_url.rstrip('/')}/images/{info.digest}.{info.extension}"


def parse_image_name(name: str) -> tuple[str, str] | None:
    """`<digest>.<ext>` from a URL -> (digest, extension), or None if it cannot be ours."""
    digest, dot, extension = name.partition(".")
    if not dot or extension not in _EXTENSIONS:
        return None
    if len(digest) != 64 or not set(digest) <= _HEX:
        return None
    return digest, extension


def stored_image(
    digest: str, extension: str, size: int, metadata: dict[str, str]
) -> ImageInfo | None:
    """The ImageInfo of a stored original from its object metadata (None if unreadable)."""
    try:
        width, height = int(metadata["width"]), int(metadata["height"])
    except (KeyError, ValueError):
        return None
    return ImageInfo(digest, _EXTENSIONS[extension], extension, width, height, size)


def image_metadata(info: ImageInfo) -> dict[str, str]:
    """What the object store keeps next to an original, so serving never re-decodes it."""
    return {"width": str(info.width), "height": str(info.height)}


def check_product_id(product_id: str) -> str:
    """A product id usable in an object key (ids are opaque, but never paths)."""
    if (
        not product_id
        or len(product_id) > MAX_PRODUCT_ID_LENGTH
        or not all((c.isascii() and c.isalnum()) or c in "-_." for c in product_id)
        or product_id.strip(".") == ""
    ):
        raise invalid(
            "invalid product id",
            FieldError("product_id", "letters, digits, '-', '_' or '.', at most 128"),
        )
    return product_id


def product_link_key(product_id: str, info: ImageInfo | None = None) -> str:
    """The small object recording that `product_id` uses an image (or the prefix of all).

    Originals are shared by content (two products may upload the same bytes), so a product
    owns links, never bytes: removing a product removes its links only.
    """
    prefix = f"products/{product_id}/"
    return prefix if info is None else f"{prefix}{info.digest}.{info.extension}"
