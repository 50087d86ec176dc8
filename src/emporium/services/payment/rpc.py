"""gRPC entrypoint of payment-service: translates requests and delegates to handlers.

The domain's CAPTURED is the proto's SUCCEEDED (payment.proto's vocabulary for callers).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from emporium.contracts.rpc.payment.v1 import payment_pb2, payment_pb2_grpc
from emporium.services.payment.handlers import ChargeInput, Payments
from emporium.services.payment.store import StoredPayment

SERVICE_NAME: str = payment_pb2.DESCRIPTOR.services_by_name["PaymentService"].full_name

_STATUS = {
    "PENDING": payment_pb2.PAYMENT_STATUS_PENDING,
    "CAPTURED": payment_pb2.PAYMENT_STATUS_SUCCEEDED,
    "DECLINED": payment_pb2.PAYMENT_STATUS_DECLINED,
    "VOIDED": payment_pb2.PAYMENT_STATUS_VOIDED,
    "REFUNDED": payment_pb2.PAYMENT_STATUS_REFUNDED,
    "VOIDING": payment_pb2.PAYMENT_STATUS_VOIDING,
    "REFUNDING": payment_pb2.PAYMENT_STATUS_REFUNDING,
}


def _timestamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def _payment(stored: StoredPayment) -> payment_pb2.Payment:
    payment = stored.payment
    refunded = payment.amount_minor if payment.status.value == "REFUNDED" else 0
    return payment_pb2.Payment(
        id=payment.id,
        order_id=payment.order_id,
        user_id=stored.user_id,
        status=_STATUS[payment.status.value],
        reason=payment.reason or "",
        amount_minor=payment.amount_minor,
        currency=payment.currency,
        refunded_minor=refunded,
        provider_reference=payment.id,
        created_at=_timestamp(payment.created_at),
        updated_at=_timestamp(payment.updated_at),
    )


class PaymentServicer(payment_pb2_grpc.PaymentServiceServicer):
    """`PaymentService` (payment.proto)."""

    def __init__(self, payments: Payments) -> None:
        self.payments = payments

    async def Charge(self, request: Any, context: Any) -> payment_pb2.Payment:
        command = ChargeInput(
            order_id=request.order_id,
            user_id=request.user_id,
            amount_minor=request.amount_minor,
            currency=request.currency,
            payment_token=request.payment_token,
        )
        return _payment(await self.payments.charge(command))

    async def Void(self, request: Any, context: Any) -> payment_pb2.Payment:
        details = ChargeInput(
            order_id=request.order_id,
            user_id=request.user_id,
            amount_minor=request.amount_minor,
            currency=request.currency,
            payment_token=request.payment_token,
        )
        return _payment(await self.payments.void(request.order_id, details))

    async def Refund(self, request: Any, context: Any) -> payment_pb2.Payment:
        return _payment(await self.payments.refund(request.order_id))

    async def GetPayment(self, request: Any, context: Any) -> payment_pb2.Payment:
        return _payment(await self.payments.get_payment(request.order_id))

    async def CheckPaymentToken(
        self, request: Any, context: Any
    ) -> payment_pb2.CheckPaymentTokenResponse:
        kind = await self.payments.check_token(request.payment_token)
        return payment_pb2.CheckPaymentTokenResponse(token_kind=kind)
