"""analytics-service end to end inside one process: real CloudEvents published on a real
embedded bus, appended by the real consumer to fact tables on chDB (ClickHouse's engine),
and reported over a real gRPC server with caller identity (admin only)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from emporium.chassis.bus.base import EventBus
from emporium.chassis.bus.factory import open_bus
from emporium.chassis.events.consumer import EventConsumer
from emporium.chassis.events.envelope import Event, from_delivery, to_message
from emporium.chassis.olap.factory import open_olap
from emporium.chassis.rpc.client import create_channel, domain_error_from_rpc
from emporium.chassis.rpc.identity import Caller
from emporium.chassis.rpc.server import create_server
from emporium.contracts.events import (
    InventoryLowV1,
    OrderCompletedV1,
    OrderCreatedV1,
    PaymentStatus,
)
from emporium.contracts.events.base import EventModel
from emporium.contracts.events.order_created import OrderLineV1
from emporium.contracts.events.registry import encode
from emporium.contracts.rpc.analytics.v1 import analytics_pb2, analytics_pb2_grpc
from emporium.services.analytics.consumers import facts_consumer
from emporium.services.analytics.rpc import AnalyticsServicer
from emporium.services.analytics.store import FactStore
from tests.events_support import read_dlq

T0 = datetime(2025, 3, 1, 10, 0, tzinfo=UTC)
ADMIN = Caller("u-admin", frozenset({"admin"}))
SHOPPER = Caller("u-ada", frozenset({"customer"}))


def cloud_event(model: EventModel, at: datetime) -> Event:
    """A CloudEvent as a producer's relay would publish it (no outbox needed here)."""
    _, event_type, subject, data = encode(model)
    return Event(source="/emporium/test", type=event_type, subject=subject, data=data, time=at)


def created(order: str, *lines: tuple[str, int, str], currency: str = "USD") -> OrderCreatedV1:
    order_lines = [
        OrderLineV1(sku=f"SKU-{pid}", quantity=n, unit_price=Decimal(price), product_id=pid)
        for pid, n, price in lines
    ]
    total = sum((Decimal(price) * n for _, n, price in lines), Decimal("0"))
    return OrderCreatedV1(
        order_id=order, user_id="u-ada", lines=order_lines, total=total, currency=currency
    )


def completed(
    order: str, amount: str, status: PaymentStatus = PaymentStatus.CAPTURED, currency: str = "USD"
) -> OrderCompletedV1:
    return OrderCompletedV1(
        order_id=order,
        payment_id=f"pay-{order}",
        amount=Decimal(amount),
        currency=currency,
        status=status,
        user_id="u-ada",
    )


