"""Contract suite of the relational port (`emporium.chassis.db`), run against every adapter.

`[sqlite]` is a file in a temporary directory; `[postgresql]` is a fresh database created on
the real server from `.ci/backends.sh` for this module and dropped at the end.
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import Column, Integer, MetaData, Table, Text, event, text
from sqlalchemy.engine import make_url

from emporium.chassis.config import normalize_database_url
from emporium.chassis.db import Database, insert_unless_taken, is_postgres
from tests.backends import backend_url

WRITERS = 8
WRITES_EACH = 10


def _asyncpg_dsn(url: str, database: str) -> str:
    """The libpq-style DSN asyncpg wants, for `database` on the server of `url`."""
    parsed = make_url(url).set(drivername="postgresql", database=database)
    return parsed.render_as_string(hide_password=False)


@pytest.fixture(scope="module")
def postgres_database() -> Iterator[str]:
    """A fresh database on the real server, dropped after this module (servers are shared)."""
    server = normalize_database_url(backend_url("postgresql"))
    name = f"emporium_store_{uuid.uuid4().hex[:12]}"
    admin = _asyncpg_dsn(server, make_url(server).database or "postgres")

    async def admin_sql(sql: str) -> None:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin_sql(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgresql"], ids=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return normalize_database_url(f"sqlite:///{tmp_path}/store.sqlite3")
    url: str = request.getfixturevalue("postgres_database")
    return url


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    yield database
    await database.close()


@pytest.fixture
async def table(db: Database) -> str:
    """A table of this test's own (the PostgreSQL database is shared by the module)."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    async with db.unit_of_work() as uow:
        await uow.session.execute(
            text(f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, note TEXT NOT NULL)")
        )
        await uow.commit()
    return name


async def notes(db: Database, table: str) -> list[str]:
    async with db.session() as session:
        result = await session.execute(text(f"SELECT note FROM {table} ORDER BY id"))
        return [row[0] for row in result]


async def insert(db: Database, table: str, id_: int, note: str, *, commit: bool) -> None:
    async with db.unit_of_work() as uow:
        await uow.session.execute(
            text(f"INSERT INTO {table} (id, note) VALUES (:id, :note)"), {"id": id_, "note": note}
        )
        if commit:
            await uow.commit()


async def test_unit_of_work_commits_on_commit(db: Database, table: str) -> None:
    await insert(db, table, 1, "kept", commit=True)

    assert await notes(db, table) == ["kept"]


async def test_unit_of_work_rolls_back_without_commit(db: Database, table: str) -> None:
    await insert(db, table, 1, "dropped", commit=False)

    assert await notes(db, table) == []


async def test_unit_of_work_rolls_back_on_exception(db: Database, table: str) -> None:
    class Boom(Exception):
        pass

    async def fail_midway() -> None:
        async with db.unit_of_work() as uow:
            await uow.session.execute(text(f"INSERT INTO {table} (id, note) VALUES (1, 'dropped')"))
            raise Boom

    with pytest.raises(Boom):
        await fail_midway()

    assert await notes(db, table) == []


async def test_a_failed_statement_leaves_no_partial_write(db: Database, table: str) -> None:
    await insert(db, table, 1, "first", commit=True)

    async def second_insert_fails() -> None:
        async with db.unit_of_work() as uow:
            await uow.session.execute(text(f"INSERT INTO {table} (id, note) VALUES (2, 'x')"))
            await uow.session.execute(text(f"INSERT INTO {table} (id, note) VALUES (1, 'y')"))
            await uow.commit()

    with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
        await second_insert_fails()

    assert await notes(db, table) == ["first"]


async def test_insert_unless_taken_keeps_the_first_row_and_the_transaction(
    db: Database, table: str
) -> None:
    """A taken key answers False and changes nothing; the unit of work goes on (PostgreSQL
    would abort it on a caught violation) and commits what else it wrote."""
    rows = Table(table, MetaData(), Column("id", Integer, primary_key=True), Column("note", Text))
    async with db.unit_of_work() as uow:
        assert await insert_unless_taken(uow.session, rows, id=1, note="first")
        assert not await insert_unless_taken(uow.session, rows, id=1, note="second")
        assert await insert_unless_taken(uow.session, rows, id=2, note="after")
        await uow.commit()
    assert await notes(db, table) == ["first", "after"]


async def test_unit_of_work_outside_its_block_is_an_error(db: Database) -> None:
    uow = db.unit_of_work()

    with pytest.raises(RuntimeError, match="outside"):
        _ = uow.session


async def test_concurrent_writers_all_succeed(database_url: str, table: str) -> None:
    """Two engines (as two processes would have) writing at once: on SQLite, WAL plus the busy
    timeout make writers wait for each other instead of failing with "database is locked"."""
    engines = [Database(database_url), Database(database_url)]

    async def writer(n: int) -> None:
        db = engines[n % 2]
        for i in range(WRITES_EACH):
            async with db.unit_of_work() as uow:
                await uow.session.execute(text(f"SELECT COUNT(*) FROM {table}"))
                await uow.session.execute(
                    text(f"INSERT INTO {table} (id, note) VALUES (:id, 'w')"),
                    {"id": n * WRITES_EACH + i},
                )
                await uow.commit()

    try:
        await asyncio.gather(*(writer(n) for n in range(WRITERS)))
        assert len(await notes(engines[0], table)) == WRITERS * WRITES_EACH
    finally:
        for engine in engines:
            await engine.close()


