"""Event entrypoint of analytics-service: `order.created`, `order.completed` and
`inventory.low` -> fact tables.

One consumer group (`analytics`). No inbox table: facts are keyed by event id in
`ReplacingMergeTree` tables read with `FINAL`, so a redelivered event counts once; the
consumer runs with the `StoreIdempotentInbox`.

Facts go in by the batch: every OLAP insert writes a part that the server then merges, so
one insert per table per fetched batch (gathered for up to `LINGER_SECONDS`) costs about
what one event's insert did. The reports lag the events by at most that much more.
"""

from __future__ import annotations

from collections.abc import Sequence

from emporium.chassis.bus.base import EventBus
from emporium.chassis.events.consumer import BatchHandler, EventConsumer, one_at_a_time
from emporium.chassis.events.envelope import Event
from emporium.chassis.events.inbox import StoreIdempotentInbox
from emporium.chassis.rpc.identity import Caller, acting_as
from emporium.contracts.events import InventoryLowV1, OrderCompletedV1, OrderCreatedV1
from emporium.contracts.events.registry import decode_event
from emporium.services.analytics import handlers
from emporium.services.analytics.store import FactStore

GROUP = "analytics"
TOPICS = (OrderCreatedV1.TOPIC, OrderCompletedV1.TOPIC, InventoryLowV1.TOPIC)


LINGER_SECONDS = 0.5


def _fact(event: Event) -> handlers.Fact | None:
    """The event as a fact to record; None for a type analytics ignores."""
    payload = decode_event(event)  # unknown type / bad payload: poison, dead-lettered
    if isinstance(payload, OrderCreatedV1 | OrderCompletedV1 | InventoryLowV1):
        return handlers.Fact(event.id, event.time, payload)
    return None


def facts_batch_handler(store: FactStore) -> BatchHandler:
    """A fetched batch in one insert per table; a poison event fails the whole batch, which
    the consumer then handles event by event (dead-lettering that one)."""

    async def handle_batch(events: Sequence[Event]) -> None:
        facts = [fact for fact in map(_fact, events) if fact is not None]
        with acting_as(Caller.system(GROUP)):
            await handlers.record(store, facts)

    return handle_batch


def facts_consumer(bus: EventBus, service: str, store: FactStore) -> EventConsumer:
    """The consumer group that appends facts."""
    batch = facts_batch_handler(store)
    return EventConsumer(
        None,
        bus,
        service,
        GROUP,
        list(TOPICS),
        one_at_a_time(batch),
        inbox=StoreIdempotentInbox(),
        batch_handler=batch,
        linger=LINGER_SECONDS,
    )
