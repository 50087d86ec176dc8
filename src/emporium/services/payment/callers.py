"""Which services may call payment-service's RPCs (`chassis.rpc.acl`: enforced by the server
interceptor; a method missing here is refused to everybody).

The gateway does not read payments (an order's view comes from order-service).
"""

from __future__ import annotations

from emporium.chassis.rpc.acl import CallerTable
from emporium.contracts.rpc.payment.v1 import payment_pb2

CALLERS = [
    CallerTable.of(
        payment_pb2.DESCRIPTOR.services_by_name["PaymentService"],
        {
            # Money moves only when order-service's saga asks: never the gateway (whatever
            # token it forwards), never cdn or any other service.
            "Charge": {"order"},
            "Void": {"order"},
            "Refund": {"order"},
            "GetPayment": {"order"},
            "CheckPaymentToken": {"order"},
        },
    )
]
