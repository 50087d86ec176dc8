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
from emporium.chassis.events.consumer import BatchHandler, EventConsumer, one_at_a_time
from emporium.chassis.events.envelope import Event
from emporium.chassis.events.inbox import StoreIdempotentInbox
from emporium.contracts.events import ProductUpdatedV1
from emporium.contracts.events.registry import decode_event
from emporium.services.search import handlers
from emporium.services.search.store import ProductIndex

GROUP = "search.product-index"


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
    batch = product_updates_handler(products)
    return EventConsumer(
        None,
        bus,
        service,
        GROUP,
        [ProductUpdatedV1.TOPIC],
        one_at_a_time(batch),
        inbox=StoreIdempotentInbox(),
        batch_handler=batch,
    )
