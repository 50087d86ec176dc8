"""Event entrypoint of search-service: `product.updated` -> the product index.

No inbox table: the index write itself is idempotent (upsert by product id, stale events
ignored; see handlers), so the consumer runs with the `StoreIdempotentInbox`.

A fetched batch is one index write (`handlers.apply_product_updates`): every write is a
segment commit and a searcher reload, so indexing the demo catalog's 200 products one by one
kept search seconds behind product-service on a busy machine.
"""

from __future__ import annotations

from collections.abc import Sequence

from emporium.chassis.bus.base import EventBus
from emporium.chassis.events.consumer import BatchHandler, EventConsumer
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


def product_updates_handler(products: ProductIndex) -> BatchHandler:
    """A fetched batch in one index write; a poison event fails the batch, which the
    consumer then handles event by event (dead-lettering that one)."""

    async def handle_batch(events: Sequence[Event]) -> None:
        updates = []
        for event in events:
            payload = decode_event(event)
            if isinstance(payload, ProductUpdatedV1):
                updates.append((payload, event.time))
        await handlers.apply_product_updates(products, updates)

    return handle_batch


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
        batch_handler=product_updates_handler(products),
    )
