"""Helpers shared by the event-plumbing suites (outbox, consumer, chaos).

Each test gets a fresh database (a SQLite file in tmp_path, or a new PostgreSQL schema that
is dropped afterwards) with the event tables plus `effects`, a counter table standing in for
a consumer's state change.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import Column, Integer, MetaData, String, Table, select, text, update

from emporium.chassis.bus.base import Consumer, Delivery, EventBus
from emporium.chassis.db import Database, UnitOfWork, create_engine
from emporium.chassis.events.consumer import dead_letter_topic
from emporium.chassis.events.envelope import Event
from emporium.chassis.events.tables import EVENT_METADATA

COLLECT_CAP_SECONDS = 45.0

TEST_METADATA = MetaData()
EFFECTS = Table(
    "effects",
    TEST_METADATA,
    Column("name", String(128), primary_key=True),
    Column("count", Integer, nullable=False),
)
ORDERS = Table(
    "orders",
    TEST_METADATA,
    Column("id", String(64), primary_key=True),
    Column("status", String(32), nullable=False),
)
# What a consumer applied, in the order it applied it (`pos`): per-key order checks read it.
APPLIED = Table(
    "applied",
    TEST_METADATA,
    Column("pos", Integer, primary_key=True, autoincrement=True),
    Column("key", String(128), nullable=False),
    Column("n", Integer, nullable=False),
    Column("event_id", String(64), nullable=False),
)


class ScratchDatabase(Database):
    """A test database; `schema` is its PostgreSQL schema (None on SQLite), so a child
    process can open the same one (`ScratchDatabase(db.url, db.schema)`)."""

    def __init__(self, url: str, schema: str | None = None) -> None:
        extra = {"connect_args": {"server_settings": {"search_path": schema}}} if schema else {}
        super().__init__(url, **extra)
        self.schema = schema


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


async def _create_tables(database: Database) -> None:
    async with database.engine.begin() as conn:
        await conn.run_sync(EVENT_METADATA.create_all)
        await conn.run_sync(TEST_METADATA.create_all)


@asynccontextmanager
async def fresh_database(
    kind: str, tmp_path: Path, pg_url: str = ""
) -> AsyncIterator[ScratchDatabase]:
    """A Database with empty event + test tables: SQLite in tmp_path or a new PG schema."""
    if kind == "sqlite":
        database = ScratchDatabase(f"sqlite+aiosqlite:///{tmp_path}/{unique('svc')}.sqlite3")
        await _create_tables(database)
        try:
            yield database
        finally:
            await database.close()
        return
    schema = unique("events").replace("-", "_")
    admin = create_engine(pg_url)
    async with admin.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    database = ScratchDatabase(pg_url, schema)
    try:
        await _create_tables(database)
        yield database
    finally:
        await database.close()
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()


async def bump_effect(uow: UnitOfWork, name: str) -> None:
    """The consumer-side state change: effects[name] += 1 (created at 1)."""
    session = uow.session
    current = await session.scalar(select(EFFECTS.c.count).where(EFFECTS.c.name == name))
    if current is None:
        await session.execute(EFFECTS.insert().values(name=name, count=1))
    else:
        await session.execute(
            update(EFFECTS).where(EFFECTS.c.name == name).values(count=current + 1)
        )


async def effects(database: Database) -> dict[str, int]:
    async with database.session() as session:
        rows = (await session.execute(select(EFFECTS.c.name, EFFECTS.c.count))).all()
    return {str(row[0]): int(row[1]) for row in rows}


def event_effect_name(event: Event) -> str:
    return f"{event.subject}/{event.id}"


async def collect(consumer: Consumer, count: int) -> list[Delivery]:
    """Fetch until `count` deliveries arrived (or the cap passed: the caller's assert fails)."""
    got: list[Delivery] = []
    deadline = time.monotonic() + COLLECT_CAP_SECONDS
    while len(got) < count and time.monotonic() < deadline:
        got += await consumer.fetch(max_records=max(count - len(got), 1), timeout=0.5)
    return got


async def read_dlq(bus: EventBus, topic: str) -> Delivery:
    """The one record a consumer parked in `topic`'s dead-letter topic."""
    reader = bus.consumer(unique("dlq-reader"), [dead_letter_topic(topic)])
    await reader.start()
    try:
        got = await collect(reader, 1)
    finally:
        await reader.stop()
    assert len(got) == 1
    return got[0]
