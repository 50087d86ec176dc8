"""Elasticsearch 8+ through the official async client: a production search index.

URLs: `http[s]://host:port`, or `elasticsearch://host:port` for plain http. The mapping, the
query and the reading of its response are the shared DSL (`search.dsl`), which the OpenSearch
adapter sends too; the port's operations are `search.cluster`'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from elasticsearch import AsyncElasticsearch, NotFoundError
from elasticsearch.helpers import async_bulk

from emporium.chassis.search.cluster import ClusterIndex
from emporium.chassis.search.dsl import ADMIN_TIMEOUT_SECONDS, MAPPING


class ElasticsearchIndex(ClusterIndex):
    """A product index on an Elasticsearch 8 cluster."""

    not_found = NotFoundError

    def _connect(self, http_url: str) -> AsyncElasticsearch:
        return AsyncElasticsearch(http_url)

    async def _create_index(self, client: AsyncElasticsearch) -> None:
        await client.options(
            ignore_status=400, request_timeout=ADMIN_TIMEOUT_SECONDS
        ).indices.create(
            index=self.index_name, mappings=MAPPING
        )  # 400 = created meanwhile by another replica

    async def _grow_mapping(self, client: AsyncElasticsearch) -> None:
        await client.options(request_timeout=ADMIN_TIMEOUT_SECONDS).indices.put_mapping(
            index=self.index_name, properties=MAPPING["properties"]
        )

    async def _bulk(
        self, client: AsyncElasticsearch, actions: list[dict[str, Any]], strict: bool
    ) -> None:
        await async_bulk(client, actions, raise_on_error=strict)

    async def _search(self, client: AsyncElasticsearch, body: dict[str, Any]) -> Mapping[str, Any]:
        kwargs = dict(body)
        kwargs["from_"] = kwargs.pop("from")  # the client's keyword for the body's `from`
        response = await client.search(index=self.index_name, **kwargs)
        result: Mapping[str, Any] = response.body
        return result
