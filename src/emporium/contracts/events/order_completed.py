"""`order.completed`: produced by payment-service (through its outbox) once a charge for an
order reached a final state (`captured` or `declined`), and again, with `refunded` or
`voided`, when a capture that was announced is given back (a paid order cancelled, or a
capture that arrived after the saga had given up and was reversed), so that whoever counted
the capture (analytics' revenue) can take it out again.

Consumed by order (saga step: mark PAID or compensate), notification, analytics and
recommendation (only paid orders count as purchases).
Key: order id.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

from pydantic import Field

from emporium.contracts.events.base import EventModel

TOPIC = "order.completed"


class PaymentStatus(StrEnum):
    CAPTURED = "captured"
    DECLINED = "declined"
    REFUNDED = "refunded"  # an announced capture was refunded
    VOIDED = "voided"  # an announced capture was reversed


class OrderCompletedV1(EventModel):
    TOPIC = TOPIC
    VERSION = 1
    KEY_FIELD = "order_id"

    order_id: str = Field(min_length=1)
    payment_id: str = Field(min_length=1)
    amount: Decimal = Field(ge=0)
    currency: str = Field(default="USD", min_length=3, max_length=3)
    status: PaymentStatus
    user_id: str | None = Field(
        default=None,
        description="Who placed the order (added later, optional: older payloads lack it).",
    )
