"""Use cases of search-service: keep the index in step with `product.updated`, and search it.

The index is search-service's only state and it has no transactions, so each change is one
idempotent write keyed by product id: redelivery rewrites the same document, and an event
older than the indexed one (by CloudEvent `time`, which product-service sets when it commits
the change) is ignored, so a replay cannot bring back an old price or a deleted product.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from emporium.contracts.events import ProductUpdatedV1
from emporium.services.search.domain import (
    RemoveDocument,
    index_change,
    is_stale,
    parse_search_request,
    search_response,
    to_query,
    tombstone_document,
)
from emporium.services.search.store import ProductIndex

log = logging.getLogger(__name__)


async def apply_product_updates(
    products: ProductIndex, updates: Sequence[tuple[ProductUpdatedV1, datetime]]
) -> int:
    """Several `product.updated` in one index write; how many products were written.

    The same outcome as applying them one by one in order: per product only the newest
    event can win (on equal times the later one, as `is_stale` lets an equal time through),
    and it is written only if it is not older than what the index holds."""
    newest: dict[str, tuple[ProductUpdatedV1, datetime]] = {}
    for event, event_time in updates:
        held = newest.get(event.product_id)
        if held is None or not event_time < held[1]:
            newest[event.product_id] = (event, event_time)
    documents = []
    for product_id, (event, event_time) in newest.items():
        if is_stale(await products.indexed(product_id), event_time):
            log.info(
                "stale product.updated ignored",
                extra={"product_id": product_id, "event_time": event_time.isoformat()},
            )
            continue
        change = index_change(event, event_time)
        if isinstance(change, RemoveDocument):
            documents.append(tombstone_document(change.product_id, event_time))
        else:
            documents.append(change.document)
    await products.put(*documents)
    return len(documents)


async def search_products(
    products: ProductIndex, params: Mapping[str, str | None]
) -> dict[str, Any]:
    """`GET /api/v1/search`: one page `{items, total, facets, next_cursor}` (public)."""
    request = parse_search_request(params)
    result = await products.search(to_query(request))
    return search_response(request, result)
