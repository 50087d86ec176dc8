"""Search-service rules: the `GET /api/v1/search` request, its opaque cursor, the mapping
from `product.updated` to an index change, and the response shape.

Pure: no I/O. The handler parses the request here, runs `to_query(...)` on the search port
(`emporium.chassis.search.base`), and builds the answer with `search_response(...)`.

Price filters: `min_price` and `max_price` are integers in *minor units*, inclusive, compared
with each product's `price_minor`, because the API states money as minor units everywhere
(`price_minor`); a decimal text such as `19.99` is refused with a field error rather than
guessed at. The filter does not look at the currency: the catalog is single-currency in
practice, and a multi-currency filter would need exchange rates the platform does not have.

Cursors are opaque base64url JSON carrying the offset of the next page and a hash of the
query (text, category, prices, sort). Reusing a cursor with different filters would page
through a different result list, so it is refused with 400 (`cursor`) instead of returning
a silently wrong page. The page size is not part of the hash: a client may change `limit`
between pages. Paging stops at `MAX_WINDOW` results, Elasticsearch's default
`index.max_result_window`, so both adapters page the same way.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, cast

from emporium.chassis.errors import FieldError, invalid
from emporium.chassis.money import to_minor
from emporium.chassis.search.base import SORT_ORDERS, SearchQuery, SearchResult, SortOrder
from emporium.contracts.events import ProductUpdatedV1

DEFAULT_LIMIT: Final = 20
MAX_LIMIT: Final = 100
MAX_WINDOW: Final = 10_000
MAX_QUERY_LENGTH: Final = 200
MAX_CURSOR_LENGTH: Final = 512
CATEGORY_FACET: Final = "category"


@dataclass(frozen=True)
class SearchRequest:
    """A validated search request; `offset` comes from the cursor (0 on the first page)."""

    q: str = ""
    category: str | None = None
    min_price: int | None = None
    max_price: int | None = None
    sort: SortOrder = "relevance"
    limit: int = DEFAULT_LIMIT
    offset: int = 0

    def fingerprint(self) -> str:
        """A short hash of everything that decides *which* results are listed, in order."""
        return query_fingerprint(self.q, self.category, self.min_price, self.max_price, self.sort)


def query_fingerprint(
    q: str, category: str | None, min_price: int | None, max_price: int | None, sort: str
) -> str:
    canonical = json.dumps(
        [" ".join(q.lower().split()), category, min_price, max_price, sort],
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def parse_search_request(params: Mapping[str, str | None]) -> SearchRequest:
    """The request from raw query parameters (as strings; missing or empty = absent).

    Every problem is reported at once, each naming its query parameter, as one 400.
    """
    errors: list[FieldError] = []
    q = (params.get("q") or "").strip()
    if len(q) > MAX_QUERY_LENGTH:
        errors.append(FieldError("q", f"at most {MAX_QUERY_LENGTH} characters"))
    category = (params.get("category") or "").strip() or None
    min_price = _price(params, "min_price", errors)
    max_price = _price(params, "max_price", errors)
    if min_price is not None and max_price is not None and min_price > max_price:
        errors.append(FieldError("max_price", "must not be below min_price"))
    sort = params.get("sort") or "relevance"
    if sort not in SORT_ORDERS:
        errors.append(FieldError("sort", f"one of {', '.join(SORT_ORDERS)}"))
    limit = parse_limit(params.get("limit"), errors)
    if errors:
        raise invalid("invalid search request", *errors)
    fingerprint = query_fingerprint(q, category, min_price, max_price, sort)
    offset = decode_cursor(params.get("cursor"), fingerprint)
    return SearchRequest(q, category, min_price, max_price, cast(SortOrder, sort), limit, offset)


def parse_limit(raw: str | None, errors: list[FieldError]) -> int:
    """`limit`: default 20, an integer in 1..100 (the API's list convention)."""
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    try:
        value = int(raw)
    except ValueError:
        errors.append(FieldError("limit", f"an integer between 1 and {MAX_LIMIT}"))
        return DEFAULT_LIMIT
    if not 1 <= value <= MAX_LIMIT:
        errors.append(FieldError("limit", f"an integer between 1 and {MAX_LIMIT}"))
    return value


def _price(params: Mapping[str, str | None], name: str, errors: list[FieldError]) -> int | None:
    raw = params.get(name)
    if raw is None or raw.strip() == "":
        return None
    text = raw.strip()
    if not text.isascii() or not text.isdigit():
        errors.append(FieldError(name, "a non-negative integer in minor units (1999 = 19.99)"))
        return None
    return int(text)


# -- cursor ----------------------------------------------------------------------------------


def encode_cursor(offset: int, fingerprint: str) -> str:
    """The opaque cursor of the page starting at `offset` of the query `fingerprint`."""
    raw = json.dumps({"o": offset, "h": fingerprint}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str | None, fingerprint: str) -> int:
    """The offset a cursor points at (0 without one); 400 naming `cursor` when it is
    malformed, tampered with, or was issued for a different query."""
    if cursor is None or cursor == "":
        return 0
    bad = invalid("invalid cursor", FieldError("cursor", "not a cursor returned by this search"))
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise bad
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        body = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError):
        raise bad from None
    if not isinstance(body, dict):
        raise bad
    offset, issued_for = body.get("o"), body.get("h")
    if not isinstance(offset, int) or isinstance(offset, bool) or not 0 <= offset < MAX_WINDOW:
        raise bad
    if issued_for != fingerprint:
        raise invalid(
            "cursor belongs to another query",
            FieldError("cursor", "issued for a different query; start again without cursor"),
        )
    return offset


