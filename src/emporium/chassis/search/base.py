"""The small interface both search adapters implement, and the rules they share.

Documents are product-shaped dicts: `id`, `sku`, `name`, `description`, `category`,
`price_minor` (int, minor currency units), `currency`, `created_at` (epoch seconds or a
datetime), plus any other JSON-able fields, which are stored and returned untouched.
Semantics checked on every adapter by tests/adapters/test_search.py:

- Words of the query must all match (each in the name or the description, typos allowed:
  one edit for words of 3-5 characters, two for longer ones, as Elasticsearch's
  `fuzziness: AUTO`); a name match outranks a description-only match, and an exact word
  outranks a corrected one. Empty text matches every document.
- `upsert` replaces documents by id; writes are visible to `search`/`get` after `refresh()`.
- Facets are counted over the query text and price filters but *not* the category filter,
  the usual faceted-navigation behaviour: the sidebar keeps showing the other categories
  (with their counts) after the user picks one.
- Hits are the stored documents with `created_at` as an aware UTC datetime and a `score`
  (the relevance score; None when sorted by price or date).
- A document with `deleted: true` is a tombstone: `get` returns it, `search` never counts or
  lists it (hits, total, facets). A consumer keeps one per removed product so that an older
  event arriving after the removal (redelivery, replay) can be recognised as stale instead of
  bringing the product back.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from emporium.chassis.errors import FieldError, invalid

SortOrder = Literal["relevance", "price_asc", "price_desc", "newest"]
SORT_ORDERS: tuple[str, ...] = ("relevance", "price_asc", "price_desc", "newest")
Document = dict[str, Any]

# Relevance weights, shared by both adapters.
NAME_BOOST = 3.0
DESCRIPTION_BOOST = 1.0
FUZZY_PENALTY = 0.5  # a corrected word scores this fraction of an exact one

MAX_LIMIT = 100
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


@dataclass(frozen=True)
class SearchQuery:
    """One search: free text plus optional filters, a sort order and a page."""

    text: str = ""
    category: str | None = None
    min_price: int | None = None
    max_price: int | None = None
    sort: SortOrder = "relevance"
    limit: int = 20
    offset: int = 0

    def __post_init__(self) -> None:
        errors: list[FieldError] = []
        if self.sort not in SORT_ORDERS:
            errors.append(FieldError("sort", f"one of {', '.join(SORT_ORDERS)}"))
        if not 0 <= self.limit <= MAX_LIMIT:
            errors.append(FieldError("limit", f"between 0 and {MAX_LIMIT}"))
        if self.offset < 0:
            errors.append(FieldError("offset", "not negative"))
        for name in ("min_price", "max_price"):
            value = getattr(self, name)
            if value is not None and value < 0:
                errors.append(FieldError(name, "not negative"))
        if errors:
            raise invalid("invalid search query", *errors)


@dataclass(frozen=True)
class SearchResult:
    """One page of hits, the total number of matches, and facet counts."""

    hits: list[Document]
    total: int
    facets: dict[str, dict[str, int]] = field(default_factory=dict)


class SearchIndex(ABC):
    """A product index."""

    @abstractmethod
    async def ping(self) -> None:
        """Raise if the index is unreachable (used by health checks)."""

    @abstractmethod
    async def upsert(self, docs: Sequence[Mapping[str, Any]]) -> None:
        """Add or replace documents (by `id`)."""

    @abstractmethod
    async def delete(self, ids: Sequence[str]) -> None:
        """Remove documents; unknown ids are ignored."""

    @abstractmethod
    async def get(self, doc_id: str) -> Document | None:
        """The stored document with `id`, or None."""

    @abstractmethod
    async def refresh(self) -> None:
        """Make every write so far visible to `search` and `get`."""

    @abstractmethod
    async def search(self, query: SearchQuery) -> SearchResult: ...

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release the writer or connections; the index is unusable afterwards."""


def words(text: str) -> list[str]:
    """The lower-cased words of `text`, split like Tantivy's default tokenizer does."""
    return [w.lower() for w in _WORD.findall(text) if len(w) <= 40]


def fuzziness(word: str) -> int:
    """Edit distance allowed for `word`: Elasticsearch's `AUTO` (0 / 1 / 2)."""
    return 0 if len(word) < 3 else 1 if len(word) <= 5 else 2


def to_datetime(value: Any) -> datetime:
    """`created_at` given as epoch seconds, an ISO string or a datetime, as aware UTC."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        return to_datetime(datetime.fromisoformat(value))
    raise invalid(
        "created_at must be epoch seconds or a datetime",
        FieldError("created_at", "epoch seconds or a datetime"),
    )


def check_document(doc: Mapping[str, Any]) -> Document:
    """A copy of `doc` with the product fields checked and `created_at` made aware UTC."""
    problems = [
        FieldError(name, "required text")
        for name in ("id", "name")
        if not isinstance(doc.get(name), str) or not doc[name]
    ]
    price = doc.get("price_minor", 0)
    if not isinstance(price, int) or isinstance(price, bool):
        problems.append(FieldError("price_minor", "an integer (minor units)"))
    if problems:
        raise invalid("invalid search document", *problems)
    clean = dict(doc)
    clean["created_at"] = to_datetime(doc.get("created_at", 0))
    clean.setdefault("price_minor", 0)
    for name in ("sku", "description", "category", "currency"):
        clean[name] = str(doc.get(name) or "")
    return clean


def is_tombstone(doc: Mapping[str, Any]) -> bool:
    """Whether `doc` marks a removed document (kept for ordering, never searched)."""
    return doc.get("deleted") is True


def unique_ids(ids: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(ids))
