"""The query DSL both cluster adapters send: Elasticsearch 8 (`search.elastic`) and OpenSearch 2
(`search.opensearch`) speak the same one for everything the search port needs, so the
mapping, the bulk actions, the search body and the reading of its response live here once and
each adapter only talks to its own client.

The index has an explicit mapping (`dynamic: false`: extra product fields are kept in
`_source` and returned, but not indexed, so one odd document can never break the mapping). The
query mirrors the Tantivy adapter clause for clause (see `search.base`): per word, an exact
`multi_match` (name boosted) or a `fuzziness: AUTO` one at a lower weight; price filters in
the query; the category as a `post_filter`, which is exactly "facets ignore the category
filter": aggregations see the query, hits see both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from emporium.chassis.search.base import (
    DESCRIPTION_BOOST,
    FUZZY_PENALTY,
    NAME_BOOST,
    Document,
    SearchQuery,
    SearchResult,
    check_document,
    to_datetime,
    unique_ids,
    words,
)

MAX_FACET_VALUES = 1000
# Creating the index (or growing its mapping) waits for the cluster to apply it, up to the
# server's own 30 s acknowledgement timeout: the clients' 10 s default is too short for a
# busy cluster, and these calls happen once per process.
ADMIN_TIMEOUT_SECONDS = 60

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

# A cluster URL's scheme -> the scheme its client connects with.
_HTTP_SCHEMES = {
    "http": "http",
    "https": "https",
    "elasticsearch": "http",
    "opensearch": "http",
    "opensearchs": "https",
}


def http_url(url: str) -> str:
    """The http(s) URL a client connects to for a cluster URL (`opensearch://h:9200` is
    `http://h:9200`, `opensearchs://` is https); user and password, if any, are kept."""
    scheme = urlsplit(url).scheme
    if scheme not in _HTTP_SCHEMES:
        raise ValueError(f"not a search cluster URL: {url!r}")
    return _HTTP_SCHEMES[scheme] + url[len(scheme) :]


def index_actions(index_name: str, docs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Bulk actions that add or replace `docs` (checked first: a bad one raises, none is sent)."""
    return [
        {"_op_type": "index", "_index": index_name, "_id": d["id"], "_source": _to_source(d)}
        for d in (check_document(doc) for doc in docs)
    ]


def delete_actions(index_name: str, ids: Sequence[str]) -> list[dict[str, Any]]:
    return [{"_op_type": "delete", "_index": index_name, "_id": i} for i in unique_ids(ids)]


def search_body(query: SearchQuery) -> dict[str, Any]:
    """The `_search` request body for `query`."""
    body: dict[str, Any] = {
        "query": _matching(query),
        "from": query.offset,
        "size": query.limit,
        "track_total_hits": True,
        "aggs": {"category": {"terms": {"field": "category", "size": MAX_FACET_VALUES}}},
    }
    if query.category:
        body["post_filter"] = {"term": {"category": query.category}}
    if query.sort in _SORTS:
        body["sort"] = _SORTS[query.sort]
    return body


def search_result(query: SearchQuery, response: Mapping[str, Any]) -> SearchResult:
    """The port's result from a `_search` response to `search_body(query)`."""
    hits = []
    for hit in response["hits"]["hits"]:
        doc = from_source(hit["_source"])
        doc["score"] = None if query.sort in _SORTS else float(hit["_score"] or 0.0)
        hits.append(doc)
    buckets = response["aggregations"]["category"]["buckets"]
    return SearchResult(
        hits=hits,
        total=int(response["hits"]["total"]["value"]),
        facets={"category": {str(b["key"]): int(b["doc_count"]) for b in buckets}},
    )


def from_source(source: Mapping[str, Any]) -> Document:
    """A stored document (`_source`) as the port returns it."""
    doc = dict(source)
    doc["created_at"] = to_datetime(int(doc.get("created_at", 0)) / 1000)
    return doc


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


def _to_source(doc: Document) -> Document:
    created: datetime = doc["created_at"]
    return {**doc, "created_at": int(created.timestamp() * 1000)}
