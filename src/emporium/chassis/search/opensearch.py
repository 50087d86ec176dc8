"""OpenSearch 2+ through opensearch-py's async client: a production search index (a managed
OpenSearch such as Amazon OpenSearch Service, or one's own cluster).

URLs: `opensearch://host:port` (plain http) or `opensearchs://host:port` (https), with
`user:password@` for basic auth (e.g. a managed domain's internal user). It sends the very DSL
the Elasticsearch adapter sends (`search.dsl`), with the same operations (`search.cluster`):
the two differ only in their clients (the Elasticsearch 8 client refuses OpenSearch).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opensearchpy import AsyncOpenSearch, NotFoundError, RequestError
from opensearchpy.helpers import async_bulk

from emporium.chassis.search.cluster import ClusterIndex
from emporium.chassis.search.dsl import ADMIN_TIMEOUT_SECONDS, MAPPING


class OpenSearchIndex(ClusterIndex):
    """A product index on an OpenSearch cluster."""

    not_found = NotFoundError

    def _connect(self, http_url: str) -> AsyncOpenSearch:
        return AsyncOpenSearch(hosts=[http_url])

    async def _create_index(self, client: AsyncOpenSearch) -> None:
        try:
            await client.indices.create(
                index=self.index_name,
                body={"mappings": MAPPING},
                request_timeout=ADMIN_TIMEOUT_SECONDS,
            )
        except RequestError as e:  # created meanwhile by another replica
            if e.error != "resource_already_exists_exception":
                raise

    async def _grow_mapping(self, client: AsyncOpenSearch) -> None:
        await client.indices.put_mapping(
            index=self.index_name,
            body={"properties": MAPPING["properties"]},
            request_timeout=ADMIN_TIMEOUT_SECONDS,
        )

    async def _bulk(
        self, client: AsyncOpenSearch, actions: list[dict[str, Any]], strict: bool
    ) -> None:
        await async_bulk(client, actions, raise_on_error=strict)

    async def _search(self, client: AsyncOpenSearch, body: dict[str, Any]) -> Mapping[str, Any]:
        response: Mapping[str, Any] = await client.search(index=self.index_name, body=body)
        return response
