"""Contract suite of the search port: Tantivy on disk, a real OpenSearch node (.ci/opensearch.sh)
and a real Elasticsearch (skipped when none is configured: no server can be installed from
this machine's registries)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from emporium.chassis.errors import ErrorCode
from emporium.chassis.search import SearchIndex, SearchQuery, open_search
from tests.backends import backend_url

PRODUCTS: list[dict[str, Any]] = [
    {
        "id": "p1",
        "sku": "HP-1",
        "name": "Wireless Headphones",
        "category": "audio",
        "description": "Over-ear, noise cancelling.",
        "price_minor": 19900,
        "currency": "EUR",
        "created_at": 1_700_000_000,
        "images": ["p1.png"],
        "rating": 4.5,
    },
    {
        "id": "p2",
        "sku": "SP-1",
        "name": "Bluetooth Speaker",
        "category": "audio",
        "description": "Pairs well with your headphones.",
        "price_minor": 5900,
        "currency": "EUR",
        "created_at": 1_700_000_100,
    },
    {
        "id": "p3",
        "sku": "BK-1",
        "name": "Python Cookbook",
        "category": "books",
        "description": "Recipes for Python 3.",
        "price_minor": 3900,
        "currency": "EUR",
        "created_at": datetime(2024, 1, 1, tzinfo=UTC),
    },
    {
        "id": "p4",
        "sku": "BK-2",
        "name": "Architecture Patterns with Python",
        "category": "books",
        "description": "Domain modelling, headphones not included.",
        "price_minor": 4500,
        "currency": "EUR",
        "created_at": 1_600_000_000,
    },
    {
        "id": "p5",
        "sku": "GM-1",
        "name": "Gaming Headset",
        "category": "games",
        "description": "Wired headphones with a microphone.",
        "price_minor": 7900,
        "currency": "EUR",
        "created_at": 1_710_000_000,
    },
]


@pytest.fixture(params=["tantivy", "opensearch", "elasticsearch"])
async def index(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SearchIndex]:
    name = f"products-test-{uuid.uuid4().hex[:12]}"
    if request.param == "tantivy":
        idx = open_search(f"tantivy://{tmp_path}/index", name)
    else:
        idx = open_search(backend_url(request.param), name)
    await idx.ping()
    yield idx
    await idx.close()


@pytest.fixture
async def loaded(index: SearchIndex) -> SearchIndex:
    await index.upsert(PRODUCTS)
    await index.refresh()
    return index


def ids(hits: list[dict[str, Any]]) -> list[str]:
    return [h["id"] for h in hits]


async def test_get_returns_stored_document_with_extra_fields(loaded: SearchIndex) -> None:
    doc = await loaded.get("p1")
    assert doc is not None
    assert doc["name"] == "Wireless Headphones"
    assert doc["price_minor"] == 19900
    assert doc["images"] == ["p1.png"]
    assert doc["rating"] == 4.5
    assert doc["created_at"] == datetime.fromtimestamp(1_700_000_000, UTC)
    assert await loaded.get("nope") is None


async def test_upsert_replaces_and_delete_removes(loaded: SearchIndex) -> None:
    await loaded.upsert([{**PRODUCTS[1], "name": "Bluetooth Boombox", "price_minor": 6100}])
    await loaded.delete(["p3", "unknown-id"])
    await loaded.refresh()
    doc = await loaded.get("p2")
    assert doc is not None
    assert (doc["name"], doc["price_minor"]) == ("Bluetooth Boombox", 6100)
    assert await loaded.get("p3") is None
    assert ids((await loaded.search(SearchQuery("speaker"))).hits) == []
    assert ids((await loaded.search(SearchQuery("boombox"))).hits) == ["p2"]
    everything = await loaded.search(SearchQuery())
    assert everything.total == 4


async def test_name_matches_rank_above_description_matches(loaded: SearchIndex) -> None:
    result = await loaded.search(SearchQuery("headphones"))
    assert set(ids(result.hits)) == {"p1", "p2", "p4", "p5"}
    assert result.total == 4
    assert result.hits[0]["id"] == "p1"  # the only one with the word in its name
    scores = [h["score"] for h in result.hits]
    assert all(isinstance(s, float) for s in scores)
    assert scores == sorted(scores, reverse=True)


async def test_typos_are_tolerated_but_exact_words_win(loaded: SearchIndex) -> None:
    assert ids((await loaded.search(SearchQuery("headphnes"))).hits)[0] == "p1"
    assert "p3" in ids((await loaded.search(SearchQuery("cookbok"))).hits)
    assert ids((await loaded.search(SearchQuery("xylophone"))).hits) == []


async def test_every_word_must_match(loaded: SearchIndex) -> None:
    assert ids((await loaded.search(SearchQuery("python patterns"))).hits) == ["p4"]
    assert set(ids((await loaded.search(SearchQuery("python"))).hits)) == {"p3", "p4"}


async def test_empty_text_matches_all_and_facets_count_categories(loaded: SearchIndex) -> None:
    result = await loaded.search(SearchQuery())
    assert result.total == 5
    assert result.facets == {"category": {"audio": 2, "books": 2, "games": 1}}


async def test_category_filter_does_not_narrow_facets(loaded: SearchIndex) -> None:
    result = await loaded.search(SearchQuery("headphones", category="audio"))
    assert set(ids(result.hits)) == {"p1", "p2"}
    assert result.total == 2
    # counted over the text (and price) only, so other categories stay visible
    assert result.facets == {"category": {"audio": 2, "books": 1, "games": 1}}


async def test_price_range_filters_hits_and_facets(loaded: SearchIndex) -> None:
    result = await loaded.search(SearchQuery(min_price=4000, max_price=8000, sort="price_asc"))
    assert ids(result.hits) == ["p4", "p2", "p5"]
    assert result.facets == {"category": {"audio": 1, "books": 1, "games": 1}}
    assert all(h["score"] is None for h in result.hits)
    only_min = await loaded.search(SearchQuery(min_price=7900))
    assert set(ids(only_min.hits)) == {"p1", "p5"}


async def test_sort_orders_and_paging(loaded: SearchIndex) -> None:
    by_price_desc = await loaded.search(SearchQuery(sort="price_desc"))
    assert ids(by_price_desc.hits) == ["p1", "p5", "p2", "p4", "p3"]
    newest = await loaded.search(SearchQuery(sort="newest"))
    assert ids(newest.hits) == ["p5", "p3", "p2", "p1", "p4"]
    page = await loaded.search(SearchQuery(sort="price_asc", limit=2, offset=2))
    assert ids(page.hits) == ["p2", "p5"]
    assert page.total == 5
    counted = await loaded.search(SearchQuery(limit=0))
    assert (counted.hits, counted.total) == ([], 5)


async def test_invalid_queries_and_documents_are_rejected(index: SearchIndex) -> None:
    for bad in ({"sort": "cheapest"}, {"limit": -1}, {"offset": -5}, {"min_price": -1}):
        with pytest.raises(Exception) as caught:
            SearchQuery(**bad)
        assert getattr(caught.value, "code", None) is ErrorCode.INVALID_ARGUMENT
    with pytest.raises(Exception) as caught:
        await index.upsert([{"id": "x", "name": "No price", "price_minor": "12.50"}])
    assert getattr(caught.value, "code", None) is ErrorCode.INVALID_ARGUMENT
    await index.refresh()
    assert await index.get("x") is None


async def test_index_survives_reopen(tmp_path: Path, index: SearchIndex) -> None:
    """Writes are durable: a new handle on the same place sees them."""
    await index.upsert(PRODUCTS[:2])
    await index.refresh()
    url = getattr(index, "url", None)
    await index.close()
    again = (
        open_search(f"tantivy://{tmp_path}/index")
        if url is None
        else open_search(url, index.index_name)  # type: ignore[attr-defined]
    )
    try:
        assert {h["id"] for h in (await again.search(SearchQuery())).hits} == {"p1", "p2"}
    finally:
        await again.close()


async def test_tombstones_are_kept_for_get_but_never_searched(loaded: SearchIndex) -> None:
    """A removed product's tombstone lets a consumer spot stale events; shoppers never see it."""
    await loaded.upsert([{**PRODUCTS[0], "deleted": True}])
    await loaded.refresh()
    tombstone = await loaded.get("p1")
    assert tombstone is not None
    assert tombstone["deleted"] is True
    matching = await loaded.search(SearchQuery("headphones"))
    assert set(ids(matching.hits)) == {"p2", "p4", "p5"}
    assert matching.total == 3
    everything = await loaded.search(SearchQuery())
    assert everything.total == 4
    assert "p1" not in ids(everything.hits)
    assert everything.facets == {"category": {"audio": 1, "books": 2, "games": 1}}
    await loaded.upsert([PRODUCTS[0]])  # a newer upsert brings it back
    await loaded.refresh()
    assert (await loaded.search(SearchQuery())).total == 5


