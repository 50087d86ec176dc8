"""OpenSearch 2+ through opensearch-py's async client: a production search index (a managed
OpenSearch such as Amazon OpenSearch Service, or one's own cluster).

It sends the very DSL the Elasticsearch adapter sends (`search.dsl`): the two differ only in
their clients. URLs: `opensearch://host:port` (plain http) or `opensearchs://host:port`
(https), with `user:password@` for basic auth (e.g. a managed domain's internal user).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opensearchpy import AsyncOpenSearch, NotFoundError, RequestError
from opensearchpy.helpers import async_bulk

from emporium.chassis.search.base import Document, SearchIndex, SearchQuery, SearchResult
from emporium.chassis.search.dsl import (
    MAPPING,
    delete_actions,
    from_source,
    http_url,
    index_actions,
    search_body,
    search_result,
)


class OpenSearchIndex(SearchIndex):
    """A product index named `index_name` on the cluster at `url` (`opensearch[s]://...`),
    which `url` keeps as given: `open_search(index.url, index.index_name)` opens it again."""

    def __init__(self, url: str, index_name: str) -> None:
        self.url = url
        self.index_name = index_name
        self._client: AsyncOpenSearch | None = None
        self._ready = False

    async def _os(self) -> AsyncOpenSearch:
        """The client, created on first use, with the index created if missing."""
        if self._client is None:
            self._client = AsyncOpenSearch(hosts=[http_url(self.url)])
        if not self._ready:
            if not await self._client.indices.exists(index=self.index_name):
                try:
                    await self._client.indices.create(
                        index=self.index_name, body={"mappings": MAPPING}
                    )
                except RequestError as e:  # created meanwhile by another replica
                    if e.error != "resource_already_exists_exception":
                        raise
            else:  # an index made before a field was added learns it (mappings only grow)
                await self._client.indices.put_mapping(
                    index=self.index_name, body={"properties": MAPPING["properties"]}
                )
            self._ready = True
        return self._client

    async def ping(self) -> None:
        client = await self._os()
        await client.cluster.health(index=self.index_name)

    async def upsert(self, docs: Sequence[Mapping[str, Any]]) -> None:
        actions = index_actions(self.index_name, docs)
        if actions:
            await async_bulk(await self._os(), actions)

    async def delete(self, ids: Sequence[str]) -> None:
        if ids:  # a missing id is not an error
            await async_bulk(
                await self._os(), delete_actions(self.index_name, ids), raise_on_error=False
            )

    async def get(self, doc_id: str) -> Document | None:
        client = await self._os()
        try:
            found = await client.get(index=self.index_name, id=doc_id)
        except NotFoundError:
            return None
        return from_source(found["_source"])

    async def refresh(self) -> None:
        client = await self._os()
        await client.indices.refresh(index=self.index_name)

    async def search(self, query: SearchQuery) -> SearchResult:
        client = await self._os()
        response = await client.search(index=self.index_name, body=search_body(query))
        return search_result(query, response)

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()
