"""Pick the blob store a URL names: `file://<dir>` (embedded) or `s3://<bucket>?...`."""

from __future__ import annotations

from urllib.parse import urlsplit

from emporium.chassis.blob.base import BlobStore
from emporium.chassis.config import url_path


def open_blob(url: str) -> BlobStore:
    """A blob store for `url`; nothing is connected until first use.

    `s3://bucket?endpoint_url=...&region=...&create_bucket=true` (see `blob.s3`);
    `file:///abs/dir` or `file://relative/dir`.
    """
    scheme = urlsplit(url).scheme
    if scheme == "file":
        from emporium.chassis.blob.directory import DirectoryBlobStore

        return DirectoryBlobStore(url_path(url))
    if scheme == "s3":
        from emporium.chassis.blob.s3 import S3BlobStore, S3Location

        return S3BlobStore(S3Location.from_url(url))
    raise ValueError(f"unsupported blob URL scheme {scheme!r} in {url!r}; expected file or s3")
