"""Event entrypoint of analytics-service: `order.created`, `order.completed` and
`inventory.low` -> fact tables.

One consumer group (`analytics`). No inbox table: facts are keyed by event id in
`ReplacingMergeTree` tables read with `FINAL`, so a redelivered event counts once; the
consumer runs with the `StoreIdempotentInbox`.
"""

from __future__ import annotations

from emporium.chassis.bus.base import EventBus
from emporium.chassis.events.consumer import EventConsumer
from emporium.chassis.events.envelope import Event
from emporium.chassis.events.inbox import Handler, StoreIdempotentInbox
from emporium.chassis.rpc.identity import Caller, acting_as
from emporium.contracts.events import InventoryLowV1, OrderCompletedV1, OrderCreatedV1
from emporium.contracts.events.registry import decode_event
from emporium.services.analytics import handlers
from emporium.services.analytics.store import FactStore

GROUP = "analytics"
TOPICS = (OrderCreatedV1.TOPIC, OrderCompletedV1.TOPIC, InventoryLowV1.TOPIC)


def facts_handler(store: FactStore) -> Handler:
    async def handle(_: object, event: Event) -> None:
        payload = decode_event(event)  # unknown type / bad payload: poison, dead-lettered
        if isinstance(payload, OrderCreatedV1 | OrderCompletedV1 | InventoryLowV1):
            with acting_as(Caller.system(GROUP)):
                await handlers.record(store, event.id, event.time, payload)

    return handle


def facts_consumer(bus: EventBus, service: str, store: FactStore) -> EventConsumer:
    """The consumer group that appends facts."""
    return EventConsumer(
        None,
        bus,
        service,
        GROUP,
        list(TOPICS),
        facts_handler(store),
        inbox=StoreIdempotentInbox(),
    )
