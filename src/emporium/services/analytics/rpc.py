"""gRPC entrypoint of analytics-service: translates requests and delegates to handlers.

RPCs without a method here are inherited from the generated servicer and answer
UNIMPLEMENTED, which is honest until their use case exists.
"""

from __future__ import annotations

from emporium.chassis.olap.base import OlapStore
from emporium.contracts.rpc.analytics.v1 import analytics_pb2, analytics_pb2_grpc

SERVICE_NAME: str = analytics_pb2.DESCRIPTOR.services_by_name["AnalyticsService"].full_name


class AnalyticsServicer(analytics_pb2_grpc.AnalyticsServiceServicer):
    """`AnalyticsService` (analytics.proto)."""

    def __init__(self, olap: OlapStore) -> None:
        self.olap = olap
