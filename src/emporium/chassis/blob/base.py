"""The small interface both object-store adapters implement.

Semantics the code relies on (checked on every adapter by tests/adapters/test_blob.py):
keys are relative, `/`-separated paths; `put` replaces an object whole (readers see the old
or the new bytes, never a mix); the etag is the MD5 hex of the bytes, as S3 reports it for a
single-part upload, so equal content has equal etags on both adapters; the content type and
the string metadata given to `put` come back from `get`, `head` and `list`.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from emporium.chassis.errors import DomainError, ErrorCode, FieldError, invalid

_SEGMENT = re.compile(r"^[A-Za-z0-9._=+@,-]+$")
_META_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
MAX_KEY_LENGTH = 1024


@dataclass(frozen=True)
class BlobInfo:
    """What a store knows about one object, without its bytes."""

    key: str
    size: int
    etag: str
    content_type: str
    last_modified: datetime
    metadata: dict[str, str] = field(default_factory=dict)


class BlobNotFound(DomainError):
    """`get` of a key that holds no object; a NOT_FOUND domain error (404 at the edge)."""

    def __init__(self, key: str) -> None:
        super().__init__(f"no object with key {key!r}", ErrorCode.NOT_FOUND, "blob_not_found")
        self.key = key


def check_key(key: str) -> str:
    """Return `key` if it is a safe relative object key, else raise an INVALID_ARGUMENT error.

    Both adapters apply the same rule so a key that works in the embedded profile works on S3
    and never escapes the directory store's root: non-empty `/`-separated segments of
    letters, digits and `._=+@,-`, no `.` or `..` segment, no leading `/`.
    """
    segments = key.split("/")
    ok = (
        0 < len(key) <= MAX_KEY_LENGTH
        and all(_SEGMENT.match(s) for s in segments)
        and not any(s in (".", "..") for s in segments)
    )
    if not ok:
        raise invalid(f"invalid object key {key!r}", FieldError("key", "not a safe relative key"))
    return key


def check_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    """User metadata as both adapters keep it: lower-case keys, ASCII values.

    S3 sends metadata as HTTP headers (`x-amz-meta-*`), which lower-cases the names and only
    carries ASCII, so the directory store applies the same rule to behave the same.
    """
    clean: dict[str, str] = {}
    for name, value in (metadata or {}).items():
        lowered = name.lower()
        if not _META_NAME.match(lowered) or not value.isascii() or "\n" in value:
            raise invalid(
                f"invalid metadata {name!r}",
                FieldError(f"metadata.{name}", "names: [a-z0-9-]; values: one line of ASCII"),
            )
        clean[lowered] = value
    return clean


class BlobStore(ABC):
    """A bucket of objects addressed by key."""

    @abstractmethod
    async def ping(self) -> None:
        """Raise if the store is unreachable (used by health checks)."""

    @abstractmethod
    async def put(
        self,
        key: str,
        data: bytes,
        content_type: str = "application/octet-stream",
        metadata: Mapping[str, str] | None = None,
    ) -> BlobInfo:
        """Store `data` under `key`, replacing any previous object atomically."""

    @abstractmethod
    async def get(self, key: str) -> tuple[bytes, BlobInfo]:
        """The bytes and info of `key`; raises BlobNotFound when there is none."""

    @abstractmethod
    async def head(self, key: str) -> BlobInfo | None:
        """The info of `key`, or None when there is no such object."""

    @abstractmethod
    async def delete(self, key: str) -> None:
        """Remove `key`; deleting a missing key is not an error (as on S3)."""

    @abstractmethod
    async def list(self, prefix: str = "") -> list[BlobInfo]:
        """Every object whose key starts with `prefix`, sorted by key."""

    async def close(self) -> None:  # noqa: B027 - optional hook, most stores hold nothing
        """Release connections; the store is unusable afterwards."""
