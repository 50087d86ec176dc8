"""Elasticsearch 8+ through the official async client: the production search index.

The index is created on first use with an explicit mapping (`dynamic: false`: extra product
fields are kept in `_source` and returned, but not indexed, so one odd document can never
break the mapping). The query mirrors the Tantivy adapter clause for clause (see
`search.base`): per word, an exact `multi_match` (name boosted) or a `fuzziness: AUTO` one
at a lower weight; price filters in the query; the category as a `post_filter`, which is
exactly "facets ignore the category filter": aggregations see the query, hits see both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from elasticsearch import AsyncElasticsearch, NotFoundError
from elasticsearch.helpers import async_bulk

from emporium.chassis.search.base import (
    DESCRIPTION_BOOST,
    FUZZY_PENALTY,
    NAME_BOOST,
    Document,
    SearchIndex,
    SearchQuery,
    SearchResult,
    check_document,
    to_datetime,
    unique_ids,
    words,
)

MAX_FACET_VALUES = 1000

MAPPING: dict[str, Any] = {
    "dynamic": False,
    "properties": {
        "id": {"type": "keyword"},
        "sku": {"type": "keyword"},
        "name": {"type": "text"},
        "description": {"type": "text"},
        "category": {"type": "keyword"},
        "price_minor": {"type": "long"},
        "currency": {"type": "keyword"},
        "created_at": {"type": "date", "format": "epoch_millis"},
        "deleted": {"type": "boolean"},
    },
}

_SORTS: dict[str, list[dict[str, str]]] = {
    "price_asc": [{"price_minor": "asc"}, {"id": "asc"}],
    "price_desc": [{"price_minor": "desc"}, {"id": "asc"}],
    "newest": [{"created_at": "desc"}, {"id": "asc"}],
}


class ElasticsearchIndex(SearchIndex):
    """A product index named `index_name` on the cluster at `url` (http[s]://...)."""

    def __init__(self, url: str, index_name: str) -> None:
        self.url = url
        self.index_name = index_name
        self._client: AsyncElasticsearch | None = None
        self._ready = False

    async def _es(self) -> AsyncElasticsearch:
        """The client, created on first use, with the index created if missing."""
        if self._client is None:
            self._client = AsyncElasticsearch(self.url)
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
        checked = [check_document(d) for d in docs]
        if not checked:
            return
        es = await self._es()
        actions = [
            {"_op_type": "index", "_index": self.index_name, "_id": d["id"], "_source": _to_es(d)}
            for d in checked
        ]
        await async_bulk(es, actions)

    async def delete(self, ids: Sequence[str]) -> None:
        if not ids:
            return
        es = await self._es()
        actions = [
            {"_op_type": "delete", "_index": self.index_name, "_id": i} for i in unique_ids(ids)
        ]
        await async_bulk(es, actions, raise_on_error=False)  # a missing id is not an error

    async def get(self, doc_id: str) -> Document | None:
        es = await self._es()
        try:
            found = await es.get(index=self.index_name, id=doc_id)
        except NotFoundError:
            return None
        return _from_es(found["_source"])

    async def refresh(self) -> None:
        es = await self._es()
        await es.indices.refresh(index=self.index_name)

    async def search(self, query: SearchQuery) -> SearchResult:
        es = await self._es()
        body: dict[str, Any] = {
            "query": _matching(query),
            "from_": query.offset,
            "size": query.limit,
            "track_total_hits": True,
            "aggs": {"category": {"terms": {"field": "category", "size": MAX_FACET_VALUES}}},
        }
        if query.category:
            body["post_filter"] = {"term": {"category": query.category}}
        if query.sort in _SORTS:
            body["sort"] = _SORTS[query.sort]
        response = await es.search(index=self.index_name, **body)
        hits = []
        for hit in response["hits"]["hits"]:
            doc = _from_es(hit["_source"])
            doc["score"] = None if query.sort in _SORTS else float(hit["_score"] or 0.0)
            hits.append(doc)
        buckets = response["aggregations"]["category"]["buckets"]
        return SearchResult(
            hits=hits,
            total=int(response["hits"]["total"]["value"]),
            facets={"category": {str(b["key"]): int(b["doc_count"]) for b in buckets}},
        )

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()


def _matching(q: SearchQuery) -> dict[str, Any]:
    """Text (scored) and price (filter, unscored): everything but the category; tombstones
    never match."""
    must: list[dict[str, Any]] = [_word_query(w) for w in words(q.text)] or [{"match_all": {}}]
    filters: list[dict[str, Any]] = []
    if q.min_price is not None or q.max_price is not None:
        bounds = {"gte": q.min_price, "lte": q.max_price}
        filters.append(
            {"range": {"price_minor": {k: v for k, v in bounds.items() if v is not None}}}
        )
    tombstones = [{"term": {"deleted": True}}]
    return {"bool": {"must": must, "filter": filters, "must_not": tombstones}}


def _word_query(word: str) -> dict[str, Any]:
    fields = [f"name^{NAME_BOOST}", f"description^{DESCRIPTION_BOOST}"]
    return {
        "bool": {
            "should": [
                {"multi_match": {"query": word, "fields": fields}},
                {
                    "multi_match": {
                        "query": word,
                        "fields": fields,
                        "fuzziness": "AUTO",
                        "boost": FUZZY_PENALTY,
                    }
                },
            ],
            "minimum_should_match": 1,
        }
    }


def _to_es(doc: Document) -> Document:
    created: datetime = doc["created_at"]
    return {**doc, "created_at": int(created.timestamp() * 1000)}


def _from_es(source: Mapping[str, Any]) -> Document:
    doc = dict(source)
    doc["created_at"] = to_datetime(int(doc.get("created_at", 0)) / 1000)
    return doc
