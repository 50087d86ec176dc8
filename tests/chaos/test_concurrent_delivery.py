"""The same event delivered twice at the same time: one effect.

It happens when a rebalance hands a partition to a new member while the old one is still
handling its batch (Kafka's "zombie" member), or when two copies of a republished event race.
The race is made certain here instead of waited for: two `EventConsumer` instances of one
group, each with its own connection pool to the consumer database (as two processes would
have), get the same delivery (fetched from the real bus) at once. The first holds its
transaction open, effect written, until the second has entered the inbox and is still in
flight; then it commits. The inbox must let exactly one apply it (on PostgreSQL the second
insert waits on the first's uncommitted row, on SQLite the second transaction waits for the
write lock) and report the other as a duplicate.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prometheus_client import REGISTRY

from emporium.chassis.db import UnitOfWork
from emporium.chassis.events.consumer import EventConsumer
from emporium.chassis.events.envelope import Event
from emporium.chassis.events.inbox import Handler, RelationalInbox
from tests.chaos.support import (
    CAP_SECONDS,
    Profile,
    open_chaos_bus,
    record_applied,
    relay_all,
    write_events,
)
from tests.events_support import ScratchDatabase, collect, effects, unique

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(180)]


class WatchedInbox(RelationalInbox):
    """The real inbox; tells the test when a delivery entered it."""

    def __init__(self, database: ScratchDatabase, entered: asyncio.Event) -> None:
        super().__init__(database)
        self.entered = entered

    async def apply_once(self, group: str, event: Event, handler: Handler) -> bool:
        self.entered.set()
        return await super().apply_once(group, event, handler)


async def test_the_same_delivery_handled_by_two_members_at_once_has_one_effect(
    profile: Profile, producer_db: ScratchDatabase, consumer_db: ScratchDatabase
) -> None:
    topic, group, service = unique("chaos.dup"), unique("g"), unique("svc")
    (written,) = await write_events(producer_db, topic, ["order-1"], 1)
    bus = open_chaos_bus(profile, client_id="chaos-dup")
    await bus.start()
    second_db = ScratchDatabase(consumer_db.url, consumer_db.schema)  # a second member's pool
    try:
        await relay_all(producer_db, bus, service)
        reader = bus.consumer(unique("reader"), [topic])
        await reader.start()
        (delivery,) = await collect(reader, 1)
        await reader.stop()

        first_inside, second_entered = asyncio.Event(), asyncio.Event()
        observed: dict[str, Any] = {}
        second_task: asyncio.Task[bool] | None = None

        async def first_handler(uow: UnitOfWork, event: Event) -> None:
            await record_applied(uow, event)  # the inbox row is written, not committed
            first_inside.set()
            await asyncio.wait_for(second_entered.wait(), CAP_SECONDS)
            await asyncio.sleep(0.3)  # let the second member reach the inbox row
            assert second_task is not None
            observed["second_in_flight_before_first_commit"] = not second_task.done()

        first = EventConsumer(consumer_db, bus, service, group, [topic], first_handler)
        second = EventConsumer(
            second_db,
            bus,
            service,
            group,
            [topic],
            record_applied,
            inbox=WatchedInbox(second_db, second_entered),
        )
        first_task = asyncio.create_task(first.handle(delivery))
        await asyncio.wait_for(first_inside.wait(), CAP_SECONDS)
        second_task = asyncio.create_task(second.handle(delivery))
        assert await asyncio.wait_for(asyncio.gather(first_task, second_task), CAP_SECONDS) == [
            True,
            True,
        ]
    finally:
        await second_db.close()
        await bus.close()

    assert observed == {"second_in_flight_before_first_commit": True}  # they did overlap
    labels = {"service": service, "group": group, "topic": topic}
    outcomes = {
        outcome: REGISTRY.get_sample_value(
            "emporium_events_consumed_total", {**labels, "outcome": outcome}
        )
        for outcome in ("processed", "duplicate")
    }
    assert outcomes == {"processed": 1.0, "duplicate": 1.0}
    assert await effects(consumer_db) == {written.id: 1}
