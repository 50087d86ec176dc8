"""Faults of the outbox relay: its process SIGKILLed after the broker's ack, or before it
produced anything.

A child process runs the real relay (`OutboxRelay` with the profile's lease) over the
producer's database; a hook at the fault point signals the test and hangs, and the test
SIGKILLs it there. A relay in the test process (once the dead one's lease is gone: at once on
PostgreSQL, whose advisory lock dies with the connection; after its ttl on SQLite) publishes
the rows, and a real `EventConsumer` applies them through its inbox.

- killed after the ack: the rows went out but were never marked, so they go out again; the
  consumer gets every event twice and applies each once (inbox).
- killed before producing: the rows stayed unmarked and nothing reached the broker; they go
  out once, and each event is applied once.
Both: per-key order kept.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from emporium.chassis.events.consumer import EventConsumer
from tests.chaos.support import (
    CAP_SECONDS,
    Child,
    Profile,
    assert_each_once_in_order,
    child_spec,
    open_chaos_bus,
    record_applied,
    relay_all,
    unpublished,
    write_events,
)
from tests.events_support import ScratchDatabase, unique

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(240)]

KEYS = ("order-a", "order-b")
PER_KEY = 4


async def kill_relay_at(
    fault: str, profile: Profile, producer_db: ScratchDatabase, service: str, tmp_path: Path
) -> list[int]:
    """Run a relay child until `fault`, SIGKILL it; the seqs of the batch it held."""
    marker = tmp_path / f"{fault}.marker"
    child = Child(
        "relay", child_spec(profile, producer_db, service=service, fault=fault, marker=str(marker))
    )
    try:
        seqs = await child.wait_for(marker)
    finally:
        child.kill()
    return [int(s) for s in seqs.split(",")]


async def consume_all(
    profile: Profile, consumer_db: ScratchDatabase, topic: str, service: str, expected: int
) -> int:
    """Deliveries a fresh consumer handled until it has seen `expected` (or the cap)."""
    bus = open_chaos_bus(profile, client_id="chaos-test-consumer")
    await bus.start()
    consumer = EventConsumer(consumer_db, bus, service, unique("g"), [topic], record_applied)
    delivered = 0
    deadline = time.monotonic() + CAP_SECONDS
    try:
        await consumer.start()
        while delivered < expected and time.monotonic() < deadline:
            delivered += await consumer.poll_once()
        # A little more: a third copy (a bug) would show up here.
        for _ in range(3):
            delivered += await consumer.poll_once()
    finally:
        await consumer.close()
        await bus.close()
    return delivered


async def test_relay_killed_after_the_broker_ack_republishes_and_each_effect_happens_once(
    profile: Profile, producer_db: ScratchDatabase, consumer_db: ScratchDatabase, tmp_path: Path
) -> None:
    topic, service = unique("chaos.order"), unique("svc")
    written = await write_events(producer_db, topic, KEYS, PER_KEY)

    held = await kill_relay_at("after_ack", profile, producer_db, service, tmp_path)
    assert len(held) == len(written)
    assert await unpublished(producer_db) == len(written)  # acked by the broker, never marked

    bus = open_chaos_bus(profile, client_id="chaos-test-relay")
    await bus.start()
    try:
        await relay_all(producer_db, bus, service)
    finally:
        await bus.close()
    delivered = await consume_all(profile, consumer_db, topic, service, 2 * len(written))

    assert delivered == 2 * len(written)  # every event arrived exactly twice...
    await assert_each_once_in_order(consumer_db, written)  # ...and was applied once, in order


async def test_relay_killed_before_producing_loses_nothing_and_sends_each_event_once(
    profile: Profile, producer_db: ScratchDatabase, consumer_db: ScratchDatabase, tmp_path: Path
) -> None:
    topic, service = unique("chaos.order"), unique("svc")
    written = await write_events(producer_db, topic, KEYS, PER_KEY)

    held = await kill_relay_at("before_produce", profile, producer_db, service, tmp_path)
    assert len(held) == len(written)
    assert await unpublished(producer_db) == len(written)

    bus = open_chaos_bus(profile, client_id="chaos-test-relay")
    await bus.start()
    try:
        await relay_all(producer_db, bus, service)
    finally:
        await bus.close()
    delivered = await consume_all(profile, consumer_db, topic, service, len(written))

    assert delivered == len(written)  # the killed relay sent nothing
    await assert_each_once_in_order(consumer_db, written)
