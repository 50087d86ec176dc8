"""recommendation-service end to end inside one process: real CloudEvents published on a real
embedded bus, folded by the real consumer into the kv feature store (in-process, and a real
Redis), and queried over a real gRPC server with caller identity."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc
import pytest

from emporium.chassis.bus.base import EventBus
from emporium.chassis.bus.factory import open_bus
from emporium.chassis.events.consumer import EventConsumer
from emporium.chassis.events.envelope import Event, to_message
from emporium.chassis.kv.base import KeyValueStore
from emporium.chassis.kv.factory import open_kv
from emporium.chassis.rpc.client import create_channel, domain_error_from_rpc
from emporium.chassis.rpc.identity import Caller
from emporium.chassis.rpc.server import create_server
from emporium.contracts.events import (
    OrderCompletedV1,
    OrderCreatedV1,
    PaymentStatus,
    ProductUpdatedV1,
    UserRegisteredV1,
)
from emporium.contracts.events.base import EventModel
from emporium.contracts.events.order_created import OrderLineV1
from emporium.contracts.events.registry import encode
from emporium.contracts.rpc.recommendation.v1 import recommendation_pb2, recommendation_pb2_grpc
from emporium.services.recommendation.consumers import feature_consumer
from emporium.services.recommendation.rpc import RecommendationServicer
from emporium.services.recommendation.store import FeatureStore
from tests.backends import backend_url

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
ADA = Caller("u-ada", frozenset({"customer"}))
BOB = Caller("u-bob", frozenset({"customer"}))
ANONYMOUS = Caller.anonymous()

# p-phones, p-case, p-cable, p-speaker: audio; p-book: books
CATALOG = {
    "p-phones": "audio",
    "p-case": "audio",
    "p-cable": "audio",
    "p-speaker": "audio",
    "p-book": "books",
    "p-novel": "books",
}


def cloud_event(model: EventModel, event_id: str | None = None) -> Event:
    """A CloudEvent as a producer's relay would publish it (no outbox needed here)."""
    _, event_type, subject, data = encode(model)
    event = Event(source="/emporium/test", type=event_type, subject=subject, data=data, time=T0)
    return event if event_id is None else replace(event, id=event_id)


def product(pid: str, category: str, deleted: bool = False) -> ProductUpdatedV1:
    return ProductUpdatedV1(
        product_id=pid, name=pid, category=category, price=Decimal("10.00"), deleted=deleted
    )


def order(user: str, *units: tuple[str, int]) -> OrderCreatedV1:
    lines = [
        OrderLineV1(sku=f"SKU-{pid}", quantity=n, unit_price=Decimal("10.00"), product_id=pid)
        for pid, n in units
    ]
    total = Decimal("10.00") * sum(n for _, n in units)
    return OrderCreatedV1(
        order_id=f"o-{uuid.uuid4().hex[:8]}", user_id=user, lines=lines, total=total, currency="USD"
    )


def completed(created: OrderCreatedV1, status: PaymentStatus) -> OrderCompletedV1:
    return OrderCompletedV1(
        order_id=created.order_id,
        payment_id=f"pay-{created.order_id}",
        amount=created.total,
        status=status,
        user_id=created.user_id,
    )


def paid(*orders: OrderCreatedV1) -> list[EventModel]:
    """Each order followed by its captured payment: what makes a purchase."""
    return [m for o in orders for m in (o, completed(o, PaymentStatus.CAPTURED))]


@dataclass
class RecommendationWorld:
    bus: EventBus
    consumer: EventConsumer
    port: int
    channels: list[Any] = field(default_factory=list)

    async def publish(self, *models: EventModel) -> list[Event]:
        events = [cloud_event(m) for m in models]
        await self.publish_events(list(zip(models, events, strict=True)))
        return events

    async def publish_events(self, pairs: list[tuple[EventModel, Event]]) -> None:
        await self.bus.publish([to_message(m.TOPIC, e) for m, e in pairs])
        handled, deadline = 0, time.monotonic() + 15
        while handled < len(pairs) and time.monotonic() < deadline:
            handled += await self.consumer.poll_once()
        assert handled == len(pairs)

    async def recommend(self, caller: Caller = ANONYMOUS, **fields: Any) -> list[tuple[str, float]]:
        channel = create_channel(f"127.0.0.1:{self.port}", service="test", caller=caller)
        self.channels.append(channel)
        stub = recommendation_pb2_grpc.RecommendationServiceStub(channel)
        answer = await stub.GetRecommendations(
            recommendation_pb2.GetRecommendationsRequest(**fields)
        )
        return [(r.product_id, r.score) for r in answer.items]

    async def ids(self, caller: Caller = ANONYMOUS, **fields: Any) -> list[str]:
        return [pid for pid, _ in await self.recommend(caller, **fields)]


@pytest.fixture(params=["memory", "redis"], ids=["memory", "redis"])
async def kv(request: pytest.FixtureRequest) -> AsyncIterator[KeyValueStore]:
    url = "memory://" if request.param == "memory" else backend_url("redis")
    # a namespace of its own per test: the Redis server is shared and reused between runs
    store = open_kv(url, namespace=f"rec-test-{uuid.uuid4().hex[:12]}")
    await store.ping()
    yield store
    await store.close()


