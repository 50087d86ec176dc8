"""Event entrypoint of search-service: `product.updated` -> the product index.

No inbox table: the index write itself is idempotent (upsert by product id, stale events
ignored; see handlers), so the consumer runs with the `StoreIdempotentInbox`.
"""

from __future__ import annotations

from emporium.chassis.bus.base import EventBus
from emporium.chassis.events.consumer import EventConsumer
from emporium.chassis.events.envelope import Event
from emporium.chassis.events.inbox import Handler, StoreIdempotentInbox
from emporium.contracts.events import ProductUpdatedV1
from emporium.contracts.events.registry import decode_event
from emporium.services.search import handlers
from emporium.services.search.store import ProductIndex

GROUP = "search.product-index"


def product_updated_handler(products: ProductIndex) -> Handler:
    async def handle(_: object, event: Event) -> None:
        payload = decode_event(event)  # unknown type / bad payload: poison, dead-lettered
        if isinstance(payload, ProductUpdatedV1):
            await handlers.apply_product_updated(products, payload, event.time)

    return handle


def product_updated_consumer(bus: EventBus, service: str, products: ProductIndex) -> EventConsumer:
    """The consumer group that keeps the index current."""
    return EventConsumer(
        None,
        bus,
        service,
        GROUP,
        [ProductUpdatedV1.TOPIC],
        product_updated_handler(products),
        inbox=StoreIdempotentInbox(),
    )
