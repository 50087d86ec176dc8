"""Elasticsearch 8+ through the official async client: a production search index.

The mapping, the query and the reading of its response are the shared DSL (`search.dsl`),
which the OpenSearch adapter sends too; the index is created on first use.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from elasticsearch import AsyncElasticsearch, NotFoundError
from elasticsearch.helpers import async_bulk

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


class ElasticsearchIndex(SearchIndex):
    """A product index named `index_name` on the cluster at `url` (`http[s]://...`, or
    `elasticsearch://host:port` for plain http), which `url` keeps as given."""

    def __init__(self, url: str, index_name: str) -> None:
        self.url = url
        self.index_name = index_name
        self._client: AsyncElasticsearch | None = None
        self._ready = False

    async def _es(self) -> AsyncElasticsearch:
        """The client, created on first use, with the index created if missing."""
        if self._client is None:
            self._client = AsyncElasticsearch(http_url(self.url))
        if not self._ready:
            if not await self._client.indices.exists(index=self.index_name):
                await self._client.options(ignore_status=400).indices.create(
                    index=self.index_name, mappings=MAPPING
                )  # 400 = created meanwhile by another replica
            else:  # an index made before a field was added learns it (mappings only grow)
                await self._client.indices.put_mapping(
                    index=self.index_name, properties=MAPPING["properties"]
                )
            self._ready = True
        return self._client

    async def ping(self) -> None:
        es = await self._es()
        await es.cluster.health(index=self.index_name)

    async def upsert(self, docs: Sequence[Mapping[str, Any]]) -> None:
        actions = index_actions(self.index_name, docs)
        if actions:
            await async_bulk(await self._es(), actions)

    async def delete(self, ids: Sequence[str]) -> None:
        if ids:  # a missing id is not an error
            await async_bulk(
                await self._es(), delete_actions(self.index_name, ids), raise_on_error=False
            )

    async def get(self, doc_id: str) -> Document | None:
        es = await self._es()
        try:
            found = await es.get(index=self.index_name, id=doc_id)
        except NotFoundError:
            return None
        return from_source(found["_source"])

    async def refresh(self) -> None:
        es = await self._es()
        await es.indices.refresh(index=self.index_name)

    async def search(self, query: SearchQuery) -> SearchResult:
        es = await self._es()
        body = search_body(query)
        body["from_"] = body.pop("from")  # the client's keyword for the body's `from`
        response = await es.search(index=self.index_name, **body)
        return search_result(query, response.body)

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()
