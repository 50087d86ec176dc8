"""The document port (notification-service): MongoDB in production, JSON documents in a
SQLite file in the embedded profile."""

from emporium.chassis.documents.base import (
    Document,
    DocumentStore,
    DuplicateDocument,
    Filter,
    Scalar,
)
from emporium.chassis.documents.factory import open_documents

__all__ = ["Document", "DocumentStore", "DuplicateDocument", "Filter", "Scalar", "open_documents"]
