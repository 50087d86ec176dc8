"""gRPC entrypoint of order-service: translates requests and delegates to handlers.

RPCs without a method here are inherited from the generated servicer and answer
UNIMPLEMENTED, which is honest until their use case exists.
"""

from __future__ import annotations

from emporium.chassis.db import Database
from emporium.contracts.rpc.order.v1 import order_pb2, order_pb2_grpc

SERVICE_NAME: str = order_pb2.DESCRIPTOR.services_by_name["OrderService"].full_name


class OrderServicer(order_pb2_grpc.OrderServiceServicer):
    """`OrderService` (order.proto)."""

    def __init__(self, db: Database) -> None:
        self.db = db
