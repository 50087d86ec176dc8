"""Event entrypoint of inventory-service: `order.created` -> make sure the order's
reservation exists and mark it as seen (handlers.Inventory.on_order_created).

Runs with the RelationalInbox (the default with a Database): the inbox row and the effect
commit together, so a redelivered event changes nothing.
"""

from __future__ import annotations

from emporium.chassis.bus.base import EventBus
from emporium.chassis.db import Database, UnitOfWork
from emporium.chassis.events.consumer import EventConsumer
from emporium.chassis.events.envelope import Event
from emporium.chassis.events.inbox import Handler
from emporium.chassis.rpc.identity import Caller, acting_as
from emporium.contracts.events import OrderCreatedV1
from emporium.contracts.events.registry import decode_event
from emporium.services.inventory.handlers import SERVICE, Inventory

GROUP = "inventory.order-created"


def order_created_handler(inventory: Inventory) -> Handler:
    async def handle(uow: UnitOfWork | None, event: Event) -> None:
        payload = decode_event(event)  # unknown type / bad payload: poison, dead-lettered
        if isinstance(payload, OrderCreatedV1) and uow is not None:
            with acting_as(Caller.system(SERVICE)):
                await inventory.on_order_created(uow, payload)

    return handle


def order_created_consumer(
    db: Database, bus: EventBus, service: str, inventory: Inventory
) -> EventConsumer:
    return EventConsumer(
        db, bus, service, GROUP, [OrderCreatedV1.TOPIC], order_created_handler(inventory)
    )