def stamp(moment: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(moment)
    return out


@dataclass
class AnalyticsWorld:
    bus: EventBus
    consumer: EventConsumer
    port: int
    store: FactStore
    channels: list[Any] = field(default_factory=list)

    async def publish(self, *pairs: tuple[EventModel, Event]) -> None:
        await self.bus.publish([to_message(m.TOPIC, e) for m, e in pairs])
        handled, deadline = 0, time.monotonic() + 20
        while handled < len(pairs) and time.monotonic() < deadline:
            handled += await self.consumer.poll_once()
        assert handled == len(pairs)

    async def events(self, *items: tuple[EventModel, datetime]) -> list[Event]:
        pairs = [(m, cloud_event(m, at)) for m, at in items]
        await self.publish(*pairs)
        return [e for _, e in pairs]

    def stub(self, caller: Caller) -> analytics_pb2_grpc.AnalyticsServiceStub:
        channel = create_channel(
            f"127.0.0.1:{self.port}", service="test", caller=caller, default_timeout=10
        )
        self.channels.append(channel)
        return analytics_pb2_grpc.AnalyticsServiceStub(channel)

    async def sales(self, caller: Caller = ADMIN, **fields: Any) -> analytics_pb2.SalesReport:
        report: analytics_pb2.SalesReport = await self.stub(caller).GetSalesReport(
            analytics_pb2.GetSalesReportRequest(**fields)
        )
        return report

    async def top(self, caller: Caller = ADMIN, **fields: Any) -> list[tuple[str, int, int]]:
        answer = await self.stub(caller).GetTopProducts(
            analytics_pb2.GetTopProductsRequest(**fields)
        )
        return [(p.product_id, p.units, p.revenue_minor) for p in answer.items]

    async def low_stock(self, caller: Caller = ADMIN, **fields: Any) -> list[Any]:
        answer = await self.stub(caller).GetLowStock(analytics_pb2.GetLowStockRequest(**fields))
        return [
            (i.sku, i.available, i.threshold, i.at.ToDatetime(tzinfo=UTC)) for i in answer.items
        ]


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[AnalyticsWorld]:
    olap = open_olap(f"chdb://{tmp_path}/analytics-olap")
    bus = open_bus(f"embedded://{tmp_path}/bus.sqlite3", client_id="test-analytics")
    await bus.start()
    store = FactStore(olap)
    consumer = facts_consumer(bus, "analytics", store)
    await consumer.start()
    server = create_server("analytics")
    analytics_pb2_grpc.add_AnalyticsServiceServicer_to_server(AnalyticsServicer(store), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    world = AnalyticsWorld(bus, consumer, port, store)
    try:
        yield world
    finally:
        for channel in world.channels:
            await channel.close()
        await server.stop(None)
        await consumer.close()
        await bus.close()
        await olap.close()


RANGE = {"from_time": stamp(T0), "to_time": stamp(T0 + timedelta(hours=3))}


# Two orders in the first hour (one paid, one declined), one paid in the third hour, and one
# outside the range.
SHOP: list[tuple[EventModel, datetime]] = [
    (created("o1", ("p-phones", 2, "59.99"), ("p-case", 1, "10.00")), T0),
    (completed("o1", "129.98"), T0 + timedelta(minutes=1)),
    (created("o2", ("p-phones", 1, "59.99")), T0 + timedelta(minutes=30)),
    (completed("o2", "59.99", PaymentStatus.DECLINED), T0 + timedelta(minutes=31)),
    (created("o3", ("p-case", 4, "10.00")), T0 + timedelta(hours=2, minutes=5)),
    (completed("o3", "40.00"), T0 + timedelta(hours=2, minutes=6)),
    (created("o4", ("p-phones", 9, "59.99")), T0 + timedelta(days=2)),
    (completed("o4", "539.91"), T0 + timedelta(days=2)),
]


async def shop(world: AnalyticsWorld) -> list[Event]:
    return await world.events(*SHOP)


async def test_sales_report_counts_orders_paid_orders_and_revenue(world: AnalyticsWorld) -> None:
    await shop(world)
    report = await world.sales(**RANGE, granularity=analytics_pb2.GRANULARITY_HOUR)
    assert (report.orders, report.paid_orders, report.revenue_minor) == (3, 2, 12998 + 4000)
    assert report.currency == "USD"
    series = [(b.bucket.ToDatetime(tzinfo=UTC), b.orders, b.revenue_minor) for b in report.series]
    assert series == [
        (T0, 2, 12998),
        (T0 + timedelta(hours=1), 0, 0),  # empty buckets are present, with zeros
        (T0 + timedelta(hours=2), 1, 4000),
    ]
    daily = await world.sales(**RANGE)  # day granularity by default
    assert [(b.orders, b.revenue_minor) for b in daily.series] == [(3, 16998)]


async def test_top_products_count_paid_orders_only(world: AnalyticsWorld) -> None:
    await shop(world)
    assert await world.top(**RANGE) == [
        ("p-case", 5, 5000),
        ("p-phones", 2, 11998),  # o2 was declined: its unit is not a sale
    ]
    assert await world.top(**RANGE, limit=1) == [("p-case", 5, 5000)]


async def test_reports_are_per_currency(world: AnalyticsWorld) -> None:
    await world.events(
        (created("e1", ("p-phones", 1, "50.00"), currency="EUR"), T0),
        (completed("e1", "50.00", currency="EUR"), T0 + timedelta(minutes=1)),
    )
    assert (await world.sales(**RANGE)).orders == 0
    euros = await world.sales(**RANGE, currency="EUR")
    assert (euros.orders, euros.paid_orders, euros.revenue_minor, euros.currency) == (
        1,
        1,
        5000,
        "EUR",
    )
    assert await world.top(**RANGE, currency="eur") == [("p-phones", 1, 5000)]


async def test_a_redelivered_event_is_counted_once(world: AnalyticsWorld) -> None:
    events = await shop(world)
    # the relay published everything twice (same CloudEvent ids and times)
    await world.publish(*((m, replace(e)) for (m, _), e in zip(SHOP, events, strict=True)))
    report = await world.sales(**RANGE)
    assert (report.orders, report.paid_orders, report.revenue_minor) == (3, 2, 16998)
    assert await world.top(**RANGE) == [("p-case", 5, 5000), ("p-phones", 2, 11998)]


async def test_a_fetched_batch_is_one_insert_per_table(
    world: AnalyticsWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every OLAP insert is a part to write and merge: the eight events of SHOP, fetched
    together, go in as one insert into each of the three tables they touch."""
    inserts: list[tuple[str, int]] = []
    real_insert = world.store.olap.insert

    async def counted(table: str, columns: Any, rows: Any) -> None:
        inserts.append((table, len(rows)))
        await real_insert(table, columns, rows)

    monkeypatch.setattr(world.store.olap, "insert", counted)
    await shop(world)
    schema = world.store.schema
    assert sorted(inserts) == sorted([(schema.lines, 5), (schema.orders, 4), (schema.payments, 4)])
    report = await world.sales(**RANGE)
    assert (report.orders, report.paid_orders, report.revenue_minor) == (3, 2, 16998)


async def test_a_poison_event_is_parked_and_the_rest_of_its_batch_recorded(
    world: AnalyticsWorld,
) -> None:
    good = [(m, cloud_event(m, at)) for m, at in SHOP[:2]]
    _, event_type, subject, _ = encode(SHOP[2][0])
    poison = Event(
        source="/emporium/test", type=event_type, subject=subject, data={"order_id": 7}, time=T0
    )
    await world.publish(good[0], (SHOP[2][0], poison), good[1])
    report = await world.sales(**RANGE)
    assert (report.orders, report.paid_orders, report.revenue_minor) == (1, 1, 12998)
    assert from_delivery(await read_dlq(world.bus, OrderCreatedV1.TOPIC)).id == poison.id


async def test_low_stock_lists_the_latest_alert_per_sku(world: AnalyticsWorld) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    low = [
        (InventoryLowV1(sku="HP-1", available=3, threshold=5), now - timedelta(hours=3)),
        (InventoryLowV1(sku="HP-1", available=1, threshold=5), now - timedelta(hours=1)),
        (InventoryLowV1(sku="BK-2", available=0, threshold=2), now - timedelta(hours=2)),
    ]
    (first, *_) = await world.events(*low)
    await world.publish((low[0][0], replace(first)))  # redelivered: still one row per sku
    assert await world.low_stock() == [
        ("HP-1", 1, 5, now - timedelta(hours=1)),
        ("BK-2", 0, 2, now - timedelta(hours=2)),
    ]
    assert len(await world.low_stock(limit=1)) == 1


async def test_reports_are_for_admins_only(world: AnalyticsWorld) -> None:
    for call in (world.sales(SHOPPER), world.top(SHOPPER), world.low_stock(SHOPPER)):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await world.sales(Caller.anonymous())
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_bad_parameters_name_the_field(world: AnalyticsWorld) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await world.sales(from_time=RANGE["to_time"], to_time=RANGE["from_time"])
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f.field for f in domain_error_from_rpc(caught.value).fields] == ["from"]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await world.top(**RANGE, limit=101)
    assert [f.field for f in domain_error_from_rpc(caught.value).fields] == ["limit"]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await world.sales(**RANGE, currency="dollars")
    assert [f.field for f in domain_error_from_rpc(caught.value).fields] == ["currency"]


async def test_far_past_and_far_future_ranges_are_reports_not_errors(world: AnalyticsWorld) -> None:
    """The schemathesis 500: a `to` in year 73 (and offsets that leave year 1) reached chDB,
    whose DateTime64 cannot hold it. Ranges are clamped to what the store holds."""
    await shop(world)
    far_past = stamp(datetime(73, 7, 18, 0, 39, 32, tzinfo=UTC))
    assert (await world.top(to_time=far_past)) == []
    empty = await world.sales(to_time=far_past)
    assert (empty.orders, list(empty.series)) == (0, [])
    year_one = stamp(datetime(1, 1, 1, tzinfo=UTC))
    year_9999 = stamp(datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC))
    everything = await world.top(from_time=year_one, to_time=year_9999)
    assert {p for p, _, _ in everything} == {"p-phones", "p-case"}


async def test_a_timestamp_protobuf_cannot_represent_is_invalid_argument(
    world: AnalyticsWorld,
) -> None:
    """Seconds beyond year 9999 or negative nanos: INVALID_ARGUMENT naming the field."""
    beyond = Timestamp(seconds=10**12)
    for call in (world.top(to_time=beyond), world.sales(from_time=Timestamp(nanos=-1))):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert [f.field for f in domain_error_from_rpc(caught.value).fields] in (["to"], ["from"])