def test_cluster_urls_pick_their_adapter_and_are_kept_as_given() -> None:
    """`opensearch[s]://` opens OpenSearch and `elasticsearch://`/`http[s]://` Elasticsearch;
    each keeps the URL it was given (so reopening `index.url` picks the same adapter) and
    connects over the http(s) URL it stands for."""
    from emporium.chassis.search.dsl import http_url
    from emporium.chassis.search.elastic import ElasticsearchIndex
    from emporium.chassis.search.opensearch import OpenSearchIndex

    cases = {
        "opensearch://search:9200": (OpenSearchIndex, "http://search:9200"),
        "opensearchs://u:p@vpc-x.eu-west-1.es.amazonaws.com:443": (
            OpenSearchIndex,
            "https://u:p@vpc-x.eu-west-1.es.amazonaws.com:443",
        ),
        "elasticsearch://search:9200": (ElasticsearchIndex, "http://search:9200"),
        "https://search:9200": (ElasticsearchIndex, "https://search:9200"),
    }
    for url, (kind, connects_to) in cases.items():
        index = open_search(url, "products")
        assert type(index) is kind
        assert getattr(index, "url", None) == url
        assert http_url(url) == connects_to
    with pytest.raises(ValueError, match="opensearch"):
        open_search("solr://search:8983")


@pytest.mark.parametrize("backend", ["opensearch", "elasticsearch"])
async def test_replicas_creating_the_index_at_once_all_succeed(backend: str) -> None:
    """Several search-service replicas starting together on a new index: each finds it missing
    and creates it; the ones that lose the race use the winner's index."""
    url, name = backend_url(backend), f"products-test-{uuid.uuid4().hex[:12]}"
    replicas = [open_search(url, name) for _ in range(4)]
    try:
        await asyncio.gather(*(r.ping() for r in replicas))
        await replicas[0].upsert(PRODUCTS[:1])
        await replicas[0].refresh()
        for r in replicas:
            assert ids((await r.search(SearchQuery("headphones"))).hits) == ["p1"]
    finally:
        await asyncio.gather(*(r.close() for r in replicas))