async def test_sqlite_read_modify_write_transactions_do_not_lose_updates(tmp_path: Path) -> None:
    """A unit of work that reads then writes is isolated on SQLite (it takes the write lock
    when it begins), so concurrent increments through two engines all count. (PostgreSQL
    needs `SELECT ... FOR UPDATE` for this, which is the repositories' business.)"""
    database_url = normalize_database_url(f"sqlite:///{tmp_path}/counter.sqlite3")
    engines = [Database(database_url), Database(database_url)]
    async with engines[0].unit_of_work() as uow:
        await uow.session.execute(text("CREATE TABLE counter (id INTEGER PRIMARY KEY, n INT)"))
        await uow.session.execute(text("INSERT INTO counter VALUES (1, 0)"))
        await uow.commit()

    async def increment(db: Database) -> None:
        async with db.unit_of_work() as uow:
            n = (await uow.session.execute(text("SELECT n FROM counter WHERE id = 1"))).scalar_one()
            await asyncio.sleep(0)  # let the other writers interleave
            await uow.session.execute(text("UPDATE counter SET n = :n WHERE id = 1"), {"n": n + 1})
            await uow.commit()

    try:
        await asyncio.gather(*(increment(engines[i % 2]) for i in range(WRITERS * WRITES_EACH)))
        async with engines[0].session() as session:
            total = (await session.execute(text("SELECT n FROM counter"))).scalar()
        assert total == WRITERS * WRITES_EACH
    finally:
        for engine in engines:
            await engine.close()


async def test_the_engine_speaks_the_adapter_it_was_given(db: Database, database_url: str) -> None:
    assert is_postgres(db.engine) == database_url.startswith("postgresql")
    async with db.session() as session:
        assert (await session.execute(text("SELECT 1"))).scalar() == 1


@pytest.mark.parametrize(
    ("url", "normalized"),
    [
        ("postgresql://u:p@db:5432/orders", "postgresql+asyncpg://u:p@db:5432/orders"),
        ("postgres://db/orders", "postgresql+asyncpg://db/orders"),
        ("postgresql+asyncpg://db/orders", "postgresql+asyncpg://db/orders"),
        ("sqlite:///var/order.sqlite3", "sqlite+aiosqlite:///var/order.sqlite3"),
        ("sqlite+aiosqlite:///var/order.sqlite3", "sqlite+aiosqlite:///var/order.sqlite3"),
    ],
)
def test_normalize_database_url_picks_the_async_driver(url: str, normalized: str) -> None:
    assert normalize_database_url(url) == normalized


async def test_a_read_session_does_not_wait_for_an_open_unit_of_work(
    db: Database, table: str
) -> None:
    async with db.unit_of_work() as uow:
        await uow.session.execute(text(f"INSERT INTO {table} (id, note) VALUES (1, 'pending')"))

        assert await asyncio.wait_for(notes(db, table), timeout=10) == []

        await uow.commit()
    assert await notes(db, table) == ["pending"]


async def read_notes(db: Database, table: str) -> list[str]:
    async with db.read() as conn:
        result = await conn.execute(text(f"SELECT note FROM {table} ORDER BY id"))
        return [row[0] for row in result]


async def test_a_read_sees_what_was_committed_and_not_what_is_pending(
    db: Database, table: str
) -> None:
    await insert(db, table, 1, "kept", commit=True)
    async with db.unit_of_work() as uow:
        await uow.session.execute(text(f"INSERT INTO {table} (id, note) VALUES (2, 'pending')"))

        assert await asyncio.wait_for(read_notes(db, table), timeout=10) == ["kept"]

        await uow.commit()
    assert await read_notes(db, table) == ["kept", "pending"]


async def test_a_sqlite_read_sends_only_its_statement(tmp_path: Path) -> None:
    """`read()` exists to skip the BEGIN around a lone SELECT (`session()` sends one)."""
    db = Database(normalize_database_url(f"sqlite:///{tmp_path}/store.sqlite3"))
    sent: list[str] = []
    event.listen(
        db.engine.sync_engine,
        "before_cursor_execute",
        lambda _conn, _cursor, statement, *_: sent.append(statement),
    )
    try:
        async with db.read() as conn:
            await conn.execute(text("SELECT 1"))
        async with db.session() as session:
            await session.execute(text("SELECT 2"))
    finally:
        await db.close()

    assert [s for s in sent if not s.startswith("PRAGMA")] == [
        "SELECT 1",
        "BEGIN DEFERRED",
        "SELECT 2",
    ]


async def test_a_sqlite_writer_waiting_for_another_process_leaves_the_loop_running(
    tmp_path: Path,
) -> None:
    """Statements run on the event loop's thread (`sqlite_inloop`): a writer that finds the
    file locked by another connection (another process, as a restarted service overlapping
    its predecessor) waits with asyncio sleeps, so the loop goes on serving meanwhile, and
    writes once the lock is free."""
    path = tmp_path / "locked.sqlite3"
    db = Database(normalize_database_url(f"sqlite:///{path}"))
    async with db.unit_of_work() as uow:
        await uow.session.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
        await uow.commit()
    other = sqlite3.connect(path, isolation_level=None)  # not queued: another process's
    other.execute("BEGIN IMMEDIATE")
    ticks = 0

    async def loop_ticks() -> None:
        nonlocal ticks
        for _ in range(20):
            ticks += 1
            await asyncio.sleep(0.01)
        other.execute("COMMIT")

    async def write() -> int:
        async with db.unit_of_work() as uow:
            await uow.session.execute(text("INSERT INTO t VALUES (1)"))
            await uow.commit()
        return ticks

    try:
        _, ticks_when_written = await asyncio.gather(loop_ticks(), write())
        async with db.session() as session:
            rows = (await session.execute(text("SELECT count(*) FROM t"))).scalar_one()
    finally:
        other.close()
        await db.close()
    assert ticks_when_written == 20  # the loop ran all along; the write waited for the lock
    assert rows == 1
