"""Pick the document store a URL names: `sqlite://<file>` (embedded) or `mongodb://`."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from emporium.chassis.config import url_path
from emporium.chassis.documents.base import DocumentStore


def open_documents(url: str) -> DocumentStore:
    """A document store for `url`; nothing is opened or connected until first use.

    `sqlite:///abs/file.sqlite3` (also `sqlite:////abs/...`) or `sqlite://relative/file`;
    `mongodb://host:port/<database>` or `mongodb+srv://.../<database>`.
    """
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        from emporium.chassis.documents.sqlite import SqliteDocumentStore

        path = url_path(url)
        if str(path).startswith("//"):  # `sqlite:////abs` (SQLAlchemy's spelling)
            path = Path("/" + str(path).lstrip("/"))
        return SqliteDocumentStore(path)
    if scheme in ("mongodb", "mongodb+srv"):
        from emporium.chassis.documents.mongo import MongoDocumentStore

        return MongoDocumentStore(url)
    raise ValueError(
        f"unsupported documents URL scheme {scheme!r} in {url!r}; expected sqlite or mongodb"
    )
