"""Two relays on one outbox at once (two replicas of a service): per-key order kept.

Two child processes run the real `OutboxRelay` on the same producer database while the test
writes events for several keys and a real `EventConsumer` applies them. The lease (an
advisory lock on PostgreSQL, a lease row on SQLite) lets one relay publish at a time: while
both live, every published round comes from the same process. Then the test SIGKILLs the
one publishing, mid-stream; the standby takes over (at once on PostgreSQL, after the lease's
ttl on SQLite), republishing whatever the dead one had sent but not marked. In the end every
event is applied exactly once and each key's events in the order they were written.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from emporium.chassis.events.consumer import EventConsumer
from emporium.chassis.runtime import StopSignal
from tests.chaos.support import (
    Child,
    Profile,
    all_applied,
    applied_count,
    assert_each_once_in_order,
    child_spec,
    open_chaos_bus,
    outbox_published,
    record_applied,
    wait_until,
    write_events,
)
from tests.events_support import ScratchDatabase, unique

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(240)]

KEYS = tuple(f"order-{k}" for k in range(6))
PER_KEY = 30
BATCH = 5  # small rounds, so the kill lands in the middle of the stream


def rounds(log: Path) -> list[int]:
    """The pid of the relay behind each published round, in order."""
    if not log.exists():
        return []
    return [int(line.split()[0]) for line in log.read_text().splitlines() if line.strip()]


async def test_two_relays_at_once_publish_one_at_a_time_and_keep_per_key_order(
    profile: Profile, producer_db: ScratchDatabase, consumer_db: ScratchDatabase, tmp_path: Path
) -> None:
    topic, service = unique("chaos.relays"), unique("svc")
    log = tmp_path / "rounds.log"
    bus = open_chaos_bus(profile, client_id="chaos-relays-test")
    await bus.start()
    stop = StopSignal()
    consumer = EventConsumer(consumer_db, bus, service, unique("g"), [topic], record_applied)
    await consumer.start()  # topic and group exist before the first event
    consuming = asyncio.create_task(consumer.run(stop))
    spec = child_spec(profile, producer_db, service=service, log=str(log), batch_size=BATCH)
    relays = [Child("relay", spec), Child("relay", spec)]
    try:
        written = await write_events(producer_db, topic, KEYS, PER_KEY // 2, pause=0.002)
        await wait_until(lambda: _at_least(log, 3), what="three published rounds")
        leader = rounds(log)[-1]
        both_alive = rounds(log)
        assert set(both_alive) == {leader}, both_alive  # one relay at a time

        victim = next(r for r in relays if r.pid == leader)
        writing = asyncio.create_task(
            write_events(
                producer_db, topic, KEYS, PER_KEY - PER_KEY // 2, start=PER_KEY // 2, pause=0.002
            )
        )
        await asyncio.sleep(0.2)  # mid-stream
        victim.kill()
        written += await writing
        await wait_until(outbox_published(producer_db), what="the standby publishing the rest")
        await wait_until(all_applied(consumer_db, len(written)), what="every event applied")
        await asyncio.sleep(1.0)  # a late duplicate or stray copy would land now
    finally:
        for relay in relays:
            relay.kill()
        stop.set()
        await consuming
        await bus.close()

    publishers = rounds(log)
    survivor = next(r.pid for r in relays if r.pid != leader)
    assert publishers[-1] == survivor  # the standby took over...
    assert set(publishers) == {leader, survivor}
    assert await applied_count(consumer_db) == len(written)
    await assert_each_once_in_order(consumer_db, written)  # ...and no key went out of order


async def _at_least(log: Path, count: int) -> bool:
    return len(rounds(log)) >= count
