"""gRPC entrypoint of analytics-service: translates requests and delegates to handlers.

All three reports need the admin role. Unset range bounds default to the last 30 days up to
now (the domain's rule); bad parameters are INVALID_ARGUMENT naming the REST parameter
(`from`, `to`, `granularity`, `limit`, `currency`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from emporium.chassis.errors import FieldError, invalid
from emporium.contracts.rpc.analytics.v1 import analytics_pb2, analytics_pb2_grpc
from emporium.services.analytics import handlers
from emporium.services.analytics.store import FactStore

SERVICE_NAME: str = analytics_pb2.DESCRIPTOR.services_by_name["AnalyticsService"].full_name

_GRANULARITIES = {
    analytics_pb2.GRANULARITY_UNSPECIFIED: None,
    analytics_pb2.GRANULARITY_HOUR: "hour",
    analytics_pb2.GRANULARITY_DAY: "day",
}


class AnalyticsServicer(analytics_pb2_grpc.AnalyticsServiceServicer):
    """`AnalyticsService` (analytics.proto)."""

    def __init__(self, store: FactStore) -> None:
        self.store = store

    async def GetSalesReport(
        self, request: analytics_pb2.GetSalesReportRequest, context: Any
    ) -> analytics_pb2.SalesReport:
        params = _range(request)
        # an enum value this server does not know is passed on as is and refused by name
        params["granularity"] = _GRANULARITIES.get(request.granularity, str(request.granularity))
        params["currency"] = request.currency or None
        report = await handlers.sales_report(self.store, params, datetime.now(UTC))
        return analytics_pb2.SalesReport(
            orders=report["orders"],
            paid_orders=report["paid_orders"],
            revenue_minor=report["revenue_minor"],
            currency=report["currency"],
            series=[
                analytics_pb2.SalesBucket(
                    bucket=timestamp(b["bucket"]),
                    orders=b["orders"],
                    revenue_minor=b["revenue_minor"],
                )
                for b in report["series"]
            ],
        )

    async def GetTopProducts(
        self, request: analytics_pb2.GetTopProductsRequest, context: Any
    ) -> analytics_pb2.GetTopProductsResponse:
        params = _range(request)
        params["limit"] = str(request.limit) if request.limit else None
        params["currency"] = request.currency or None
        answer = await handlers.top_products(self.store, params, datetime.now(UTC))
        return analytics_pb2.GetTopProductsResponse(
            items=[analytics_pb2.TopProduct(**item) for item in answer["items"]]
        )

    async def GetLowStock(
        self, request: analytics_pb2.GetLowStockRequest, context: Any
    ) -> analytics_pb2.GetLowStockResponse:
        params = {"limit": str(request.limit) if request.limit else None}
        answer = await handlers.low_stock(self.store, params, datetime.now(UTC))
        return analytics_pb2.GetLowStockResponse(
            items=[
                analytics_pb2.LowStockItem(
                    sku=item["sku"],
                    available=item["available"],
                    threshold=item["threshold"],
                    at=timestamp(item["at"]),
                )
                for item in answer["items"]
            ]
        )


def _range(request: Any) -> dict[str, str | None]:
    """`from`/`to` as the RFC 3339 text the domain parses (unset: None, the default). A
    Timestamp outside 0001-9999 or with nanos out of range is INVALID_ARGUMENT naming the
    REST parameter, never an error escaping as INTERNAL."""
    out: dict[str, str | None] = {}
    errors: list[FieldError] = []
    for name, field in (("from", "from_time"), ("to", "to_time")):
        out[name] = None
        if request.HasField(field):
            try:
                out[name] = getattr(request, field).ToJsonString()
            except ValueError:
                errors.append(FieldError(name, "a time between 0001-01-01 and 9999-12-31"))
    if errors:
        raise invalid("invalid report range", *errors)
    return out


def timestamp(rfc3339: str) -> Timestamp:
    stamp = Timestamp()
    stamp.FromJsonString(rfc3339)
    return stamp
