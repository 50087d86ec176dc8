"""`/api/v1/orders`: checkout and the caller's orders (order-service runs the saga)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Response
from pydantic import BaseModel, Field

from emporium.chassis.rpc.identity import acting_as
from emporium.contracts.rpc.order.v1 import order_pb2
from emporium.services.api_gateway.backends import PLACE_ORDER_TIMEOUT_SECONDS
from emporium.services.api_gateway.constraints import (
    IDEMPOTENCY_KEY_PATTERN,
    JSON_INTEGER,
    MAX_IDEMPOTENCY_KEY_LENGTH,
    MAX_PRODUCT_ID_LENGTH,
    no_space,
)
from emporium.services.api_gateway.convert import enum_name, next_cursor, rfc3339
from emporium.services.api_gateway.schemas import (
    CURSOR_RULE,
    DEFAULT_LIMIT,
    AddressBody,
    Cursor,
    Limit,
    RequestModel,
    link,
    problem_responses,
    semantic_fields,
)
from emporium.services.api_gateway.security import Gateway, User

router = APIRouter(prefix="/api/v1/orders", tags=["orders"])

IDEMPOTENCY_HEADER = "Idempotency-Key"
OrderId = Annotated[str, Path(min_length=1, max_length=100)]
FINISHED = {"PAID", "CANCELLED"}


# order-service's PlaceOrder rules (order/domain.py): MAX_QUANTITY, MAX_LINES, the token shape.
MAX_QUANTITY = 100
MAX_LINES = 50
PAYMENT_TOKEN_EXAMPLES = ["tok_visa", "tok_chargeDeclined", "tok_timeout"]


class OrderLineBody(RequestModel):
    product_id: Annotated[str, no_space(MAX_PRODUCT_ID_LENGTH)]
    quantity: Annotated[int, Field(ge=1, le=MAX_QUANTITY), JSON_INTEGER]


class PlaceOrderBody(RequestModel):
    items: list[OrderLineBody] = Field(min_length=1, max_length=MAX_LINES)
    payment_token: Annotated[
        str,
        no_space(255),
        Field(
            description="A provider token; the sandbox knows `tok_visa`, `tok_chargeDeclined`, "
            "`tok_chargeDeclinedInsufficientFunds` and `tok_timeout`",
            examples=PAYMENT_TOKEN_EXAMPLES,
        ),
    ]
    shipping_address: AddressBody


class OrderItem(BaseModel):
    product_id: str
    sku: str
    name: str
    quantity: int
    unit_price_minor: int


class PaymentSummary(BaseModel):
    status: str | None
    reason: str | None = None


class ShippingAddress(BaseModel):
    line1: str
    line2: str
    city: str
    postal_code: str
    country: str


class Order(BaseModel):
    id: str
    user_id: str
    status: str = Field(description="PENDING, PAID or CANCELLED")
    items: list[OrderItem]
    total_minor: int
    currency: str
    payment: PaymentSummary
    cancel_reason: str | None = Field(
        default=None,
        description="Why a CANCELLED order was cancelled (out_of_stock, payment_declined, "
        "payment_unavailable, inventory_unavailable, cancelled, operator: ...); null otherwise",
    )
    shipping_address: ShippingAddress
    created_at: str | None
    updated_at: str | None


class OrderPage(BaseModel):
    items: list[Order]
    next_cursor: str | None


def order_to_json(order: order_pb2.Order) -> dict[str, Any]:
    address = order.shipping_address
    return {
        "id": order.id,
        "user_id": order.user_id,
        "status": enum_name(order_pb2.OrderStatus, order.status, "ORDER_STATUS_"),
        "items": [
            {
                "product_id": i.product_id,
                "sku": i.sku,
                "name": i.name,
                "quantity": i.quantity,
                "unit_price_minor": i.unit_price_minor,
            }
            for i in order.items
        ],
        "total_minor": order.total_minor,
        "currency": order.currency,
        "payment": {"status": order.payment.status or None, "reason": order.payment.reason or None},
        "cancel_reason": order.cancel_reason or None,
        "shipping_address": {
            "line1": address.line1,
            "line2": address.line2,
            "city": address.city,
            "postal_code": address.postal_code,
            "country": address.country,
        },
        "created_at": rfc3339(order.created_at),
        "updated_at": rfc3339(order.updated_at),
    }


ORDER_PATH = "/api/v1/orders/{id}"
ORDER_LINKS = {
    "GetOrder": link("get", ORDER_PATH, {"id": "$response.body#/id"}),
    "CancelOrder": link("post", ORDER_PATH + "/cancel", {"id": "$response.body#/id"}),
}


@router.post(
    "",
    status_code=201,
    response_model=Order,
    summary="Place an order (checkout saga); 201 when it finished, 202 while PENDING",
    responses={
        201: {"description": "The saga finished: PAID or CANCELLED", "links": ORDER_LINKS},
        202: {
            "model": Order,
            "description": "Accepted: the saga is still running (PENDING)",
            "links": ORDER_LINKS,
        },
        **problem_responses(
            401, 413, described={409: "`out_of_stock` (nothing was charged or reserved)"}
        ),
    },
    openapi_extra=semantic_fields(
        {
            "items.*.product_id": "must name a product of the catalog",
            "items.*.quantity": f"at most {MAX_QUANTITY} of one product over all lines",
            "items": "the products must share one currency and the total must be positive",
            "payment_token": "must be a token the payment provider knows",
        }
    ),
)
async def place_order(
    body: PlaceOrderBody,
    response: Response,
    caller: User,
    backends: Gateway,
    idempotency_key: Annotated[
        str,
        Header(
            alias=IDEMPOTENCY_HEADER,
            min_length=1,
            max_length=MAX_IDEMPOTENCY_KEY_LENGTH,
            pattern=IDEMPOTENCY_KEY_PATTERN,
            description="Required (1-255 visible ASCII characters, e.g. a UUID). The same key "
            "replays the first answer; never two orders.",
        ),
    ],
) -> dict[str, Any]:
    request = place_order_request(body, idempotency_key, caller.user_id)
    with acting_as(caller):
        answer = await backends.order.PlaceOrder(request, timeout=PLACE_ORDER_TIMEOUT_SECONDS)
    order = order_to_json(answer.order)
    response.status_code = 201 if order["status"] in FINISHED else 202
    return order


def place_order_request(
    body: PlaceOrderBody, idempotency_key: str, user_id: str
) -> order_pb2.PlaceOrderRequest:
    """The PlaceOrder call for a validated body. A blank `line2` is sent as absent, as
    user-service reads it (order-service would refuse a line of spaces)."""
    address = body.shipping_address.model_dump()
    if not address["line2"].strip():
        address["line2"] = ""
    return order_pb2.PlaceOrderRequest(
        idempotency_key=idempotency_key,
        user_id=user_id,
        payment_token=body.payment_token,
        items=[
            order_pb2.OrderLine(product_id=i.product_id, quantity=i.quantity) for i in body.items
        ],
        shipping_address=order_pb2.ShippingAddress(**address),
    )


@router.get(
    "",
    response_model=OrderPage,
    summary="The caller's orders, newest first",
    responses={
        200: {
            "links": {
                "GetOrder": link("get", ORDER_PATH, {"id": "$response.body#/items/0/id"}),
                "NextPage": link(
                    "get", "/api/v1/orders", {"cursor": "$response.body#/next_cursor"}
                ),
            }
        },
        **problem_responses(401),
    },
    openapi_extra=semantic_fields({"cursor": CURSOR_RULE}),
)
async def list_orders(
    caller: User, backends: Gateway, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> dict[str, Any]:
    with acting_as(caller):
        page = await backends.order.ListOrders(
            order_pb2.ListOrdersRequest(user_id=caller.user_id, limit=limit, cursor=cursor or "")
        )
    return {
        "items": [order_to_json(o) for o in page.items],
        "next_cursor": next_cursor(page.next_cursor),
    }


@router.get(
    "/{id}",
    response_model=Order,
    summary="One order (its owner or an admin; another user's order is 404)",
    responses=problem_responses(401, 404),
)
async def get_order(id: OrderId, caller: User, backends: Gateway) -> dict[str, Any]:
    with acting_as(caller):
        order = await backends.order.GetOrder(order_pb2.GetOrderRequest(order_id=id))
    return order_to_json(order)


@router.post(
    "/{id}/cancel",
    response_model=Order,
    summary="Cancel an order (a PAID one is refunded and its stock released)",
    responses={
        200: {"links": {"GetOrder": link("get", ORDER_PATH, {"id": "$response.body#/id"})}},
        **problem_responses(401, 403, 404, 409),
    },
)
async def cancel_order(id: OrderId, caller: User, backends: Gateway) -> dict[str, Any]:
    with acting_as(caller):
        order = await backends.order.CancelOrder(
            order_pb2.CancelOrderRequest(order_id=id, reason="cancelled by customer")
        )
    return order_to_json(order)
