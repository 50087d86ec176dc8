"""Use cases of search-service: keep the index in step with `product.updated`, and search it.

The index is search-service's only state and it has no transactions, so each change is one
idempotent write keyed by product id: redelivery rewrites the same document, and an event
older than the indexed one (by CloudEvent `time`, which product-service sets when it commits
the change) is ignored, so a replay cannot bring back an old price or a deleted product.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
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


async def apply_product_updated(
    products: ProductIndex, event: ProductUpdatedV1, event_time: datetime
) -> bool:
    """Index (or remove) the product; False when the event was stale and ignored."""
    if is_stale(await products.indexed(event.product_id), event_time):
        log.info(
            "stale product.updated ignored",
            extra={"product_id": event.product_id, "event_time": event_time.isoformat()},
        )
        return False
    change = index_change(event, event_time)
    if isinstance(change, RemoveDocument):
        await products.put(tombstone_document(change.product_id, event_time))
    else:
        await products.put(change.document)
    return True


async def search_products(
    products: ProductIndex, params: Mapping[str, str | None]
) -> dict[str, Any]:
    """`GET /api/v1/search`: one page `{items, total, facets, next_cursor}` (public)."""
    request = parse_search_request(params)
    result = await products.search(to_query(request))
    return search_response(request, result)
