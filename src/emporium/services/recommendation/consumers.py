"""Event entrypoint of recommendation-service: `user.registered`, `product.updated`,
`order.created` and `order.completed` -> the feature store.

One consumer group (`recommendation`). No inbox table: the handlers make their own writes
idempotent (a `counted:{order}` claim for the counters, converging set/hash writes for the
rest), so the consumer runs with the `StoreIdempotentInbox`.
"""

from __future__ import annotations

from emporium.chassis.bus.base import EventBus
from emporium.chassis.events.consumer import EventConsumer
from emporium.chassis.events.envelope import Event
from emporium.chassis.events.inbox import Handler, StoreIdempotentInbox
from emporium.chassis.rpc.identity import Caller, acting_as
from emporium.contracts.events import (
    OrderCompletedV1,
    OrderCreatedV1,
    ProductUpdatedV1,
    UserRegisteredV1,
)
from emporium.contracts.events.registry import decode_event
from emporium.services.recommendation import handlers
from emporium.services.recommendation.store import FeatureStore

GROUP = "recommendation"
TOPICS = (
    UserRegisteredV1.TOPIC,
    ProductUpdatedV1.TOPIC,
    OrderCreatedV1.TOPIC,
    OrderCompletedV1.TOPIC,
)


def feature_handler(store: FeatureStore) -> Handler:
    async def handle(_: object, event: Event) -> None:
        payload = decode_event(event)  # unknown type / bad payload: poison, dead-lettered
        with acting_as(Caller.system(GROUP)):
            if isinstance(payload, OrderCreatedV1):
                await handlers.on_order_created(store, payload)
            elif isinstance(payload, OrderCompletedV1):
                await handlers.on_order_completed(store, payload)
            elif isinstance(payload, ProductUpdatedV1):
                await handlers.on_product_updated(store, payload)
            elif isinstance(payload, UserRegisteredV1):
                await handlers.on_user_registered(store, payload)

    return handle


def feature_consumer(bus: EventBus, service: str, store: FeatureStore) -> EventConsumer:
    """The consumer group that keeps the features current."""
    return EventConsumer(
        None,
        bus,
        service,
        GROUP,
        list(TOPICS),
        feature_handler(store),
        inbox=StoreIdempotentInbox(),
    )
