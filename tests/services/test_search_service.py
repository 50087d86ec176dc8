"""search-service end to end inside one process: `product.updated` events published on a
real embedded bus, applied by the real consumer into a Tantivy index on disk (`[tantivy]`) or
a real OpenSearch node (`[opensearch]`, .ci/opensearch.sh), then searched over a real gRPC
server (identity, error mapping and protobuf translation included)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc
import pytest

from emporium.chassis.bus.base import EventBus
from emporium.chassis.bus.factory import open_bus
from emporium.chassis.events.consumer import EventConsumer
from emporium.chassis.events.envelope import Event, from_delivery, to_message
from emporium.chassis.events.outbox import build_event
from emporium.chassis.rpc.client import create_channel, domain_error_from_rpc
from emporium.chassis.rpc.identity import Caller
from emporium.chassis.rpc.server import create_server
from emporium.chassis.search.base import SearchQuery
from emporium.chassis.search.factory import open_search
from emporium.contracts.events import ProductUpdatedV1
from emporium.contracts.rpc.search.v1 import search_pb2, search_pb2_grpc
from emporium.services.search.consumers import product_updated_consumer
from emporium.services.search.rpc import SearchServicer
from emporium.services.search.store import ProductIndex
from tests.backends import backend_url
from tests.events_support import read_dlq

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
CATALOG: list[dict[str, Any]] = [
    {
        "product_id": "p-headphones",
        "sku": "HP-1",
        "name": "Wireless Headphones",
        "description": "Over-ear, noise cancelling.",
        "category": "audio",
        "price": Decimal("199.00"),
        "attributes": {"color": "black", "wireless": True, "weight_g": 250, "rating": 4.5},
        "image_urls": ["http://cdn/images/a.png"],
    },
    {
        "product_id": "p-speaker",
        "sku": "SP-1",
        "name": "Bluetooth Speaker",
        "description": "Pairs well with your headphones.",
        "category": "audio",
        "price": Decimal("59.00"),
    },
    {
        "product_id": "p-headset",
        "sku": "GM-1",
        "name": "Gaming Headset",
        "description": "Wired headphones with a microphone.",
        "category": "games",
        "price": Decimal("79.00"),
    },
    {
        "product_id": "p-cookbook",
        "sku": "BK-1",
        "name": "Python Cookbook",
        "description": "Recipes for Python 3.",
        "category": "books",
        "price": Decimal("39.00"),
    },
    {
        "product_id": "p-patterns",
        "sku": "BK-2",
        "name": "Architecture Patterns with Python",
        "description": "Domain modelling; headphones not included.",
        "category": "books",
        "price": Decimal("45.00"),
    },
]


def product_event(at: datetime, **fields: Any) -> Event:
    event = build_event(ProductUpdatedV1.TOPIC, ProductUpdatedV1(**fields), "product")
    return replace(event, time=at)


@dataclass
class SearchWorld:
    bus: EventBus
    consumer: EventConsumer
    products: ProductIndex
    stub: search_pb2_grpc.SearchServiceStub

    async def publish(self, *events: Event) -> None:
        await self.bus.publish([to_message(ProductUpdatedV1.TOPIC, e) for e in events])
        await self.drain(len(events))

    async def drain(self, expected: int) -> None:
        """Run the consumer until `expected` deliveries were handled (bounded, never a sleep)."""
        handled, deadline = 0, time.monotonic() + 15
        while handled < expected and time.monotonic() < deadline:
            handled += await self.consumer.poll_once()
        assert handled == expected

    async def search(self, **fields: Any) -> search_pb2.SearchResponse:
        response: search_pb2.SearchResponse = await self.stub.Search(
            search_pb2.SearchRequest(**fields)
        )
        return response


@pytest.fixture(params=["tantivy", "opensearch"])
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SearchWorld]:
    if request.param == "tantivy":
        index = open_search(f"tantivy://{tmp_path}/search-index")
    else:
        index = open_search(backend_url("opensearch"), f"products-test-{uuid.uuid4().hex[:12]}")
    bus = open_bus(f"embedded://{tmp_path}/bus.sqlite3", client_id="test-search")
    await bus.start()
    products = ProductIndex(index)
    consumer = product_updated_consumer(bus, "search", products)
    await consumer.start()
    server = create_server("search")
    search_pb2_grpc.add_SearchServiceServicer_to_server(SearchServicer(products), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = create_channel(f"127.0.0.1:{port}", service="test", caller=Caller.anonymous())
    try:
        yield SearchWorld(bus, consumer, products, search_pb2_grpc.SearchServiceStub(channel))
    finally:
        await channel.close()
        await server.stop(None)
        await consumer.close()
        await bus.close()
        await index.close()


@pytest.fixture
async def catalog(world: SearchWorld) -> SearchWorld:
    await world.publish(
        *(product_event(T0 + timedelta(minutes=i), **p) for i, p in enumerate(CATALOG))
    )
    return world


def ids(response: search_pb2.SearchResponse) -> list[str]:
    return [item.id for item in response.items]


async def test_items_carry_the_product_fields(catalog: SearchWorld) -> None:
    found = await catalog.search(q="wireless headphones")
    (item,) = found.items
    assert (item.id, item.sku, item.name, item.category) == (
        "p-headphones",
        "HP-1",
        "Wireless Headphones",
        "audio",
    )
    assert (item.price_minor, item.currency) == (19900, "USD")
    assert item.description == "Over-ear, noise cancelling."
    assert list(item.image_urls) == ["http://cdn/images/a.png"]
    assert item.attributes["color"].string_value == "black"
    assert item.attributes["wireless"].bool_value is True
    assert item.attributes["weight_g"].int_value == 250
    assert item.attributes["rating"].double_value == 4.5
    assert item.updated_at.ToDatetime(tzinfo=UTC) == T0
    assert item.created_at.ToDatetime(tzinfo=UTC) == T0


async def test_name_matches_rank_first_and_typos_are_tolerated(catalog: SearchWorld) -> None:
    exact = await catalog.search(q="headphones")
    assert ids(exact)[0] == "p-headphones"  # the only one with the word in its name
    assert set(ids(exact)) == {"p-headphones", "p-speaker", "p-headset", "p-patterns"}
    assert exact.total == 4
    typo = await catalog.search(q="headphnes")
    assert ids(typo)[0] == "p-headphones"
    assert ids(await catalog.search(q="xylophone")) == []


async def test_filters_sorting_and_category_facets(catalog: SearchWorld) -> None:
    audio = await catalog.search(q="headphones", category="audio")
    assert set(ids(audio)) == {"p-headphones", "p-speaker"}
    assert audio.total == 2
    # facets ignore the category filter (the sidebar keeps the other categories)
    facets = {name: dict(f.counts) for name, f in audio.facets.items()}
    assert facets == {"category": {"audio": 2, "games": 1, "books": 1}}
    priced = await catalog.search(
        min_price=4000, max_price=8000, sort=search_pb2.SORT_ORDER_PRICE_ASC
    )
    assert ids(priced) == ["p-patterns", "p-speaker", "p-headset"]
    assert dict(priced.facets["category"].counts) == {"audio": 1, "books": 1, "games": 1}
    newest = await catalog.search(sort=search_pb2.SORT_ORDER_NEWEST)
    assert ids(newest) == [p["product_id"] for p in reversed(CATALOG)]
    by_price = await catalog.search(sort=search_pb2.SORT_ORDER_PRICE_DESC, limit=2)
    assert ids(by_price) == ["p-headphones", "p-headset"]


async def test_cursor_pagination_walks_every_result_once(catalog: SearchWorld) -> None:
    seen: list[str] = []
    cursor = ""
    for _ in range(5):
        page = await catalog.search(sort=search_pb2.SORT_ORDER_PRICE_ASC, limit=2, cursor=cursor)
        assert page.total == 5
        seen += ids(page)
        cursor = page.next_cursor
        if not cursor:
            break
    assert seen == ["p-cookbook", "p-patterns", "p-speaker", "p-headset", "p-headphones"]
    first = await catalog.search(sort=search_pb2.SORT_ORDER_PRICE_ASC, limit=2)
    with pytest.raises(grpc.aio.AioRpcError) as caught:  # a cursor is bound to its query
        await catalog.search(q="python", limit=2, cursor=first.next_cursor)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert {f.field for f in domain_error_from_rpc(caught.value).fields} == {"cursor"}


async def test_bad_requests_name_their_fields(catalog: SearchWorld) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await catalog.search(min_price=5000, max_price=100, limit=500)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert {f.field for f in domain_error_from_rpc(caught.value).fields} == {"max_price", "limit"}
    with pytest.raises(grpc.aio.AioRpcError) as negative:
        await catalog.search(min_price=-1)
    assert {f.field for f in domain_error_from_rpc(negative.value).fields} == {"min_price"}


async def test_a_deleted_product_leaves_the_index(catalog: SearchWorld) -> None:
    await catalog.publish(product_event(T0 + timedelta(hours=1), **{**CATALOG[0], "deleted": True}))
    found = await catalog.search(q="headphones")
    assert "p-headphones" not in ids(found)
    everything = await catalog.search()
    assert everything.total == 4
    assert dict(everything.facets["category"].counts) == {"audio": 1, "games": 1, "books": 2}


async def test_redelivery_is_idempotent(catalog: SearchWorld) -> None:
    change = product_event(T0 + timedelta(hours=1), **{**CATALOG[1], "price": Decimal("49.00")})
    await catalog.publish(change, change, change)  # same event id, delivered three times
    found = await catalog.search(q="speaker")
    assert ids(found) == ["p-speaker"]
    assert found.items[0].price_minor == 4900
    assert (await catalog.search()).total == 5


async def test_stale_events_are_ignored(catalog: SearchWorld) -> None:
    newer = product_event(T0 + timedelta(hours=2), **{**CATALOG[1], "name": "Party Speaker"})
    older = product_event(T0 + timedelta(hours=1), **{**CATALOG[1], "name": "Old Speaker"})
    await catalog.publish(newer, older)
    assert ids(await catalog.search(q="party")) == ["p-speaker"]
    assert ids(await catalog.search(q="old")) == []
    # a deletion is remembered: an older update arriving after it cannot resurrect the product
    deleted = product_event(T0 + timedelta(hours=3), **{**CATALOG[1], "deleted": True})
    await catalog.publish(deleted, newer)
    assert ids(await catalog.search(q="speaker")) == []
    tombstone = await catalog.products.indexed("p-speaker")
    assert tombstone is not None
    assert tombstone["deleted"] is True
    # ...while a genuinely newer one (product re-created) brings it back
    revived = product_event(T0 + timedelta(hours=4), **{**CATALOG[1], "name": "New Speaker"})
    await catalog.publish(revived)
    assert ids(await catalog.search(q="speaker")) == ["p-speaker"]


async def test_a_fetched_batch_is_one_index_write(
    world: SearchWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each index write is a segment commit (or a refresh): the catalog's five products plus
    an older and a newer change of one of them, fetched together, are one write of five."""
    writes: list[list[str]] = []
    real_upsert = world.products.index.upsert

    async def counted(docs: Any) -> None:
        writes.append(sorted(d["id"] for d in docs))
        await real_upsert(docs)

    monkeypatch.setattr(world.products.index, "upsert", counted)
    renamed = {**CATALOG[1], "name": "Party Speaker"}
    await world.publish(
        *(product_event(T0 + timedelta(minutes=i), **p) for i, p in enumerate(CATALOG)),
        product_event(T0 + timedelta(hours=2), **renamed),
        product_event(T0 + timedelta(hours=1), **{**CATALOG[1], "name": "Old Speaker"}),
    )
    assert writes == [sorted(p["product_id"] for p in CATALOG)]
    assert ids(await world.search(q="party")) == ["p-speaker"]
    assert ids(await world.search(q="old")) == []
    assert (await world.search()).total == len(CATALOG)


async def test_a_poison_event_is_parked_and_the_rest_of_its_batch_indexed(
    world: SearchWorld,
) -> None:
    good = product_event(T0, **CATALOG[0])
    poison = replace(product_event(T0, **CATALOG[1]), data={"product_id": 7})
    await world.publish(good, poison, product_event(T0, **CATALOG[2]))
    assert sorted(ids(await world.search())) == sorted(["p-headphones", "p-headset"])
    assert from_delivery(await read_dlq(world.bus, ProductUpdatedV1.TOPIC)).id == poison.id


@pytest.mark.parametrize("world", ["tantivy"], indirect=True)
async def test_a_second_writer_cannot_touch_the_index(catalog: SearchWorld, tmp_path: Path) -> None:
    """Tantivy's writer lock: only search-service writes its directory."""
    intruder = open_search(f"tantivy://{tmp_path}/search-index")
    try:
        with pytest.raises(ValueError, match="LockBusy"):
            await intruder.upsert([{"id": f"x-{uuid.uuid4().hex}", "name": "Intruder"}])
        assert (await intruder.search(SearchQuery())).total == 5  # reading is fine
    finally:
        await intruder.close()
    assert (await catalog.search()).total == 5
