"""What the Elasticsearch and OpenSearch adapters share besides the DSL (`search.dsl`): the
port's operations over a cluster client. The two clients (both descend from the same
Elasticsearch 7 client) name the calls used here alike (`indices.exists`, `indices.refresh`,
`cluster.health`, `get`, `close`); a subclass supplies only what differs: making the client,
creating the index and growing its mapping, bulk requests, `_search`, and its not-found error.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

from emporium.chassis.search.base import Document, SearchIndex, SearchQuery, SearchResult
from emporium.chassis.search.dsl import (
    delete_actions,
    from_source,
    http_url,
    index_actions,
    search_body,
    search_result,
)


class ClusterIndex(SearchIndex):
    """A product index named `index_name` on the cluster at `url`, which `url` keeps as given
    (`open_search(index.url, index.index_name)` opens the same index with the same adapter);
    the client connects to `http_url(url)`. Nothing connects before the first use, which
    creates the index if it is missing."""

    not_found: type[Exception]  # the client's error for a missing document

    def __init__(self, url: str, index_name: str) -> None:
        self.url = url
        self.index_name = index_name
        self._client: Any = None
        self._ready = False

    @abstractmethod
    def _connect(self, http_url: str) -> Any:
        """A new client of the cluster at `http_url`."""

    @abstractmethod
    async def _create_index(self, client: Any) -> None:
        """Create the index with `dsl.MAPPING`; one created meanwhile (by another replica) is
        not an error."""

    @abstractmethod
    async def _grow_mapping(self, client: Any) -> None:
        """Add `dsl.MAPPING`'s fields to an existing index (an index made before a field was
        added learns it; mappings only grow)."""

    @abstractmethod
    async def _bulk(self, client: Any, actions: list[dict[str, Any]], strict: bool) -> None:
        """Send bulk `actions`; with `strict`, a failed item raises."""

    @abstractmethod
    async def _search(self, client: Any, body: dict[str, Any]) -> Mapping[str, Any]:
        """The `_search` response (as a mapping) to `body` (`dsl.search_body`)."""

    async def _cluster(self) -> Any:
        """The client, created on first use, with the index created if missing."""
        if self._client is None:
            self._client = self._connect(http_url(self.url))
        if not self._ready:
            if await self._client.indices.exists(index=self.index_name):
                await self._grow_mapping(self._client)
            else:
                await self._create_index(self._client)
            self._ready = True
        return self._client

    async def ping(self) -> None:
        client = await self._cluster()
        await client.cluster.health(index=self.index_name)

    async def upsert(self, docs: Sequence[Mapping[str, Any]]) -> None:
        actions = index_actions(self.index_name, docs)
        if actions:
            await self._bulk(await self._cluster(), actions, strict=True)

    async def delete(self, ids: Sequence[str]) -> None:
        if ids:  # a missing id is not an error
            actions = delete_actions(self.index_name, ids)
            await self._bulk(await self._cluster(), actions, strict=False)

    async def get(self, doc_id: str) -> Document | None:
        client = await self._cluster()
        try:
            found = await client.get(index=self.index_name, id=doc_id)
        except self.not_found:
            return None
        return from_source(found["_source"])

    async def refresh(self) -> None:
        client = await self._cluster()
        await client.indices.refresh(index=self.index_name)

    async def search(self, query: SearchQuery) -> SearchResult:
        response = await self._search(await self._cluster(), search_body(query))
        return search_result(query, response)

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()
