"""Objects in a local directory: the embedded profile's blob store.

Layout: object `a/b.png` is the file `<root>/a/b.png~obj` with its sidecar
`<root>/a/b.png~meta.json` (size, etag, content type, metadata, last modified). `~` is not
allowed in keys (see `check_key`), so the object `a` and the folder of `a/...` never collide,
as S3 allows both. Each file is written to a temporary file, flushed to disk and renamed into
place, so a crash never leaves a torn object. A store's directory belongs to one process (the
embedded profile runs one process per service); inside it a lock keeps the data file and its
sidecar consistent for readers.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from emporium.chassis.blob.base import (
    BlobInfo,
    BlobNotFound,
    BlobStore,
    check_key,
    check_metadata,
)

_DATA = "~obj"
_META = "~meta.json"


class DirectoryBlobStore(BlobStore):
    """A blob store rooted at `root` (created on first use)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()

    async def ping(self) -> None:
        await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)
        if not os.access(self.root, os.W_OK):
            raise OSError(f"blob directory {self.root} is not writable")

    async def put(
        self,
        key: str,
        data: bytes,
        content_type: str = "application/octet-stream",
        metadata: Mapping[str, str] | None = None,
    ) -> BlobInfo:
        info = BlobInfo(
            key=check_key(key),
            size=len(data),
            etag=hashlib.md5(data, usedforsecurity=False).hexdigest(),
            content_type=content_type,
            last_modified=datetime.now(UTC),
            metadata=check_metadata(metadata),
        )
        await asyncio.to_thread(self._write, info, data)
        return info

    async def get(self, key: str) -> tuple[bytes, BlobInfo]:
        found = await asyncio.to_thread(self._read, check_key(key))
        if found is None:
            raise BlobNotFound(key)
        return found

    async def head(self, key: str) -> BlobInfo | None:
        return await asyncio.to_thread(self._read_info, check_key(key))

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._delete, check_key(key))

    async def list(self, prefix: str = "") -> list[BlobInfo]:
        return await asyncio.to_thread(self._list, prefix)

    # -- blocking helpers, run in a worker thread -------------------------------------------

    def _path(self, key: str, suffix: str) -> Path:
        return self.root.joinpath(*key.split("/")).with_name(key.rsplit("/", 1)[-1] + suffix)

    def _write(self, info: BlobInfo, data: bytes) -> None:
        target = self._path(info.key, _DATA)
        target.parent.mkdir(parents=True, exist_ok=True)
        sidecar = json.dumps(_info_to_json(info)).encode()
        with self._lock:
            _atomic_write(target, data)
            _atomic_write(self._path(info.key, _META), sidecar)

    def _read(self, key: str) -> tuple[bytes, BlobInfo] | None:
        with self._lock:
            info = self._read_info_unlocked(key)
            if info is None:
                return None
            return self._path(key, _DATA).read_bytes(), info

    def _read_info(self, key: str) -> BlobInfo | None:
        with self._lock:
            return self._read_info_unlocked(key)

    def _read_info_unlocked(self, key: str) -> BlobInfo | None:
        try:
            raw = self._path(key, _META).read_bytes()
        except FileNotFoundError:
            return None
        return _info_from_json(key, json.loads(raw))

    def _delete(self, key: str) -> None:
        with self._lock:
            for suffix in (_META, _DATA):
                self._path(key, suffix).unlink(missing_ok=True)
            self._prune_empty_parents(self._path(key, _DATA).parent)

    def _prune_empty_parents(self, folder: Path) -> None:
        while folder != self.root and self.root in folder.parents:
            try:
                folder.rmdir()  # only succeeds when empty
            except OSError:
                return
            folder = folder.parent

    def _list(self, prefix: str) -> builtins.list[BlobInfo]:
        # Walk only below the deepest folder the prefix names completely.
        start = self.root.joinpath(*prefix.split("/")[:-1]) if "/" in prefix else self.root
        if ".." in prefix.split("/") or not start.is_dir():
            return []
        found: builtins.list[BlobInfo] = []
        with self._lock:
            for meta in start.rglob("*" + _META):
                key = meta.relative_to(self.root).as_posix()[: -len(_META)]
                if key.startswith(prefix):
                    found.append(_info_from_json(key, json.loads(meta.read_bytes())))
        return sorted(found, key=lambda i: i.key)


def _atomic_write(target: Path, data: bytes) -> None:
    """Write `data` to `target` so readers see the old file or the new one, never a part."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix="~part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _info_to_json(info: BlobInfo) -> dict[str, Any]:
    return {
        "size": info.size,
        "etag": info.etag,
        "content_type": info.content_type,
        "last_modified": info.last_modified.isoformat(),
        "metadata": info.metadata,
    }


def _info_from_json(key: str, raw: dict[str, Any]) -> BlobInfo:
    return BlobInfo(
        key=key,
        size=int(raw["size"]),
        etag=str(raw["etag"]),
        content_type=str(raw["content_type"]),
        last_modified=datetime.fromisoformat(raw["last_modified"]),
        metadata={str(k): str(v) for k, v in raw.get("metadata", {}).items()},
    )
