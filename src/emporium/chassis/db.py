"""Relational data: SQLAlchemy 2 async engines and the unit of work.

SQLite (aiosqlite) is the embedded default, PostgreSQL (asyncpg) the production adapter; the
URL decides. Only the unit of work commits: handlers receive a `UnitOfWork`, use its session
through their service's repository (`store.py`) and never call `commit()` themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from sqlalchemy import Connection, Table, event
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from emporium.chassis import sqlite_inloop
from emporium.chassis.errors import DomainError, ErrorCode
from emporium.chassis.metrics import DB_COMMITS, DB_POOL_IN_USE, DB_POOL_SIZE

T = TypeVar("T")

# What a store's read query runs on: a unit of work's or `Database.session()`'s ORM session,
# or `Database.read()`'s bare connection (both `execute` a Core statement alike).
Reader = AsyncSession | AsyncConnection

log = logging.getLogger(__name__)

# How long a SQLite writer waits for another process's write lock before "database is locked".
SQLITE_BUSY_TIMEOUT_SECONDS = 30

# Execution option naming how a SQLite transaction begins (default IMMEDIATE, see below).
_SQLITE_BEGIN = "emporium_sqlite_begin"
# ...whose value for `Database.read()`: no BEGIN, each statement is its own transaction.
_SQLITE_AUTOCOMMIT = "AUTOCOMMIT"


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An engine for `url`; SQLite files get WAL, a busy timeout and foreign keys on,
    transactions that SQLAlchemy begins itself (see `_sqlite_begin`), and their statements
    run on the event loop's thread (`sqlite_inloop`)."""
    if url.startswith("sqlite"):
        parsed = make_url(url)
        path = parsed.database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            # Statements run on the event loop's thread, not aiosqlite's (sqlite_inloop).
            cargs, cparams = parsed.get_dialect()().create_connect_args(parsed)
            kwargs.setdefault(
                "async_creator",
                lambda: sqlite_inloop.connect(
                    *cargs, busy_timeout=SQLITE_BUSY_TIMEOUT_SECONDS, **cparams
                ),
            )
        engine = create_async_engine(
            url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS}, **kwargs
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    return create_async_engine(url, **kwargs)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    if not isinstance(getattr(dbapi_conn, "_connection", None), sqlite_inloop.InLoopConnection):
        # aiosqlite's thread may sleep in SQLite's busy handler; the loop's thread may not.
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_SECONDS * 1000}")
    cur.close()
    # Stop the driver's own implicit BEGIN (it opens a transaction only at the first write,
    # so a read-then-write unit of work would read outside its transaction and lose
    # concurrent updates); `_sqlite_begin` emits the BEGIN instead.
    dbapi_conn.isolation_level = None


def _sqlite_begin(conn: Connection) -> None:
    """`BEGIN IMMEDIATE` by default (units of work, `engine.begin()`): the transaction takes
    the write lock up front, waiting up to the busy timeout, so writers are serialized and a
    read-then-write cannot lose an update (a deferred transaction upgrading to write would
    instead fail at once with "database is locked" when another writer committed after its
    read). `Database.session()`, read-only, begins DEFERRED and runs beside the writer, as
    WAL allows."""
    mode = conn.get_execution_options().get(_SQLITE_BEGIN, "IMMEDIATE")
    if mode != _SQLITE_AUTOCOMMIT:
        conn.exec_driver_sql(f"BEGIN {mode}")


# Per event loop, per SQLite file: the queue of this process's writers (`queued_writer`).
_WRITER_QUEUES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)


@asynccontextmanager
async def queued_writer(engine: AsyncEngine) -> AsyncIterator[None]:
    """SQLite: one write transaction at a time per file in this process, the others queued
    here; wrap every `BEGIN IMMEDIATE` (units of work, `Database.write()`, the leases).

    SQLite has one writer per file anyway, but a writer that finds the lock taken waits in
    SQLite's busy handler, which sleeps 1, 2, 5, 10 ... up to 100 ms between tries: under
    load the lock is free long before the waiters wake up, and each of a checkout's commits
    paid tens of milliseconds for nothing. Queued on an asyncio lock, the next writer starts
    the moment the previous one finished. And since statements run on the event loop's own
    thread (`sqlite_inloop`), a writer must never wait in the busy handler for a transaction
    of the same process: that one could not finish while the loop is blocked. One queue per
    file, whichever engine writes it. A lock held by another process (a CLI, a restarted
    service overlapping its predecessor) is waited for with asyncio sleeps (`sqlite_inloop`).
    PostgreSQL locks rows: no queue there."""
    if engine.dialect.name != "sqlite":
        yield
        return
    queues = _WRITER_QUEUES.setdefault(asyncio.get_running_loop(), {})
    async with queues.setdefault(_file_key(engine.url.database or ""), asyncio.Lock()):
        yield


@functools.cache
def _file_key(path: str) -> str:
    """The file a SQLite URL names, however it was spelled (one queue per file)."""
    return path if path in ("", ":memory:") else os.path.realpath(path)


