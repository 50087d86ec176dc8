"""The small document-store interface both adapters implement (notification-service's
notifications and delivery attempts).

Semantics checked on every adapter by tests/adapters/test_documents.py:

- A collection holds JSON documents (dicts of str, int, float, bool, None, lists and dicts)
  with a non-empty string `_id`. What goes in comes back equal; a value JSON cannot carry
  (a datetime, bytes, NaN) is refused on both adapters, so code that works on SQLite works
  on MongoDB. Field names may not start with `$` or contain `.` (dots address nested fields
  in filters and sorts).
- `insert` of an `_id` that exists raises `DuplicateDocument`, a CONFLICT domain error: a
  consumer that inserts one document per event id gets idempotency for free.
  `upsert` replaces the whole document.
- `find` filters by equality on top-level or dotted (`recipient.email`) fields with scalar
  values (str, int, float, bool, None); `None` also matches a missing field, as in MongoDB.
  Booleans never equal numbers. It sorts by one field (ties broken by `_id` in the same
  direction), then skips and limits. Filtering on array fields is not part of the contract.
- Collections are created on first use; `create_index` is idempotent.
"""

from __future__ import annotations

import json
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

from emporium.chassis.errors import DomainError, ErrorCode, FieldError, invalid

Document = dict[str, Any]
Scalar = str | int | float | bool | None
Filter = Mapping[str, Scalar]

_COLLECTION = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,62}$")
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
MAX_LIMIT = 1000


class DuplicateDocument(DomainError):
    """An insert that would repeat an `_id` (CONFLICT, 409)."""

    def __init__(self, collection: str, doc_id: str) -> None:
        super().__init__(
            f"document {doc_id!r} already exists in {collection!r}",
            ErrorCode.CONFLICT,
            "duplicate_document",
        )
        self.collection = collection
        self.doc_id = doc_id


def check_collection(name: str) -> str:
    """`name` if it is a valid collection name (letters, digits, `_`; starts with a letter).

    Narrow on purpose: the SQLite adapter makes it part of a table name.
    """
    if not _COLLECTION.match(name):
        raise invalid(
            f"invalid collection name {name!r}",
            FieldError("collection", "letters, digits and _, starting with a letter"),
        )
    return name


def check_field(name: str) -> str:
    """`name` if it is a field path usable in filters, sorts and indexes (`a`, `a.b_c`)."""
    if not _FIELD.match(name):
        raise invalid(f"invalid field path {name!r}", FieldError("field", "dotted identifiers"))
    return name


def check_document(doc: Mapping[str, Any]) -> Document:
    """A JSON-able copy of `doc` with a string `_id`, or an INVALID_ARGUMENT error."""
    doc_id = doc.get("_id")
    if not isinstance(doc_id, str) or not doc_id:
        raise invalid("a document needs a non-empty string _id", FieldError("_id", "required"))
    try:
        copy: Document = json.loads(json.dumps(doc, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise invalid(f"document {doc_id!r} is not JSON: {exc}") from None
    _check_names(copy, "")
    return copy


def _check_names(value: Any, where: str) -> None:
    if isinstance(value, dict):
        for name, inner in value.items():
            if name.startswith("$") or "." in name or not name:
                raise invalid(
                    f"invalid field name {where + name!r}",
                    FieldError(where + name, "no leading $, no dots, not empty"),
                )
            _check_names(inner, f"{where}{name}.")
    elif isinstance(value, list):
        for item in value:
            _check_names(item, where)


def check_filter(where: Filter | None) -> dict[str, Scalar]:
    """Equality conditions on field paths with scalar values only."""
    clean: dict[str, Scalar] = {}
    for name, value in (where or {}).items():
        check_field(name)
        if value is not None and not isinstance(value, str | int | float | bool):
            raise invalid(
                f"filter on {name!r} must compare with a scalar",
                FieldError(name, "str, int, float, bool or None"),
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise invalid(f"filter on {name!r} must be finite", FieldError(name, "finite"))
        clean[name] = value
    return clean


def check_page(limit: int | None, skip: int) -> None:
    if limit is not None and not 0 <= limit <= MAX_LIMIT:
        raise invalid(f"limit must be 0..{MAX_LIMIT}", FieldError("limit", f"0..{MAX_LIMIT}"))
    if skip < 0:
        raise invalid("skip must not be negative", FieldError("skip", ">= 0"))


class DocumentStore(ABC):
    """Collections of JSON documents keyed by `_id`."""

    @abstractmethod
    async def ping(self) -> None:
        """Raise if the store is unreachable (used by health checks)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; the store is unusable afterwards."""

    @abstractmethod
    async def insert(self, collection: str, doc: Mapping[str, Any]) -> None:
        """Add `doc`; raises DuplicateDocument when its `_id` exists."""

    @abstractmethod
    async def upsert(self, collection: str, doc: Mapping[str, Any]) -> bool:
        """Store `doc` whole under its `_id`, replacing any previous one; True if new."""

    @abstractmethod
    async def get(self, collection: str, doc_id: str) -> Document | None:
        """The document with `_id` `doc_id`, or None."""

    @abstractmethod
    async def delete(self, collection: str, doc_id: str) -> bool:
        """Remove the document with `_id` `doc_id`; False when there was none."""

    @abstractmethod
    async def find(
        self,
        collection: str,
        where: Filter | None = None,
        *,
        sort: str | None = None,
        descending: bool = False,
        limit: int | None = None,
        skip: int = 0,
    ) -> list[Document]:
        """Documents matching every equality in `where`, ordered by `sort` then `_id`
        (`_id` alone when `sort` is None; `descending` applies to both), the first `skip`
        of them left out, at most `limit` (itself at most MAX_LIMIT) returned."""

    @abstractmethod
    async def count(self, collection: str, where: Filter | None = None) -> int:
        """How many documents match `where`."""

    @abstractmethod
    async def create_index(self, collection: str, field: str) -> None:
        """Index `field` (a dotted path) for filters and sorts; idempotent.

        Not unique on purpose: MongoDB and SQLite disagree on documents that lack a uniquely
        indexed field; idempotency is what `_id` is for.
        """