def to_query(request: SearchRequest) -> SearchQuery:
    """The search port's query for one page of `request`."""
    return SearchQuery(
        text=request.q,
        category=request.category,
        min_price=request.min_price,
        max_price=request.max_price,
        sort=request.sort,
        limit=min(request.limit, MAX_WINDOW - request.offset),
        offset=request.offset,
    )


def next_cursor(request: SearchRequest, returned: int, total: int) -> str | None:
    """The cursor of the page after this one, or None when this is the last page."""
    following = request.offset + returned
    if returned == 0 or following >= total or following >= MAX_WINDOW:
        return None
    return encode_cursor(following, request.fingerprint())


# -- response --------------------------------------------------------------------------------

_HIDDEN_FIELDS: Final = frozenset({"score", "deleted"})


def product_item(hit: Mapping[str, Any]) -> dict[str, Any]:
    """A hit as the API's product shape (`created_at`/`updated_at` as RFC 3339 UTC)."""
    item = {k: v for k, v in hit.items() if k not in _HIDDEN_FIELDS}
    for name in ("created_at", "updated_at"):
        value = item.get(name)
        if isinstance(value, datetime):
            item[name] = rfc3339(value)
    item.setdefault("attributes", {})
    item.setdefault("image_urls", [])
    return item


def search_response(request: SearchRequest, result: SearchResult) -> dict[str, Any]:
    """`{items, total, facets: {category: {name: count}}, next_cursor}` for one page."""
    categories = result.facets.get(CATEGORY_FACET, {})
    return {
        "items": [product_item(hit) for hit in result.hits],
        "total": result.total,
        "facets": {CATEGORY_FACET: {name: n for name, n in categories.items() if name}},
        "next_cursor": next_cursor(request, len(result.hits), result.total),
    }


def rfc3339(moment: datetime) -> str:
    """RFC 3339 in UTC with a `Z` (naive datetimes are taken as UTC)."""
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return aware.isoformat().replace("+00:00", "Z")


# -- product.updated -> index ----------------------------------------------------------------


@dataclass(frozen=True)
class UpsertDocument:
    """Add or replace the product's document."""

    document: dict[str, Any]


@dataclass(frozen=True)
class RemoveDocument:
    """The product was deleted: it leaves the index."""

    product_id: str


IndexChange = UpsertDocument | RemoveDocument


def index_change(event: ProductUpdatedV1, event_time: datetime) -> IndexChange:
    """What one `product.updated` does to the index.

    `event_time` (the CloudEvent `time`) is the document's `updated_at`, and its
    `created_at` unless the payload carries one. The event carries the whole product, so
    replaying it (redelivery) writes the same document again: the upsert is idempotent.
    `sku`, `attributes`, `image_urls` and `created_at` were added to the payload later
    (optional): an older payload without them indexes an empty sku and attributes, its single
    `image_url`, and `event_time` as `created_at`.
    """
    if event.deleted:
        return RemoveDocument(event.product_id)
    image_urls = event.image_urls or ([event.image_url] if event.image_url else [])
    return UpsertDocument(
        {
            "id": event.product_id,
            "sku": event.sku or "",
            "name": event.name,
            "description": event.description,
            "category": event.category,
            "price_minor": to_minor(event.price, event.currency),
            "currency": event.currency,
            "attributes": dict(event.attributes),
            "image_urls": list(image_urls),
            "created_at": event.created_at or event_time,
            "updated_at": rfc3339(event_time),
        }
    )


def tombstone_document(product_id: str, event_time: datetime) -> dict[str, Any]:
    """What stays in the index after a product is deleted: its id and when, nothing to find.

    The search port never lists a tombstone (`deleted: true`); it exists so an older
    `product.updated` delivered after the deletion is seen as stale by `is_stale`.
    """
    return {
        "id": product_id,
        "name": product_id,
        "deleted": True,
        "created_at": event_time,
        "updated_at": rfc3339(event_time),
    }


def is_stale(indexed: Mapping[str, Any] | None, event_time: datetime) -> bool:
    """Whether an event at `event_time` is older than what the index already holds.

    Strictly older only: the same event delivered again writes the same document again,
    which is harmless, whereas dropping equal times could lose one of two changes made in
    the same instant. A document without a readable `updated_at` never blocks a write.
    """
    if indexed is None:
        return False
    raw = indexed.get("updated_at")
    if not isinstance(raw, str):
        return False
    try:
        indexed_time = datetime.fromisoformat(raw)
    except ValueError:
        return False
    if indexed_time.tzinfo is None:
        indexed_time = indexed_time.replace(tzinfo=UTC)
    moment = event_time if event_time.tzinfo else event_time.replace(tzinfo=UTC)
    return moment < indexed_time
