"""`/api/v1/analytics/*`: the admin reports (analytics-service). Ranges are RFC 3339 times
and default to the last 30 days up to now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from emporium.chassis.errors import FieldError, invalid
from emporium.chassis.rpc.identity import acting_as
from emporium.contracts.rpc.analytics.v1 import analytics_pb2
from emporium.services.api_gateway.convert import rfc3339, timestamp
from emporium.services.api_gateway.schemas import MAX_LIMIT, problem_responses
from emporium.services.api_gateway.security import Admin, Gateway

router = APIRouter(prefix="/api/v1/analytics", tags=["analytics"])
DEFAULT_RANGE = timedelta(days=30)
From = Annotated[
    datetime | None, Query(alias="from", description="RFC 3339; default now - 30 days")
]
To = Annotated[datetime | None, Query(alias="to", description="RFC 3339; default now")]
ADMIN_ERRORS = problem_responses(401, 403)


class Granularity(StrEnum):
    hour = "hour"
    day = "day"


GRANULARITY_TO_PROTO = {
    Granularity.hour: analytics_pb2.GRANULARITY_HOUR,
    Granularity.day: analytics_pb2.GRANULARITY_DAY,
}


class SalesBucket(BaseModel):
    bucket: str | None
    orders: int
    revenue_minor: int


class SalesReport(BaseModel):
    orders: int
    paid_orders: int
    revenue_minor: int
    currency: str
    series: list[SalesBucket]


class TopProduct(BaseModel):
    product_id: str
    units: int
    revenue_minor: int


class TopProducts(BaseModel):
    items: list[TopProduct]


class LowStockItem(BaseModel):
    sku: str
    available: int
    threshold: int
    at: str | None


class LowStock(BaseModel):
    items: list[LowStockItem]


def report_range(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    """[from, to) with the defaults filled in; naive times are UTC; from must precede to."""
    end = _utc(end) if end is not None else datetime.now(UTC)
    start = _utc(start) if start is not None else end - DEFAULT_RANGE
    if start >= end:
        raise invalid("`from` must be before `to`", FieldError("from", "must be before `to`"))
    return start, end


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@router.get(
    "/sales",
    response_model=SalesReport,
    summary="Orders, paid orders and revenue over a range, bucketed by hour or day (admin)",
    responses=ADMIN_ERRORS,
)
async def sales(
    caller: Admin,
    backends: Gateway,
    start: From = None,
    end: To = None,
    granularity: Granularity = Granularity.day,
) -> dict[str, Any]:
    start, end = report_range(start, end)
    with acting_as(caller):
        report = await backends.analytics.GetSalesReport(
            analytics_pb2.GetSalesReportRequest(
                from_time=timestamp(start),
                to_time=timestamp(end),
                granularity=GRANULARITY_TO_PROTO[granularity],
            )
        )
    return {
        "orders": report.orders,
        "paid_orders": report.paid_orders,
        "revenue_minor": report.revenue_minor,
        "currency": report.currency,
        "series": [
            {"bucket": rfc3339(b.bucket), "orders": b.orders, "revenue_minor": b.revenue_minor}
            for b in report.series
        ],
    }


@router.get(
    "/top-products",
    response_model=TopProducts,
    summary="Best-selling products over a range (admin)",
    responses=ADMIN_ERRORS,
)
async def top_products(
    caller: Admin,
    backends: Gateway,
    start: From = None,
    end: To = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 10,
) -> dict[str, Any]:
    start, end = report_range(start, end)
    with acting_as(caller):
        answer = await backends.analytics.GetTopProducts(
            analytics_pb2.GetTopProductsRequest(
                from_time=timestamp(start), to_time=timestamp(end), limit=limit
            )
        )
    items = [
        {"product_id": p.product_id, "units": p.units, "revenue_minor": p.revenue_minor}
        for p in answer.items
    ]
    return {"items": items}


@router.get(
    "/low-stock",
    response_model=LowStock,
    summary="Latest low-stock alerts, from `inventory.low` events (admin)",
    responses=ADMIN_ERRORS,
)
async def low_stock(
    caller: Admin,
    backends: Gateway,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    with acting_as(caller):
        answer = await backends.analytics.GetLowStock(analytics_pb2.GetLowStockRequest(limit=limit))
    items = [
        {"sku": i.sku, "available": i.available, "threshold": i.threshold, "at": rfc3339(i.at)}
        for i in answer.items
    ]
    return {"items": items}
