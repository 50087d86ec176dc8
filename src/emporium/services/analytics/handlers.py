"""Use cases of analytics-service: record the facts of each event, and the three reports.

Recording is append-only: a redelivered event is inserted again with the same sorting key
and the reports read with `FINAL`, which counts it once (see the domain module), so no
inbox is needed. Reports are for admins only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, NamedTuple

from emporium.chassis.rpc.identity import require_admin
from emporium.contracts.events import InventoryLowV1, OrderCompletedV1, OrderCreatedV1
from emporium.services.analytics import domain
from emporium.services.analytics.store import FactStore

EventPayload = OrderCreatedV1 | OrderCompletedV1 | InventoryLowV1


class Fact(NamedTuple):
    """One event to record: its id, its CloudEvent `time` and its payload."""

    event_id: str
    occurred_at: datetime
    event: EventPayload


async def record(store: FactStore, facts: Iterable[Fact]) -> None:
    """Append the facts of these events: one insert per table, whatever their number."""
    await store.append(domain.merged(_batches(store.schema, fact) for fact in facts))


def _batches(schema: domain.Schema, fact: Fact) -> list[domain.FactBatch]:
    event_id, occurred_at, event = fact
    if isinstance(event, OrderCreatedV1):
        return schema.order_created(event_id, occurred_at, event)
    if isinstance(event, OrderCompletedV1):
        return schema.order_completed(event_id, occurred_at, event)
    return schema.inventory_low(event_id, occurred_at, event)


async def sales_report(
    store: FactStore, params: Mapping[str, str | None], now: datetime
) -> dict[str, Any]:
    """`GET /api/v1/analytics/sales`."""
    require_admin()
    report = domain.parse_report_params(params, now, bucketed=True)
    (totals,) = await store.rows(store.schema.sales_totals(report))
    series = await store.rows(store.schema.sales_series(report))
    return domain.sales_response(report, totals, series)


async def top_products(
    store: FactStore, params: Mapping[str, str | None], now: datetime
) -> dict[str, Any]:
    """`GET /api/v1/analytics/top-products`."""
    require_admin()
    report = domain.parse_report_params(
        params, now, default_limit=domain.TOP_PRODUCTS_DEFAULT_LIMIT
    )
    return domain.top_products_response(await store.rows(store.schema.top_products(report)))


async def low_stock(
    store: FactStore, params: Mapping[str, str | None], now: datetime
) -> dict[str, Any]:
    """`GET /api/v1/analytics/low-stock`: the latest alert per sku."""
    require_admin()
    report = domain.parse_report_params(
        params,
        now,
        default_limit=domain.LOW_STOCK_DEFAULT_LIMIT,
        max_limit=domain.LOW_STOCK_MAX_LIMIT,
    )
    return domain.low_stock_response(await store.rows(store.schema.low_stock_report(report)))
