"""Contract suite of the event bus port, run against every adapter.

`[embedded]` is the SQLite log in a temporary file; `[kafka]` is the real broker from
`.ci/backends.sh`. Kafka assigns partitions only after the group join (a few seconds), so
reads go through `collect`, which keeps fetching until it has what it needs or a time cap.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

import pytest

from emporium.chassis.bus.base import (
    Consumer,
    Delivery,
    EventBus,
    Message,
    PartitionRevokedError,
)
from emporium.chassis.bus.embedded import EmbeddedBus, EmbeddedConsumer
from emporium.chassis.bus.factory import open_bus
from tests.backends import backend_url

COLLECT_CAP_SECONDS = 30.0
MakeConsumer = Callable[..., Awaitable[Consumer]]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


async def collect(consumer: Consumer, count: int) -> list[Delivery]:
    """Fetch until `count` deliveries arrived (or the cap passed: the caller's assert fails)."""
    got: list[Delivery] = []
    deadline = time.monotonic() + COLLECT_CAP_SECONDS
    while len(got) < count and time.monotonic() < deadline:
        got += await consumer.fetch(max_records=count - len(got), timeout=0.5)
    return got


def values(deliveries: Sequence[Delivery]) -> list[bytes]:
    return [d.value for d in deliveries]


def batch(topic: str, key: str, n: int, start: int = 0) -> list[Message]:
    return [Message(topic, key, f"{key}:{i}".encode()) for i in range(start, start + n)]


@pytest.fixture(params=["embedded", "kafka"], ids=["embedded", "kafka"])
def bus_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "embedded":
        return f"embedded://{tmp_path}/bus.sqlite3"
    return backend_url("kafka")


@pytest.fixture
async def bus(bus_url: str) -> AsyncIterator[EventBus]:
    bus = open_bus(bus_url, client_id="test-bus")
    await bus.start()
    yield bus
    await bus.close()


@pytest.fixture
async def make_consumer(bus: EventBus) -> AsyncIterator[MakeConsumer]:
    """Started consumers, all stopped at the end of the test (stopping twice is fine)."""
    started: list[Consumer] = []

    async def make(group: str, *topics: str) -> Consumer:
        consumer = bus.consumer(group, list(topics))
        await consumer.start()
        started.append(consumer)
        return consumer

    yield make
    for consumer in started:
        await consumer.stop()


async def test_publish_then_consume_in_order(bus: EventBus, make_consumer: MakeConsumer) -> None:
    topic = unique("t")
    await bus.publish(batch(topic, "order-1", 5))
    consumer = await make_consumer(unique("g"), topic)

    got = await collect(consumer, 5)

    assert values(got) == [f"order-1:{i}".encode() for i in range(5)]
    assert all(d.topic == topic and d.key == "order-1" for d in got)
    offsets = [d.offset for d in got]
    assert offsets == sorted(offsets)
    assert len(set(offsets)) == 5


async def test_per_key_order_is_kept_across_a_batch_with_several_keys(
    bus: EventBus, make_consumer: MakeConsumer
) -> None:
    topic = unique("t")
    keys = [f"sku-{k}" for k in range(6)]
    published = [Message(topic, key, f"{key}:{i}".encode()) for i in range(8) for key in keys]
    await bus.publish(published)
    consumer = await make_consumer(unique("g"), topic)

    got = await collect(consumer, len(published))

    assert len(got) == len(published)
    for key in keys:
        assert [d.value for d in got if d.key == key] == [f"{key}:{i}".encode() for i in range(8)]


async def test_keys_spread_over_partitions_and_each_key_stays_in_one(
    bus: EventBus, make_consumer: MakeConsumer
) -> None:
    topic = unique("t")
    published = [Message(topic, f"user-{k}", b"x") for k in range(30)] * 2
    await bus.publish(published)
    consumer = await make_consumer(unique("g"), topic)

    got = await collect(consumer, len(published))

    assert len(got) == len(published)
    assert len({d.partition for d in got}) > 1
    for key in {d.key for d in got}:
        assert len({d.partition for d in got if d.key == key}) == 1


async def test_a_commit_covers_earlier_offsets_of_its_partition_only(
    bus: EventBus, make_consumer: MakeConsumer
) -> None:
    topic, group = unique("t"), unique("g")
    published = [
        Message(topic, f"sku-{k}", f"{k}:{i}".encode()) for i in range(3) for k in range(12)
    ]
    await bus.publish(published)
    first = await make_consumer(group, topic)
    got = await collect(first, len(published))
    last_of_partition = {d.partition: d for d in got}
    committed_partition, committed = next(iter(last_of_partition.items()))
    await first.commit(committed)
    await first.stop()

    second = await make_consumer(group, topic)
    expected = sorted(values([d for d in got if d.partition != committed_partition]))
    again = await collect(second, len(expected))

    assert sorted(values(again)) == expected
    assert await second.fetch(timeout=0.2) == []


async def test_every_group_sees_every_message(bus: EventBus, make_consumer: MakeConsumer) -> None:
    topic = unique("t")
    await bus.publish(batch(topic, "user-1", 4))
    first = await make_consumer(unique("g"), topic)
    second = await make_consumer(unique("g"), topic)

    got_first, got_second = await asyncio.gather(collect(first, 4), collect(second, 4))

    expected = [f"user-1:{i}".encode() for i in range(4)]
    assert values(got_first) == expected
    assert values(got_second) == expected


async def test_a_new_member_resumes_after_the_committed_offset(
    bus: EventBus, make_consumer: MakeConsumer
) -> None:
    topic, group = unique("t"), unique("g")
    await bus.publish(batch(topic, "order-7", 6))
    first = await make_consumer(group, topic)
    got = await collect(first, 6)
    await first.commit(got[2])
    await first.stop()

    second = await make_consumer(group, topic)
    resumed = await collect(second, 3)

    assert values(resumed) == [f"order-7:{i}".encode() for i in range(3, 6)]


async def test_uncommitted_messages_are_redelivered_to_the_next_member(
    bus: EventBus, make_consumer: MakeConsumer
) -> None:
    topic, group = unique("t"), unique("g")
    await bus.publish(batch(topic, "order-9", 3))
    first = await make_consumer(group, topic)
    assert len(await collect(first, 3)) == 3
    await first.stop()  # as after a crash: nothing was committed

    second = await make_consumer(group, topic)
    again = await collect(second, 3)

    assert values(again) == [f"order-9:{i}".encode() for i in range(3)]


async def test_seek_to_committed_redelivers_what_was_fetched_but_not_committed(
    bus: EventBus, make_consumer: MakeConsumer
) -> None:
    topic = unique("t")
    await bus.publish(batch(topic, "order-3", 4))
    consumer = await make_consumer(unique("g"), topic)
    got = await collect(consumer, 4)
    await consumer.commit(got[0])

    await consumer.seek_to_committed()
    again = await collect(consumer, 3)

    assert values(again) == [f"order-3:{i}".encode() for i in range(1, 4)]


async def test_lag_counts_messages_not_committed(
    bus: EventBus, make_consumer: MakeConsumer
) -> None:
    topic = unique("t")
    await bus.publish(batch(topic, "order-4", 3))
    consumer = await make_consumer(unique("g"), topic)
    got = await collect(consumer, 3)
    await consumer.commit(got[0])

    assert await consumer.lag() == 2


async def test_headers_round_trip_as_bytes(bus: EventBus, make_consumer: MakeConsumer) -> None:
    topic = unique("t")
    headers = (("ce_id", b"e-1"), ("ce_type", b"order.created"), ("binary", b"\x00\xff"))
    await bus.publish([Message(topic, "order-5", b"{}", headers)])
    consumer = await make_consumer(unique("g"), topic)

    (delivery,) = await collect(consumer, 1)

    assert delivery.headers == headers
    assert delivery.header("ce_type") == b"order.created"
    assert delivery.timestamp_ms > 0


async def test_fetch_on_an_empty_topic_returns_nothing_after_the_timeout(
    bus: EventBus, make_consumer: MakeConsumer
) -> None:
    consumer = await make_consumer(unique("g"), unique("t"))

    assert await consumer.fetch(timeout=0.2) == []


# -- embedded only: several OS processes on one file -------------------------------------

PUBLISHER = """
import asyncio, sys
from emporium.chassis.bus.base import Message
from emporium.chassis.bus.embedded import EmbeddedBus

async def main(path, topic, key, n):
    bus = EmbeddedBus(path)
    await bus.start()
    print("ready", flush=True)
    sys.stdin.readline()  # both processes start publishing together
    for start in range(0, n, 2):
        await bus.publish([Message(topic, key, f"{key}:{i}".encode())
                           for i in range(start, min(start + 2, n))])
    await bus.close()

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
"""

LEASE_HOLDER = """
import asyncio, sys
from emporium.chassis.bus.embedded import EmbeddedBus

async def main(path, group, topic):
    bus = EmbeddedBus(path, lease_seconds=1.0)
    consumer = bus.consumer(group, [topic])
    await consumer.start()
    while not await consumer.fetch(timeout=0.5):
        pass
    print("holding", flush=True)
    await asyncio.sleep(3600)  # killed by the test, lease never released

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
"""


async def run_python(code: str, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )


async def test_embedded_concurrent_publishers_in_two_processes_lose_nothing(
    tmp_path: Path,
) -> None:
    path, topic, n = str(tmp_path / "bus.sqlite3"), unique("t"), 200
    procs = [await run_python(PUBLISHER, path, topic, key, str(n)) for key in ("p1", "p2")]
    for proc in procs:
        assert proc.stdout is not None
        assert await asyncio.wait_for(proc.stdout.readline(), 20) == b"ready\n"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        await proc.stdin.drain()
    assert [await asyncio.wait_for(p.wait(), 60) for p in procs] == [0, 0]

    bus = EmbeddedBus(path)
    await bus.start()
    consumer = bus.consumer(unique("g"), [topic])
    await consumer.start()
    try:
        got = await collect(consumer, 2 * n)
    finally:
        await consumer.stop()
        await bus.close()

    for partition in {d.partition for d in got}:
        offsets = [d.offset for d in got if d.partition == partition]
        assert offsets == list(range(len(offsets)))
    for key in ("p1", "p2"):
        assert [d.value for d in got if d.key == key] == [f"{key}:{i}".encode() for i in range(n)]


async def test_embedded_second_member_takes_over_after_the_first_stops(
    tmp_path: Path,
) -> None:
    bus = EmbeddedBus(tmp_path / "bus.sqlite3")
    await bus.start()
    topic, group = unique("t"), unique("g")
    await bus.publish(batch(topic, "order-1", 3))
    first, second = bus.consumer(group, [topic]), bus.consumer(group, [topic])
    await first.start()
    try:
        got = await collect(first, 3)
        await first.commit(got[0])
        await second.start()
        await bus.publish(batch(topic, "order-1", 1, start=3))

        # the first member holds every partition until it gives them back in a fetch or stops
        assert await second.fetch(timeout=0.3) == []

        await first.stop()  # releases its leases; 1 and 2 were fetched but not committed
        taken_over = await collect(second, 3)
        assert values(taken_over) == [f"order-1:{i}".encode() for i in range(1, 4)]
    finally:
        await first.stop()
        await second.stop()
        await bus.close()


async def settle(members: Sequence[EmbeddedConsumer], partitions: int) -> None:
    """Fetch on every member until their assignments are disjoint and cover the topic."""
    deadline = time.monotonic() + COLLECT_CAP_SECONDS
    while time.monotonic() < deadline:
        for member in members:
            assert await member.fetch(timeout=0.05) == []
        held = [member.assignment() for member in members]
        if all(held) and sum(map(len, held)) == len(set().union(*held)) == partitions:
            return
    raise AssertionError(f"no stable split: {[m.assignment() for m in members]}")


async def test_embedded_members_of_one_group_split_the_partitions(tmp_path: Path) -> None:
    bus = EmbeddedBus(tmp_path / "bus.sqlite3", partitions=4)
    await bus.start()
    topic, group = unique("t"), unique("g")
    members = [EmbeddedConsumer(bus.path, group, [topic], default_partitions=4) for _ in "ab"]
    try:
        for member in members:
            await member.start()
        await settle(members, partitions=4)
        assignments = [member.assignment() for member in members]
        published = [
            Message(topic, f"sku-{k}", f"{k}:{i}".encode()) for i in range(3) for k in range(20)
        ]
        await bus.publish(published)

        got: list[list[Delivery]] = [[], []]
        deadline = time.monotonic() + COLLECT_CAP_SECONDS
        while sum(map(len, got)) < len(published) and time.monotonic() < deadline:
            for member, bucket in zip(members, got, strict=True):
                bucket += await member.fetch(timeout=0.05)

        assert all(got), "both members got messages"
        for bucket, assigned in zip(got, assignments, strict=True):
            assert {(d.topic, d.partition) for d in bucket} <= assigned
        assert sorted(values(got[0] + got[1])) == sorted(m.value for m in published)
        for member in members:
            assert await member.fetch(timeout=0.1) == []
    finally:
        for member in members:
            await member.stop()
        await bus.close()


async def test_embedded_commit_on_a_partition_given_to_another_member_is_refused(
    tmp_path: Path,
) -> None:
    bus = EmbeddedBus(tmp_path / "bus.sqlite3")
    await bus.start()
    topic, group = unique("t"), unique("g")
    await bus.publish([Message(topic, f"sku-{k}", b"x") for k in range(12)])
    first, second = bus.consumer(group, [topic]), bus.consumer(group, [topic])
    try:
        await first.start()
        got = await collect(first, 12)
        await second.start()
        assert isinstance(first, EmbeddedConsumer)
        held_before = first.assignment()
        deadline = time.monotonic() + COLLECT_CAP_SECONDS
        while first.assignment() == held_before and time.monotonic() < deadline:
            assert await first.fetch(timeout=0.05) == []  # gives back the newcomer's share
        given_away = next(d for d in got if (d.topic, d.partition) not in first.assignment())

        with pytest.raises(PartitionRevokedError):
            await first.commit(given_away)
    finally:
        await bus.close()  # stops both members too


async def test_embedded_lease_of_a_killed_member_expires_and_its_messages_are_redelivered(
    tmp_path: Path,
) -> None:
    path, topic, group = tmp_path / "bus.sqlite3", unique("t"), unique("g")
    bus = EmbeddedBus(path, lease_seconds=1.0)
    await bus.start()
    await bus.publish(batch(topic, "order-2", 2))
    holder = await run_python(LEASE_HOLDER, str(path), group, topic)
    successor = bus.consumer(group, [topic])
    try:
        assert holder.stdout is not None
        assert await asyncio.wait_for(holder.stdout.readline(), 20) == b"holding\n"
        await successor.start()
        assert await successor.fetch(timeout=0.2) == []

        os.kill(holder.pid, signal.SIGKILL)
        await holder.wait()
        got = await collect(successor, 2)

        assert values(got) == [b"order-2:0", b"order-2:1"]
    finally:
        if holder.returncode is None:
            holder.kill()
            await holder.wait()
        await successor.stop()
        await bus.close()


# -- the factory ---------------------------------------------------------------------------


def test_open_bus_picks_the_adapter_by_scheme(tmp_path: Path) -> None:
    from emporium.chassis.bus.kafka import KafkaBus
    from emporium.chassis.bus.kafka_topics import TopicSpec

    embedded = open_bus(f"embedded://{tmp_path}/bus.sqlite3", client_id="x")
    assert isinstance(embedded, EmbeddedBus)
    assert embedded.path == tmp_path / "bus.sqlite3"
    assert isinstance(open_bus("embedded://var/bus.sqlite3", "x"), EmbeddedBus)
    kafka = open_bus("kafka://127.0.0.1:1,127.0.0.1:2", client_id="svc")
    assert isinstance(kafka, KafkaBus)
    assert kafka.bootstrap_servers == "127.0.0.1:1,127.0.0.1:2"
    assert kafka.client_id == "svc"
    # The seed's production topic spec unless the URL says otherwise.
    assert kafka.topics == TopicSpec(partitions=3, replication_factor=3, min_insync_replicas=2)


def test_open_bus_reads_the_topic_spec_from_the_url(tmp_path: Path) -> None:
    from emporium.chassis.bus.kafka import KafkaBus
    from emporium.chassis.bus.kafka_topics import TopicSpec

    embedded = open_bus(f"embedded://{tmp_path}/bus.sqlite3?partitions=5", client_id="x")
    kafka = open_bus(
        "kafka://127.0.0.1:1?partitions=6&replication_factor=1&min_insync_replicas=1"
        "&create_topics=false",
        client_id="x",
    )

    assert isinstance(embedded, EmbeddedBus)
    assert (embedded.path, embedded.partitions) == (tmp_path / "bus.sqlite3", 5)
    assert isinstance(kafka, KafkaBus)
    assert kafka.topics == TopicSpec(6, 1, 1, create=False)


@pytest.mark.parametrize(
    "query",
    ["replication_factor=2&min_insync_replicas=3", "partitions=0", "create_topics=maybe"],
)
def test_open_bus_rejects_an_impossible_kafka_topic_spec(query: str) -> None:
    with pytest.raises(ValueError, match=re.escape(query)):
        open_bus(f"kafka://127.0.0.1:1?{query}", client_id="x")


def test_open_bus_rejects_an_unknown_scheme() -> None:
    with pytest.raises(ValueError, match="'rabbitmq'"):
        open_bus("rabbitmq://localhost", client_id="x")
