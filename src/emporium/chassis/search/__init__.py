"""The full-text search port (search-service's product index): Elasticsearch or OpenSearch in
production, a Tantivy index on disk in the embedded profile."""

from emporium.chassis.search.base import SearchIndex, SearchQuery, SearchResult, SortOrder
from emporium.chassis.search.factory import open_search

__all__ = ["SearchIndex", "SearchQuery", "SearchResult", "SortOrder", "open_search"]
