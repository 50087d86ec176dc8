"""Which services may call order-service's RPCs (`chassis.rpc.acl`: enforced by the server
interceptor; a method missing here is refused to everybody)."""

from __future__ import annotations

from emporium.chassis.rpc.acl import GATEWAY, OPERATOR, CallerTable
from emporium.contracts.rpc.order.v1 import order_pb2

CALLERS = [
    CallerTable.of(
        order_pb2.DESCRIPTOR.services_by_name["OrderService"],
        {
            "PlaceOrder": {GATEWAY},
            "GetOrder": {GATEWAY},
            "ListOrders": {GATEWAY},
            "CancelOrder": {GATEWAY},
            # The operator's commands (`emporium sagas list|retry|cancel`), nobody else's.
            "ListSagas": {OPERATOR},
            "RetrySaga": {OPERATOR},
            "CancelSaga": {OPERATOR},
        },
    )
]
