"""`order.created`: produced by order-service (through its outbox) when a checkout recorded an
order with its stock reserved.

Consumed by inventory (reservation bookkeeping), notification (order received) and analytics
(order facts). Key: order id.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from emporium.contracts.events.base import EventModel

TOPIC = "order.created"


class OrderLineV1(BaseModel):
    """One line of the order at the price the customer was charged."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    sku: str = Field(min_length=1)
    quantity: int = Field(gt=0)
    unit_price: Decimal = Field(ge=0, description="Price of one unit, in the order currency.")
    product_id: str | None = Field(
        default=None,
        description="Catalog id of the product (added later, optional: older payloads lack it).",
    )


class OrderCreatedV1(EventModel):
    TOPIC = TOPIC
    VERSION = 1
    KEY_FIELD = "order_id"

    order_id: str = Field(min_length=1)
    user_id: str = Field(min_length=1)
    lines: list[OrderLineV1] = Field(min_length=1)
    total: Decimal = Field(ge=0, description="Sum of the lines, in `currency`.")
    currency: str = Field(min_length=3, max_length=3, description="ISO 4217 code.")
