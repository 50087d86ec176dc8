"""Retention of the embedded event log: old messages go, offsets never restart, and a group
that was behind resumes at the oldest message kept (chassis/bus/embedded.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from emporium.chassis.bus import embedded
from emporium.chassis.bus.base import Message
from emporium.chassis.bus.embedded import EmbeddedBus
from emporium.chassis.bus.factory import open_bus

HOUR_MS = 3600 * 1000
T0 = 1_700_000_000_000


class Clock:
    def __init__(self) -> None:
        self.now_ms = T0

    def __call__(self) -> int:
        return self.now_ms


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(embedded, "_now_ms", clock)
    return clock


@pytest.fixture
async def bus(tmp_path: Path, clock: Clock) -> AsyncIterator[EmbeddedBus]:
    bus = EmbeddedBus(tmp_path / "bus.sqlite3", partitions=1, retention_seconds=3600)
    await bus.start()
    yield bus
    await bus.close()


def messages(*values: str) -> list[Message]:
    return [Message("orders", "k", v.encode()) for v in values]


async def offsets_and_values(bus: EmbeddedBus, group: str) -> list[tuple[int, bytes]]:
    consumer = bus.consumer(group, ["orders"])
    await consumer.start()
    try:
        return [(d.offset, d.value) for d in await consumer.fetch(100, timeout=0.2)]
    finally:
        await consumer.stop()


async def test_messages_older_than_the_retention_are_deleted(
    bus: EmbeddedBus, clock: Clock
) -> None:
    await bus.publish(messages("a", "b", "c"))
    clock.now_ms += 2 * HOUR_MS
    await bus.publish(messages("d"))
    assert await bus.trim() == 3
    assert await offsets_and_values(bus, "g") == [(3, b"d")]
    assert await bus.trim() == 0


async def test_the_newest_message_stays_so_offsets_never_restart(
    bus: EmbeddedBus, clock: Clock
) -> None:
    await bus.publish(messages("a", "b"))
    clock.now_ms += 2 * HOUR_MS
    assert await bus.trim() == 1  # "b" carries the end offset
    await bus.publish(messages("c"))
    assert await offsets_and_values(bus, "g") == [(1, b"b"), (2, b"c")]


async def test_a_group_behind_the_retention_resumes_at_the_oldest_message_kept(
    bus: EmbeddedBus, clock: Clock
) -> None:
    await bus.publish(messages("a", "b", "c"))
    reader = bus.consumer("slow", ["orders"])
    await reader.start()
    (first, *_) = await reader.fetch(1, timeout=0.2)
    await reader.commit(first)  # committed offset 1; "b" and "c" not yet read
    await reader.stop()
    clock.now_ms += 2 * HOUR_MS
    await bus.publish(messages("d", "e"))
    assert await bus.trim() == 3
    assert await offsets_and_values(bus, "slow") == [(3, b"d"), (4, b"e")]


async def test_publish_trims_at_most_once_per_interval(
    bus: EmbeddedBus, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    await bus.publish(messages("a", "b"))
    clock.now_ms += 2 * HOUR_MS
    await bus.publish(messages("c"))  # the start already trimmed: not due yet
    assert [o for o, _ in await offsets_and_values(bus, "g")] == [0, 1, 2]
    monkeypatch.setattr(bus, "_next_trim", 0.0)  # the interval has passed
    await bus.publish(messages("d"))
    assert [o for o, _ in await offsets_and_values(bus, "g2")] == [2, 3]  # "c" is recent


def test_the_url_sets_the_retention(tmp_path: Path) -> None:
    bus = open_bus(f"embedded://{tmp_path}/bus.sqlite3?retention_hours=2", client_id="t")
    assert isinstance(bus, EmbeddedBus)
    assert bus.retention_seconds == 7200
    default = open_bus(f"embedded://{tmp_path}/bus.sqlite3", client_id="t")
    assert isinstance(default, EmbeddedBus)
    assert default.retention_seconds == 7 * 24 * 3600
    with pytest.raises(ValueError):
        EmbeddedBus(tmp_path / "x.sqlite3", retention_seconds=0)
