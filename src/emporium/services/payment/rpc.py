"""gRPC entrypoint of payment-service: translates requests and delegates to handlers.

RPCs without a method here are inherited from the generated servicer and answer
UNIMPLEMENTED, which is honest until their use case exists.
"""

from __future__ import annotations

from emporium.chassis.db import Database
from emporium.contracts.rpc.payment.v1 import payment_pb2, payment_pb2_grpc

SERVICE_NAME: str = payment_pb2.DESCRIPTOR.services_by_name["PaymentService"].full_name


class PaymentServicer(payment_pb2_grpc.PaymentServiceServicer):
    """`PaymentService` (payment.proto)."""

    def __init__(self, db: Database) -> None:
        self.db = db
