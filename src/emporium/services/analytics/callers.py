"""Which services may call analytics-service's RPCs (`chassis.rpc.acl`: enforced by the server
interceptor; a method missing here is refused to everybody)."""

from __future__ import annotations

from emporium.chassis.rpc.acl import GATEWAY, CallerTable
from emporium.contracts.rpc.analytics.v1 import analytics_pb2

CALLERS = [
    CallerTable.of(
        analytics_pb2.DESCRIPTOR.services_by_name["AnalyticsService"],
        {
            "GetSalesReport": {GATEWAY},
            "GetTopProducts": {GATEWAY},
            "GetLowStock": {GATEWAY},
        },
    )
]