@pytest.fixture
async def world(kv: KeyValueStore, tmp_path: Path) -> AsyncIterator[RecommendationWorld]:
    bus = open_bus(f"embedded://{tmp_path}/bus.sqlite3", client_id="test-recommendation")
    await bus.start()
    store = FeatureStore(kv)
    consumer = feature_consumer(bus, "recommendation", store)
    await consumer.start()
    server = create_server("recommendation")
    recommendation_pb2_grpc.add_RecommendationServiceServicer_to_server(
        RecommendationServicer(store), server
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    world = RecommendationWorld(bus, consumer, port)
    await world.publish(*(product(pid, cat) for pid, cat in CATALOG.items()))
    try:
        yield world
    finally:
        for channel in world.channels:
            await channel.close()
        await server.stop(None)
        await consumer.close()
        await bus.close()


async def test_bought_together_comes_first_then_category_then_best_sellers(
    world: RecommendationWorld,
) -> None:
    await world.publish(
        *paid(
            order("u1", ("p-phones", 1), ("p-case", 1)),
            order("u2", ("p-phones", 1), ("p-case", 1), ("p-cable", 1)),
            order("u3", ("p-book", 5)),
        )
    )
    recs = await world.recommend(product_id="p-phones", limit=10)
    ids = [pid for pid, _ in recs]
    assert ids[:2] == ["p-case", "p-cable"]  # co-purchased 2x, then 1x
    assert ids[2] == "p-speaker"  # same category, never bought together
    assert ids[3:] == ["p-book"]  # best seller fallback (p-novel never sold)
    scores = dict(recs)
    assert scores["p-case"] == 1.0
    assert 0.6 <= scores["p-cable"] < scores["p-case"]
    assert 0.3 <= scores["p-speaker"] <= 0.5
    assert 0.0 <= scores["p-book"] <= 0.2


async def test_never_the_product_itself_nor_a_deleted_product(world: RecommendationWorld) -> None:
    await world.publish(*paid(order("u1", ("p-phones", 1), ("p-case", 1), ("p-cable", 3))))
    assert "p-cable" in await world.ids(product_id="p-phones")
    await world.publish(product("p-cable", "audio", deleted=True))
    for anchor in ("p-phones", "p-case", "p-cable", ""):
        ids = await world.ids(product_id=anchor, limit=50)
        assert "p-cable" not in ids
        assert anchor not in ids


async def test_best_sellers_without_any_signal(world: RecommendationWorld) -> None:
    assert await world.ids() == []  # nothing sold yet
    await world.publish(*paid(order("u1", ("p-book", 1)), order("u2", ("p-novel", 4))))
    assert await world.ids() == ["p-novel", "p-book"]
    assert await world.ids(product_id="p-unknown") == ["p-novel", "p-book"]
    assert await world.ids(limit=1) == ["p-novel"]


async def test_signed_in_users_get_their_co_purchases_without_what_they_bought(
    world: RecommendationWorld,
) -> None:
    await world.publish(
        UserRegisteredV1(user_id=ADA.user_id, email="ada@example.com", registered_at=T0),
        *paid(
            order("u-other", ("p-phones", 1), ("p-case", 1)),
            order(ADA.user_id, ("p-phones", 1)),
            order("u-other", ("p-novel", 9)),
        ),
    )
    ada = await world.ids(ADA)
    assert ada[0] == "p-case"  # bought with what Ada bought
    assert "p-phones" not in ada  # already hers
    assert (await world.ids(BOB))[0] == "p-novel"  # Bob bought nothing: best sellers
    error_code = None
    try:
        await world.ids(BOB, user_id=ADA.user_id)  # someone else's profile
    except grpc.aio.AioRpcError as exc:
        error_code = exc.code()
    assert error_code == grpc.StatusCode.PERMISSION_DENIED


async def test_a_redelivered_order_is_counted_once(world: RecommendationWorld) -> None:
    models = paid(order("u1", ("p-phones", 1), ("p-case", 1)))
    events = await world.publish(*models)
    again = list(zip(models, events, strict=True))
    await world.publish_events(again + again)
    await world.publish(*paid(order("u2", ("p-book", 1)), order("u3", ("p-book", 1))))
    # counted once, p-book (2 units) outsells p-case (1 unit, not 3)
    assert (await world.ids())[:1] == ["p-book"]


async def test_a_declined_order_is_no_purchase(world: RecommendationWorld) -> None:
    declined = order("u1", ("p-phones", 1), ("p-case", 1))
    await world.publish(declined, completed(declined, PaymentStatus.DECLINED))
    assert await world.ids() == []  # no best seller
    neighbours = dict(await world.recommend(product_id="p-phones"))
    assert neighbours["p-case"] <= 0.5  # only as the same category, not bought together
    await world.publish(*paid(order("u2", ("p-book", 1))))
    assert await world.ids() == ["p-book"]


async def test_a_payment_that_arrives_before_its_order_still_counts_once(
    world: RecommendationWorld,
) -> None:
    early = order("u1", ("p-novel", 2))
    await world.publish(completed(early, PaymentStatus.CAPTURED))
    assert await world.ids() == []  # the lines are not known yet
    await world.publish(early)
    assert await world.ids() == ["p-novel"]
    await world.publish(*paid(order("u2", ("p-book", 3))))
    assert await world.ids() == ["p-book", "p-novel"]  # 3 units beat 2, not 4


async def test_moving_a_product_to_another_category(world: RecommendationWorld) -> None:
    await world.publish(product("p-speaker", "books"))
    assert "p-speaker" not in await world.ids(product_id="p-phones")
    assert "p-speaker" in await world.ids(product_id="p-book")


async def test_bad_limit_names_the_field(world: RecommendationWorld) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await world.recommend(limit=101)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f.field for f in domain_error_from_rpc(caught.value).fields] == ["limit"]
