"""Event entrypoint of cdn-service: `product.updated` -> forget a deleted product's images.

No inbox table: the effect (deleting the product's link objects) is idempotent, so the
consumer runs with the `StoreIdempotentInbox`.
"""

from __future__ import annotations

from emporium.chassis.bus.base import EventBus
from emporium.chassis.events.consumer import EventConsumer
from emporium.chassis.events.envelope import Event
from emporium.chassis.events.inbox import Handler, StoreIdempotentInbox
from emporium.contracts.events import ProductUpdatedV1
from emporium.contracts.events.registry import decode_event
from emporium.services.cdn import handlers
from emporium.services.cdn.store import ImageStore

GROUP = "cdn.product-images"


def product_updated_handler(images: ImageStore) -> Handler:
    async def handle(_: object, event: Event) -> None:
        payload = decode_event(event)  # unknown type / bad payload: poison, dead-lettered
        if isinstance(payload, ProductUpdatedV1):
            await handlers.forget_deleted_product(images, payload)

    return handle


def product_updated_consumer(bus: EventBus, service: str, images: ImageStore) -> EventConsumer:
    return EventConsumer(
        None,
        bus,
        service,
        GROUP,
        [ProductUpdatedV1.TOPIC],
        product_updated_handler(images),
        inbox=StoreIdempotentInbox(),
    )
