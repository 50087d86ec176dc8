"""Contract suite of idempotent event consumers, on every bus adapter.

`[embedded]` is the SQLite log in tmp_path, `[kafka]` the real broker. The consumer's own
database is SQLite (the inbox on PostgreSQL is covered by the outbox suite's store checks and
the service suites). Kafka assigns partitions only after the group join, so the loops below
poll until the expected outcome or a cap, and the asserts say what happened.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from emporium.chassis.backoff import Backoff
from emporium.chassis.bus.base import EventBus, Message
from emporium.chassis.bus.factory import open_bus
from emporium.chassis.db import Database, UnitOfWork
from emporium.chassis.errors import DomainError, ErrorCode
from emporium.chassis.events.consumer import EventConsumer
from emporium.chassis.events.envelope import Event, from_delivery, to_message
from emporium.chassis.runtime import StopSignal
from tests.backends import backend_url
from tests.events_support import (
    bump_effect,
    effects,
    fresh_database,
    read_dlq,
    unique,
)

CAP_SECONDS = 45.0


@pytest.fixture(params=["embedded", "kafka"], ids=["embedded", "kafka"])
async def bus(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[EventBus]:
    url = f"embedded://{tmp_path}/bus.sqlite3" if request.param == "embedded" else ""
    bus = open_bus(url or backend_url("kafka"), client_id="test-consumer")
    await bus.start()
    yield bus
    await bus.close()


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    async with fresh_database("sqlite", tmp_path) as db:
        yield db


def event(subject: str, n: int = 0) -> Event:
    return Event(
        source="/emporium/test", type="com.emporium.test.v1", subject=subject, data={"n": n}
    )


def consumed(service: str, group: str, topic: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "emporium_events_consumed_total",
        {"service": service, "group": group, "topic": topic, "outcome": outcome},
    )
    return value or 0.0


async def poll_until(consumer: EventConsumer, done: Callable[[], Awaitable[bool]]) -> None:
    deadline = time.monotonic() + CAP_SECONDS
    while not await done() and time.monotonic() < deadline:
        await consumer.poll_once()


@dataclass(frozen=True)
class RecordingBackoff(Backoff):
    """No jitter, and remembers the delays asked for (to check the backoff, not the clock)."""

    asked: list[float] = field(default_factory=list)

    def delay(self, retry: int) -> float:
        value = super().delay(retry)
        self.asked.append(value)
        return value


async def counting(uow: UnitOfWork, ev: Event) -> None:
    await bump_effect(uow, ev.subject)


async def test_duplicate_delivery_has_one_effect(bus: EventBus, database: Database) -> None:
    topic, group, service = unique("t"), unique("g"), unique("svc")
    first = event("order-1")
    await bus.publish([to_message(topic, first), to_message(topic, first)])  # redelivered
    await bus.publish([to_message(topic, event("order-2"))])
    consumer = EventConsumer(database, bus, service, group, [topic], counting)
    await consumer.start()

    async def all_seen() -> bool:
        outcomes = ("processed", "duplicate")
        return sum(consumed(service, group, topic, o) for o in outcomes) >= 3

    try:
        await poll_until(consumer, all_seen)
    finally:
        await consumer.close()

    assert await effects(database) == {"order-1": 1, "order-2": 1}
    assert consumed(service, group, topic, "processed") == 2
    assert consumed(service, group, topic, "duplicate") == 1


async def test_poisoned_message_is_retried_then_parked_and_the_next_is_processed(
    bus: EventBus, database: Database
) -> None:
    topic, group, service = unique("t"), unique("g"), unique("svc")
    poison, good = event("order-1", 1), event("order-1", 2)
    await bus.publish([to_message(topic, poison), to_message(topic, good)])
    attempts: list[str] = []

    async def handler(uow: UnitOfWork, ev: Event) -> None:
        attempts.append(ev.id)
        await bump_effect(uow, ev.subject)  # rolled back with the failure
        if ev.id == poison.id:
            raise RuntimeError("cannot handle this one")

    backoff = RecordingBackoff(initial=0.01, multiplier=2, maximum=1, jitter=0)
    consumer = EventConsumer(
        database, bus, service, group, [topic], handler, max_attempts=3, backoff=backoff
    )
    await consumer.start()

    async def good_done() -> bool:
        return consumed(service, group, topic, "processed") >= 1

    try:
        await poll_until(consumer, good_done)
    finally:
        await consumer.close()

    assert attempts == [poison.id] * 3 + [good.id]
    assert backoff.asked == [0.01, 0.02]  # exponential, between the three attempts
    assert consumed(service, group, topic, "retried") == 2
    assert consumed(service, group, topic, "dead_lettered") == 1
    assert await effects(database) == {"order-1": 1}  # only the good message's effect

    parked = await read_dlq(bus, topic)
    assert from_delivery(parked).id == poison.id
    assert parked.key == "order-1"
    assert parked.header("x-dlq-group") == group.encode()
    assert parked.header("x-dlq-attempts") == b"3"
    assert b"cannot handle this one" in (parked.header("x-dlq-error") or b"")
    assert await redelivered(bus, group, topic) == 0  # both offsets committed


async def redelivered(bus: EventBus, group: str, topic: str) -> int:
    """What a fresh member of `group` would get again (its lag: nothing if all committed)."""
    member = bus.consumer(group, [topic])
    await member.start()
    try:
        deadline = time.monotonic() + CAP_SECONDS
        while time.monotonic() < deadline:  # wait for an assignment, then read the lag
            got = await member.fetch(max_records=10, timeout=0.5)
            if got:
                return len(got)
            if await member.lag() == 0 and await assigned(member):
                return 0
        return -1
    finally:
        await member.stop()


async def assigned(member: Any) -> bool:
    inner = getattr(member, "_consumer", None)  # Kafka: wait until the group join assigned us
    return inner is None or bool(inner.assignment())


async def test_a_record_that_is_not_an_event_goes_straight_to_the_dlq(
    bus: EventBus, database: Database
) -> None:
    topic, group, service = unique("t"), unique("g"), unique("svc")
    await bus.publish([Message(topic, "k-1", b"not json", (("ce_id", b"x"),))])
    await bus.publish([to_message(topic, event("k-1"))])
    calls: list[str] = []

    async def handler(uow: UnitOfWork, ev: Event) -> None:
        calls.append(ev.subject)

    consumer = EventConsumer(database, bus, service, group, [topic], handler)
    await consumer.start()

    async def done() -> bool:
        return consumed(service, group, topic, "processed") >= 1

    try:
        await poll_until(consumer, done)
    finally:
        await consumer.close()

    assert calls == ["k-1"]
    parked = await read_dlq(bus, topic)
    assert parked.value == b"not json"
    assert parked.header("x-dlq-attempts") == b"0"
    assert b"EnvelopeError" in (parked.header("x-dlq-error") or b"")


async def test_a_failed_attempt_leaves_no_effect_and_the_retry_applies_once(
    bus: EventBus, database: Database
) -> None:
    topic, group, service = unique("t"), unique("g"), unique("svc")
    await bus.publish([to_message(topic, event("order-9"))])
    failures = [RuntimeError("transient glitch")]

    async def handler(uow: UnitOfWork, ev: Event) -> None:
        await bump_effect(uow, ev.subject)
        if failures:
            raise failures.pop()

    consumer = EventConsumer(
        database, bus, service, group, [topic], handler, backoff=Backoff(initial=0.01, jitter=0)
    )
    await consumer.start()

    async def done() -> bool:
        return consumed(service, group, topic, "processed") >= 1

    try:
        await poll_until(consumer, done)
    finally:
        await consumer.close()

    assert await effects(database) == {"order-9": 1}
    assert consumed(service, group, topic, "retried") == 1


async def test_run_consumes_until_stopped(bus: EventBus, database: Database) -> None:
    topic, group, service = unique("t"), unique("g"), unique("svc")
    await bus.publish([to_message(topic, event(f"order-{i}")) for i in range(5)])
    consumer = EventConsumer(database, bus, service, group, [topic], counting)
    stop = StopSignal()
    task = asyncio.create_task(consumer.run(stop))

    deadline = time.monotonic() + CAP_SECONDS
    while len(await effects(database)) < 5 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, timeout=30)

    assert await effects(database) == {f"order-{i}": 1 for i in range(5)}


async def test_without_a_database_the_handler_store_is_the_inbox(bus: EventBus) -> None:
    topic, group, service = unique("t"), unique("g"), unique("svc")
    ev = event("user-1")
    await bus.publish([to_message(topic, ev), to_message(topic, ev)])
    documents: dict[str, Event] = {}  # e.g. a document store keyed by event id
    contexts: list[object] = []

    async def handler(context: object, got: Event) -> None:
        contexts.append(context)
        documents.setdefault(got.id, got)  # idempotent write

    consumer = EventConsumer(None, bus, service, group, [topic], handler)
    await consumer.start()

    async def done() -> bool:
        return len(contexts) >= 2

    try:
        await poll_until(consumer, done)
    finally:
        await consumer.close()

    assert contexts == [None, None]
    assert list(documents) == [ev.id]


async def test_a_batch_handler_takes_the_fetched_batch_in_one_call(bus: EventBus) -> None:
    topic, group, service = unique("t"), unique("g"), unique("svc")
    sent = [event("order-1", i) for i in range(6)]  # one key: one partition, fetched together
    await bus.publish([to_message(topic, ev) for ev in sent])
    batches: list[list[str]] = []
    one_by_one: list[str] = []

    async def handle_batch(events: Sequence[Event]) -> None:
        batches.append([ev.id for ev in events])

    async def handler(context: object, ev: Event) -> None:
        one_by_one.append(ev.id)

    consumer = EventConsumer(
        None, bus, service, group, [topic], handler, batch_handler=handle_batch
    )
    await consumer.start()

    async def done() -> bool:
        return consumed(service, group, topic, "processed") >= len(sent)

    try:
        await poll_until(consumer, done)
    finally:
        await consumer.close()

    applied = [*(i for batch in batches for i in batch), *one_by_one]
    assert sorted(applied) == sorted(ev.id for ev in sent)  # each once
    assert max(map(len, batches)) > 1, batches  # a fetch of several went in one call
    assert consumed(service, group, topic, "processed") == len(sent)
    assert await redelivered(bus, group, topic) == 0  # the batch's offsets committed


async def test_a_poison_event_sends_its_batch_down_the_per_event_path(bus: EventBus) -> None:
    topic, group, service = unique("t"), unique("g"), unique("svc")
    poison, good = event("order-1", 1), event("order-1", 2)  # one key: one partition
    await bus.publish([to_message(topic, ev) for ev in (good, poison, event("order-1", 3))])
    facts: dict[str, int] = {}  # keyed by event id: a repeated write is harmless
    batch_calls: list[int] = []

    def apply(ev: Event) -> None:
        if ev.id == poison.id:
            raise DomainError("not a fact", ErrorCode.INVALID_ARGUMENT, "bad_fact")
        facts[ev.id] = ev.data["n"]

    async def handle_batch(events: Sequence[Event]) -> None:
        batch_calls.append(len(events))
        for ev in events:
            apply(ev)

    async def handler(context: object, ev: Event) -> None:
        apply(ev)

    consumer = EventConsumer(
        None, bus, service, group, [topic], handler, batch_handler=handle_batch
    )
    await consumer.start()

    async def done() -> bool:
        processed = consumed(service, group, topic, "processed")
        return processed >= 2 and consumed(service, group, topic, "dead_lettered") >= 1

    try:
        await poll_until(consumer, done)
    finally:
        await consumer.close()

    assert batch_calls, "the batch handler was never tried"
    assert sorted(facts.values()) == [2, 3]
    assert consumed(service, group, topic, "processed") == 2  # counted once, not per try
    assert consumed(service, group, topic, "dead_lettered") == 1
    assert from_delivery(await read_dlq(bus, topic)).id == poison.id
    assert await redelivered(bus, group, topic) == 0


def test_a_batch_handler_needs_a_store_idempotent_consumer(
    bus: EventBus, database: Database
) -> None:
    async def handle_batch(events: Sequence[Event]) -> None:
        raise AssertionError("never called")

    with pytest.raises(ValueError, match="store-idempotent"):
        EventConsumer(database, bus, "svc", "g", ["t"], counting, batch_handler=handle_batch)
