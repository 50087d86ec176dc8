"""order-service's event consumer: `order.completed` from payment-service.

Only translates and delegates (handlers.Orders.on_payment_completed); the relational inbox
makes each event apply once, in the same transaction as the saga transition it causes.
"""

from __future__ import annotations

from emporium.chassis.bus.base import EventBus
from emporium.chassis.db import Database
from emporium.chassis.events.consumer import EventConsumer
from emporium.contracts.events.order_completed import TOPIC
from emporium.services.order.handlers import Orders

GROUP = "order.payment-completed"


def payment_completed_consumer(db: Database, bus: EventBus, orders: Orders) -> EventConsumer:
    return EventConsumer(db, bus, "order", GROUP, [TOPIC], orders.on_payment_completed)
