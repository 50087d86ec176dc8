"""gRPC entrypoint of order-service: translates requests and delegates to handlers.

An empty `user_id` in a request means "the caller"; authorization is in the handlers.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from emporium.contracts.rpc.order.v1 import order_pb2, order_pb2_grpc
from emporium.services.order.domain import Order
from emporium.services.order.handlers import Orders, Sagas
from emporium.services.order.saga import CheckoutSaga

SERVICE_NAME: str = order_pb2.DESCRIPTOR.services_by_name["OrderService"].full_name

_STATUS = {
    "PENDING": order_pb2.ORDER_STATUS_PENDING,
    "PAID": order_pb2.ORDER_STATUS_PAID,
    "CANCELLED": order_pb2.ORDER_STATUS_CANCELLED,
}


def _timestamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def order_message(order: Order) -> order_pb2.Order:
    address = order.shipping_address
    return order_pb2.Order(
        id=order.id,
        user_id=order.user_id,
        status=_STATUS[order.status.value],
        items=[
            order_pb2.OrderItem(
                product_id=line.product_id,
                sku=line.sku,
                name=line.name,
                quantity=line.quantity,
                unit_price_minor=line.unit_price_minor,
            )
            for line in order.lines
        ],
        total_minor=order.total_minor,
        currency=order.currency,
        payment=order_pb2.PaymentSummary(
            status=order.payment_status, reason=order.payment_reason or ""
        ),
        shipping_address=order_pb2.ShippingAddress(
            line1=address.line1,
            line2=address.line2 or "",
            city=address.city,
            postal_code=address.postal_code,
            country=address.country,
        ),
        created_at=_timestamp(order.created_at),
        updated_at=_timestamp(order.updated_at),
        cancel_reason=order.cancel_reason or "" if order.status.value == "CANCELLED" else "",
    )


def saga_message(saga: CheckoutSaga) -> order_pb2.Saga:
    return order_pb2.Saga(
        order_id=saga.order_id,
        user_id=saga.order.user_id,
        state=saga.state.value,
        awaiting=saga.awaiting or "",
        attempts=saga.attempts,
        payment=saga.payment.value,
        stock=saga.stock.value,
        cancel_reason=saga.cancel_reason or "",
        parked_reason=saga.parked_reason or "",
        order_status=saga.order.status.value,
        updated_at=_timestamp(saga.updated_at or saga.order.updated_at),
    )


def _body(request: Any) -> dict[str, object]:
    """The PlaceOrder request as the JSON body the domain validates."""
    address = request.shipping_address
    shipping: dict[str, object] = {
        "line1": address.line1,
        "city": address.city,
        "postal_code": address.postal_code,
        "country": address.country,
    }
    if address.line2:
        shipping["line2"] = address.line2
    return {
        "items": [{"product_id": i.product_id, "quantity": int(i.quantity)} for i in request.items],
        "payment_token": request.payment_token,
        "shipping_address": shipping,
    }


class OrderServicer(order_pb2_grpc.OrderServiceServicer):
    """`OrderService` (order.proto)."""

    def __init__(self, orders: Orders, sagas: Sagas) -> None:
        self.orders = orders
        self.sagas = sagas

    async def PlaceOrder(self, request: Any, context: Any) -> order_pb2.PlaceOrderResponse:
        placed = await self.orders.place(request.user_id, request.idempotency_key, _body(request))
        return order_pb2.PlaceOrderResponse(
            order=order_message(placed.order), replayed=placed.replayed
        )

    async def GetOrder(self, request: Any, context: Any) -> order_pb2.Order:
        return order_message(await self.orders.get(request.order_id))

    async def ListOrders(self, request: Any, context: Any) -> order_pb2.ListOrdersResponse:
        page = await self.orders.list(request.user_id, request.limit, request.cursor)
        return order_pb2.ListOrdersResponse(
            items=[order_message(o) for o in page.items], next_cursor=page.next_cursor
        )

    async def CancelOrder(self, request: Any, context: Any) -> order_pb2.Order:
        return order_message(await self.orders.cancel(request.order_id))

    async def ListSagas(self, request: Any, context: Any) -> order_pb2.ListSagasResponse:
        page = await self.sagas.list(list(request.states), request.limit, request.cursor)
        return order_pb2.ListSagasResponse(
            sagas=[saga_message(s) for s in page.items], next_cursor=page.next_cursor
        )

    async def RetrySaga(self, request: Any, context: Any) -> order_pb2.Saga:
        return saga_message(await self.sagas.retry(request.order_id))

    async def CancelSaga(self, request: Any, context: Any) -> order_pb2.Saga:
        return saga_message(await self.sagas.cancel(request.order_id, request.note))
