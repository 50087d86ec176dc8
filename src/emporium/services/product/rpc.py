"""gRPC entrypoint of product-service: translates requests and delegates to handlers.

RPCs without a method here are inherited from the generated servicer and answer
UNIMPLEMENTED, which is honest until their use case exists.
"""

from __future__ import annotations

from emporium.chassis.db import Database
from emporium.contracts.rpc.product.v1 import product_pb2, product_pb2_grpc

SERVICE_NAME: str = product_pb2.DESCRIPTOR.services_by_name["ProductService"].full_name


class ProductServicer(product_pb2_grpc.ProductServiceServicer):
    """`ProductService` (product.proto)."""

    def __init__(self, db: Database) -> None:
        self.db = db
