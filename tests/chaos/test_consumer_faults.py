"""Faults of a consumer: its process SIGKILLed around the two commits it makes per delivery
(the database transaction holding effect + inbox row, then the bus offset).

A child process runs the real `EventConsumer` (with its `RelationalInbox`) on events the real
relay published; a hook signals the test at the fault point and hangs, and the test SIGKILLs
it there. A new member of the same group then finishes the topic. What each kill point must
give (the counts come from `emporium_events_consumed_total`):

- before the database commit: the effect died with the transaction; the event comes again
  and is applied then (no duplicate seen).
- after the database commit, before the offset commit: the event comes again and the inbox
  turns it into a duplicate (one `duplicate`, no second effect).
- after the offset commit: nothing of the committed batch comes again.
In all three: every event applied exactly once, per-key order kept.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from emporium.chassis.events.consumer import EventConsumer
from tests.chaos.support import (
    CAP_SECONDS,
    Child,
    Profile,
    applied_count,
    assert_each_once_in_order,
    child_spec,
    open_chaos_bus,
    record_applied,
    relay_all,
    write_events,
)
from tests.events_support import ScratchDatabase, unique

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(240)]

KEYS = ("sku-1", "sku-2", "sku-3")
PER_KEY = 4
TOTAL = len(KEYS) * PER_KEY
BATCH = 3  # the child handles a few at a time, so a kill leaves work for its successor


def consumed(service: str, group: str, topic: str, outcome: str) -> int:
    labels = {"service": service, "group": group, "topic": topic, "outcome": outcome}
    return int(REGISTRY.get_sample_value("emporium_events_consumed_total", labels) or 0)


class Scenario:
    """One topic with TOTAL published events, one consumer group, one child to kill."""

    def __init__(
        self,
        profile: Profile,
        producer_db: ScratchDatabase,
        consumer_db: ScratchDatabase,
        tmp_path: Path,
    ) -> None:
        self.profile, self.producer_db, self.consumer_db = profile, producer_db, consumer_db
        self.tmp_path = tmp_path
        self.topic, self.group, self.service = unique("chaos.t"), unique("g"), unique("svc")

    async def publish(self) -> list:
        written = await write_events(self.producer_db, self.topic, KEYS, PER_KEY)
        bus = open_chaos_bus(self.profile, client_id="chaos-test-relay")
        await bus.start()
        try:
            await relay_all(self.producer_db, bus, self.service)
        finally:
            await bus.close()
        return written

    async def kill_consumer_at(self, fault: str) -> str:
        marker = self.tmp_path / f"{fault}.marker"
        spec = child_spec(
            self.profile,
            self.consumer_db,
            service=unique("child"),
            group=self.group,
            topics=[self.topic],
            fault=fault,
            marker=str(marker),
            batch_size=BATCH,
        )
        child = Child("consumer", spec)
        try:
            return await child.wait_for(marker)
        finally:
            child.kill()

    async def finish(self, expected_deliveries: int) -> tuple[int, int]:
        """A new member of the group consumes what is left; (processed, duplicates)."""
        bus = open_chaos_bus(self.profile, client_id="chaos-test-consumer")
        await bus.start()
        consumer = EventConsumer(
            self.consumer_db, bus, self.service, self.group, [self.topic], record_applied
        )
        delivered = 0
        deadline = time.monotonic() + CAP_SECONDS
        try:
            await consumer.start()
            while delivered < expected_deliveries and time.monotonic() < deadline:
                delivered += await consumer.poll_once()
            for _ in range(3):  # anything beyond what was expected would show up here
                delivered += await consumer.poll_once()
        finally:
            await consumer.close()
            await bus.close()
        return (
            consumed(self.service, self.group, self.topic, "processed"),
            consumed(self.service, self.group, self.topic, "duplicate"),
        )


@pytest.fixture
def scenario(
    profile: Profile, producer_db: ScratchDatabase, consumer_db: ScratchDatabase, tmp_path: Path
) -> Scenario:
    return Scenario(profile, producer_db, consumer_db, tmp_path)


async def test_consumer_killed_before_its_database_commit_applies_the_event_later_once(
    scenario: Scenario,
) -> None:
    written = await scenario.publish()

    await scenario.kill_consumer_at("before_db_commit")
    assert await applied_count(scenario.consumer_db) == 0  # rolled back with the process

    processed, duplicates = await scenario.finish(TOTAL)
    assert (processed, duplicates) == (TOTAL, 0)
    await assert_each_once_in_order(scenario.consumer_db, written)


async def test_consumer_killed_after_its_commit_before_the_offset_commit_sees_a_duplicate(
    scenario: Scenario,
) -> None:
    written = await scenario.publish()

    await scenario.kill_consumer_at("after_db_commit")
    assert await applied_count(scenario.consumer_db) == 1  # effect committed, offset not

    processed, duplicates = await scenario.finish(TOTAL)
    assert (processed, duplicates) == (TOTAL - 1, 1)  # redelivered, and the inbox said so
    await assert_each_once_in_order(scenario.consumer_db, written)


async def test_consumer_killed_after_the_offset_commit_gets_nothing_of_that_batch_again(
    scenario: Scenario,
) -> None:
    written = await scenario.publish()

    done = int(await scenario.kill_consumer_at("after_offset_commit"))
    assert 0 < done <= BATCH
    assert await applied_count(scenario.consumer_db) == done

    processed, duplicates = await scenario.finish(TOTAL - done)
    assert (processed, duplicates) == (TOTAL - done, 0)
    await assert_each_once_in_order(scenario.consumer_db, written)
