"""The product index of search-service: every read and write of the search port.

Documents are product-shaped (see `domain.index_change`); a deleted product is kept as a
tombstone that the port never returns from `search` (see `chassis.search.base`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from emporium.chassis.search.base import Document, SearchIndex, SearchQuery, SearchResult


class ProductIndex:
    """The repository over the search port (one Tantivy directory or Elasticsearch index)."""

    def __init__(self, index: SearchIndex) -> None:
        self.index = index

    async def indexed(self, product_id: str) -> Document | None:
        """The product's current document or tombstone, or None if never indexed."""
        return await self.index.get(product_id)

    async def put(self, *documents: Mapping[str, Any]) -> None:
        """Add or replace the documents with the same `id`s (searchable on return): one
        write and one refresh however many, since each is a segment commit (Tantivy) or a
        refresh (Elasticsearch) that costs the same for one document as for a hundred."""
        if documents:
            await self.index.upsert(list(documents))
            await self.index.refresh()

    async def search(self, query: SearchQuery) -> SearchResult:
        return await self.index.search(query)