def is_postgres(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "postgresql"


class Database:
    """An engine plus its session factory; built by a service's `app.py`, closed at shutdown."""

    def __init__(self, url: str, *, service: str = "", **engine_kwargs: Any) -> None:
        self.url = url
        self.engine = create_engine(url, **engine_kwargs)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        if service:
            # Commits per request are a cost the load benchmark multiplies out (bench/load.py).
            commits = DB_COMMITS.labels(service)
            event.listen(self.engine.sync_engine, "commit", lambda _conn: commits.inc())
            # Read at scrape time: a pool that stays full means requests queue for it.
            # (A queue pool has both; an in-memory SQLite's static pool has neither.)
            pool = self.engine.sync_engine.pool
            in_use, size = getattr(pool, "checkedout", None), getattr(pool, "size", None)
            if callable(in_use) and callable(size):
                DB_POOL_IN_USE.labels(service).set_function(lambda: float(in_use()))
                DB_POOL_SIZE.labels(service).set_function(lambda: float(size()))

    def unit_of_work(self) -> UnitOfWork:
        return UnitOfWork(self.sessions, self._writing)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A Core write transaction (`engine.begin()`), queued with the process's other
        writers like a unit of work."""
        async with self._writing(), self.engine.begin() as conn:
            yield conn

    def _writing(self) -> contextlib.AbstractAsyncContextManager[None]:
        return queued_writer(self.engine)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A read-only session (queries outside any unit of work; on SQLite it does not wait
        for the write lock, so it must not write)."""
        async with self.sessions() as session:
            if self.engine.dialect.name == "sqlite":
                await session.connection(execution_options={_SQLITE_BEGIN: "DEFERRED"})
            yield session

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """One read-only statement on a pooled connection, without an ORM session.

        The hot reads (a product page, an order, a token's standing) are single SELECTs of
        Core statements: an ORM session costs more to set up than the query, and on SQLite
        the BEGIN/ROLLBACK around one statement are two more trips to the driver's thread
        for nothing, since a lone statement is already its own consistent snapshot. Several
        statements are fine too when their rows cannot disagree (an order and its lines,
        written together and never changed apart); reads that need several statements to
        agree on changing rows use `session()` (one DEFERRED transaction).
        """
        async with self.engine.connect() as conn:
            if self.engine.dialect.name == "sqlite":
                conn = await conn.execution_options(**{_SQLITE_BEGIN: _SQLITE_AUTOCOMMIT})
            yield conn

    async def close(self) -> None:
        await self.engine.dispose()


class UnitOfWork:
    """One transaction: `async with db.unit_of_work() as uow: ...; await uow.commit()`.

    Leaving the block without `commit()` (or with an exception) rolls everything back, so a
    failed use case never leaves a partial write.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        writing: Callable[[], contextlib.AbstractAsyncContextManager[None]],
    ) -> None:
        self._sessions = sessions
        self._writing = writing()
        self._session: AsyncSession | None = None
        self.committed = False

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            raise RuntimeError("UnitOfWork used outside its `async with` block")
        return self._session

    async def __aenter__(self) -> UnitOfWork:
        await self._writing.__aenter__()
        try:
            self._session = self._sessions()
            await self._session.begin()
        except BaseException:
            await self._writing.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        session = self.session
        try:
            if not self.committed:
                await session.rollback()
        finally:
            try:
                await session.close()
            finally:
                self._session = None
                await self._writing.__aexit__(None, None, None)

    async def commit(self) -> None:
        await self.session.commit()
        self.committed = True

    async def rollback(self) -> None:
        await self.session.rollback()


async def insert_unless_taken(session: AsyncSession, table: Table, **values: Any) -> bool:
    """INSERT the row unless one of its unique keys is taken; False when it was (a concurrent
    writer won, or the row exists). One `ON CONFLICT DO NOTHING` statement: catching the
    violation instead costs a savepoint and its release around the INSERT (PostgreSQL aborts
    the whole transaction on a violation), and the unit of work stays usable either way."""
    dialect = session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    result = await session.execute(insert(table).values(**values).on_conflict_do_nothing())
    return bool(getattr(result, "rowcount", 0))


@contextlib.contextmanager
def database_errors_as_unavailable() -> Iterator[None]:
    """Turn a database that cannot answer (unreachable, locked past the busy timeout, not
    migrated yet) into UNAVAILABLE: the caller may retry later, and the failure is not
    reported as a bug in the request (INTERNAL). The cause is logged, since the caller only
    sees the category."""
    try:
        yield
    except (OperationalError, InterfaceError) as exc:
        log.warning("database unavailable: %s", exc.orig or exc, exc_info=True)
        raise DomainError(
            "the database is unavailable", ErrorCode.UNAVAILABLE, "database_unavailable"
        ) from exc


def answers_unavailable_when_the_database_is_down(
    method: Callable[[Any, Any, Any], Awaitable[T]],
) -> Callable[[Any, Any, Any], Awaitable[T]]:
    """For a servicer's RPC methods: a database that cannot answer is UNAVAILABLE (retry),
    not INTERNAL (see `database_errors_as_unavailable`)."""

    @functools.wraps(method)
    async def rpc(self: Any, request: Any, context: Any) -> T:
        with database_errors_as_unavailable():
            return await method(self, request, context)

    return rpc
