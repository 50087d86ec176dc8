"""The objects port (cdn images): S3 in production, a local directory in the embedded profile."""

from emporium.chassis.blob.base import (
    BlobInfo,
    BlobNotFound,
    BlobStore,
    check_key,
    check_metadata,
)
from emporium.chassis.blob.factory import open_blob

__all__ = ["BlobInfo", "BlobNotFound", "BlobStore", "check_key", "check_metadata", "open_blob"]
