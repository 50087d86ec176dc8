"""`/api/v1/analytics/*`: the admin reports (analytics-service). Ranges are RFC 3339 times
and default to the last 30 days up to now.

`from`/`to` are parsed here strictly (`convert.parse_time`), not by pydantic, which would
take `0.5` for a unix time and overflow on year 1 with a positive offset. analytics-service
checks them again and clamps them to the range its store holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from emporium.chassis.errors import FieldError, invalid
from emporium.chassis.rpc.identity import acting_as
from emporium.contracts.rpc.analytics.v1 import analytics_pb2
from emporium.services.api_gateway.convert import EARLIEST, parse_time, rfc3339, timestamp
from emporium.services.api_gateway.schemas import MAX_LIMIT, problem_responses, semantic_fields
from emporium.services.api_gateway.security import Admin, Gateway

router = APIRouter(prefix="/api/v1/analytics", tags=["analytics"])
DEFAULT_RANGE = timedelta(days=30)
TIME_FORMAT = {"format": "date-time"}
From = Annotated[
    str | None,
    Query(
        alias="from",
        description="RFC 3339, inclusive; default `to` - 30 days",
        json_schema_extra=TIME_FORMAT,
    ),
]
To = Annotated[
    str | None,
    Query(
        alias="to", description="RFC 3339, exclusive; default now", json_schema_extra=TIME_FORMAT
    ),
]
ADMIN_ERRORS = problem_responses(401, 403)
RANGE_RULES = {"from": "must not be after `to`"}


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


def report_range(start: str | None, end: str | None) -> tuple[datetime, datetime]:
    """[from, to) with the defaults filled in, in UTC; `from` must not be after `to` (an
    equal pair is an empty range)."""
    errors: list[FieldError] = []
    until = _time("to", end, errors) or datetime.now(UTC)
    since = _time("from", start, errors)
    if since is None:
        since = until - DEFAULT_RANGE if until - EARLIEST > DEFAULT_RANGE else EARLIEST
    if not errors and since > until:
        errors.append(FieldError("from", "must not be after `to`"))
    if errors:
        raise invalid("invalid report range", *errors)
    return since, until


def _time(name: str, text: str | None, errors: list[FieldError]) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_time(text)
    except ValueError:
        errors.append(FieldError(name, "an RFC 3339 date-time, e.g. 2024-05-01T00:00:00Z"))
        return None


@router.get(
    "/sales",
    response_model=SalesReport,
    summary="Orders, paid orders and revenue over a range, bucketed by hour or day (admin)",
    description="The series lists every bucket of the range, at most 2208 (92 days by hour, "
    "about six years by day): a longer range is a 400 naming `granularity`.",
    responses=ADMIN_ERRORS,
    openapi_extra=semantic_fields(
        {**RANGE_RULES, "granularity": "at most 2208 buckets in the range"}
    ),
)
async def sales(
    caller: Admin,
    backends: Gateway,
    start: From = None,
    end: To = None,
    granularity: Granularity = Granularity.day,
) -> dict[str, Any]:
    since, until = report_range(start, end)
    with acting_as(caller):
        report = await backends.analytics.GetSalesReport(
            analytics_pb2.GetSalesReportRequest(
                from_time=timestamp(since),
                to_time=timestamp(until),
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
    openapi_extra=semantic_fields(RANGE_RULES),
)
async def top_products(
    caller: Admin,
    backends: Gateway,
    start: From = None,
    end: To = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 10,
) -> dict[str, Any]:
    since, until = report_range(start, end)
    with acting_as(caller):
        answer = await backends.analytics.GetTopProducts(
            analytics_pb2.GetTopProductsRequest(
                from_time=timestamp(since), to_time=timestamp(until), limit=limit
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
