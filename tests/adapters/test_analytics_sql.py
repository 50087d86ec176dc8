"""analytics-service's DDL and report SQL run on chDB, ClickHouse's own engine in-process:
the numbers of each report from a few facts, including a redelivered event counted once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from emporium.chassis.olap import OlapStore, open_olap
from emporium.contracts.events import (
    InventoryLowV1,
    OrderCompletedV1,
    OrderCreatedV1,
    OrderLineV1,
    PaymentStatus,
)
from emporium.services.analytics.domain import (
    FactBatch,
    Schema,
    low_stock_response,
    parse_report_params,
    sales_response,
    top_products_response,
)

T0 = datetime(2025, 3, 1, 10, 15, tzinfo=UTC)
NOW = datetime(2025, 3, 3, tzinfo=UTC)
SCHEMA = Schema()


@pytest.fixture
async def olap(tmp_path: Path) -> AsyncIterator[OlapStore]:
    store = open_olap(f"chdb://{tmp_path}/olap")
    for statement in SCHEMA.ddl():
        await store.execute(statement)
    yield store
    await store.close()


def placed(order_id: str, *lines: tuple[str, int, str], currency: str = "USD") -> OrderCreatedV1:
    order_lines = [OrderLineV1(sku=s, quantity=q, unit_price=Decimal(p)) for s, q, p in lines]
    total = sum((line.unit_price * line.quantity for line in order_lines), Decimal(0))
    return OrderCreatedV1(
        order_id=order_id, user_id="u1", lines=order_lines, total=total, currency=currency
    )


def paid(
    order_id: str, amount: str, status: PaymentStatus = PaymentStatus.CAPTURED
) -> OrderCompletedV1:
    return OrderCompletedV1(
        order_id=order_id, payment_id=f"pay-{order_id}", amount=Decimal(amount), status=status
    )


async def insert(olap: OlapStore, batches: list[FactBatch]) -> None:
    for batch in batches:
        await olap.insert(batch.table, batch.columns, batch.rows)


async def load(olap: OlapStore) -> None:
    """Three orders on 1 March (one declined), one on 2 March, one in EUR, a redelivery."""
    o1 = placed("o1", ("A", 2, "10.00"), ("B", 1, "5.00"))
    await insert(olap, SCHEMA.order_created("e1", T0, o1))
    await insert(olap, SCHEMA.order_created("e1", T0, o1))  # redelivered: same event id
    await insert(olap, SCHEMA.order_completed("e2", T0 + timedelta(minutes=1), paid("o1", "25")))
    await insert(olap, SCHEMA.order_completed("e2", T0 + timedelta(minutes=1), paid("o1", "25")))
    o2 = placed("o2", ("B", 4, "5.00"))
    await insert(olap, SCHEMA.order_created("e3", T0 + timedelta(hours=2), o2))
    declined = paid("o2", "20", PaymentStatus.DECLINED)
    await insert(olap, SCHEMA.order_completed("e4", T0 + timedelta(hours=2), declined))
    o3 = placed("o3", ("C", 1, "7.50"))
    await insert(olap, SCHEMA.order_created("e5", T0 + timedelta(days=1), o3))
    await insert(olap, SCHEMA.order_completed("e6", T0 + timedelta(days=1), paid("o3", "7.50")))
    euro = placed("o4", ("A", 9, "1.00"), currency="EUR")
    await insert(olap, SCHEMA.order_created("e7", T0, euro))


RANGE = {"from": "2025-03-01T00:00:00Z", "to": "2025-03-03T00:00:00Z"}


async def test_sales_report_by_day(olap: OlapStore) -> None:
    await load(olap)
    report = parse_report_params(RANGE, NOW)
    totals = (await olap.query(*SCHEMA.sales_totals(report)))[0]
    series = await olap.query(*SCHEMA.sales_series(report))
    body = sales_response(report, totals, series)
    assert (body["orders"], body["paid_orders"], body["revenue_minor"]) == (3, 2, 3250)
    assert body["currency"] == "USD"
    assert body["series"] == [
        {"bucket": "2025-03-01T00:00:00Z", "orders": 2, "revenue_minor": 2500},
        {"bucket": "2025-03-02T00:00:00Z", "orders": 1, "revenue_minor": 750},
    ]


async def test_sales_report_by_hour_and_other_currency(olap: OlapStore) -> None:
    await load(olap)
    hourly = parse_report_params(
        {"from": "2025-03-01T10:00:00Z", "to": "2025-03-01T13:00:00Z", "granularity": "hour"}, NOW
    )
    series = await olap.query(*SCHEMA.sales_series(hourly))
    totals = (await olap.query(*SCHEMA.sales_totals(hourly)))[0]
    body = sales_response(hourly, totals, series)
    assert [(s["orders"], s["revenue_minor"]) for s in body["series"]] == [
        (1, 2500),
        (0, 0),
        (1, 0),
    ]
    euro = parse_report_params({**RANGE, "currency": "eur"}, NOW)
    totals = (await olap.query(*SCHEMA.sales_totals(euro)))[0]
    assert (int(totals["orders"]), int(totals["paid_orders"]), int(totals["revenue_minor"])) == (
        1,
        0,
        0,
    )


async def test_range_is_half_open(olap: OlapStore) -> None:
    await load(olap)
    report = parse_report_params(
        {"from": "2025-03-01T10:15:00Z", "to": "2025-03-01T12:15:00Z"}, NOW
    )
    totals = (await olap.query(*SCHEMA.sales_totals(report)))[0]
    assert int(totals["orders"]) == 1  # o1 at 10:15 is in, o2 at 12:15 is out


async def test_empty_tables_give_zeros(olap: OlapStore) -> None:
    report = parse_report_params(RANGE, NOW)
    totals = (await olap.query(*SCHEMA.sales_totals(report)))[0]
    series = await olap.query(*SCHEMA.sales_series(report))
    body = sales_response(report, totals, series)
    assert (body["orders"], body["paid_orders"], body["revenue_minor"]) == (0, 0, 0)
    assert [s["orders"] for s in body["series"]] == [0, 0]


async def test_top_products_counts_paid_orders_only(olap: OlapStore) -> None:
    await load(olap)
    report = parse_report_params(RANGE, NOW)
    body = top_products_response(await olap.query(*SCHEMA.top_products(report)))
    assert body["items"] == [
        {"product_id": "A", "units": 2, "revenue_minor": 2000},
        {"product_id": "C", "units": 1, "revenue_minor": 750},  # ties on units: revenue
        {"product_id": "B", "units": 1, "revenue_minor": 500},  # o2's 4 B were declined
    ]
    limited = parse_report_params({**RANGE, "limit": "1"}, NOW)
    assert len(await olap.query(*SCHEMA.top_products(limited))) == 1


async def test_low_stock_shows_the_latest_event_per_sku(olap: OlapStore) -> None:
    await insert(
        olap, SCHEMA.inventory_low("l1", T0, InventoryLowV1(sku="S1", available=4, threshold=5))
    )
    later = T0 + timedelta(hours=3)
    for _ in range(2):  # redelivered
        await insert(
            olap,
            SCHEMA.inventory_low("l2", later, InventoryLowV1(sku="S1", available=1, threshold=5)),
        )
    await insert(
        olap,
        SCHEMA.inventory_low(
            "l3", T0 + timedelta(hours=1), InventoryLowV1(sku="S2", available=0, threshold=2)
        ),
    )
    report = parse_report_params(RANGE, NOW)
    body = low_stock_response(await olap.query(*SCHEMA.low_stock_report(report)))
    assert body["items"] == [
        {"sku": "S1", "available": 1, "threshold": 5, "at": "2025-03-01T13:15:00Z"},
        {"sku": "S2", "available": 0, "threshold": 2, "at": "2025-03-01T11:15:00Z"},
    ]


async def test_ddl_can_run_twice(olap: OlapStore) -> None:
    for statement in SCHEMA.ddl():
        await olap.execute(statement)
    rows = await olap.query("SELECT count() AS n FROM order_facts")
    assert int(rows[0]["n"]) == 0
