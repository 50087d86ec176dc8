"""SQLite driven on the event loop's own thread: aiosqlite's interface, without its thread.

aiosqlite runs every statement (and every commit and rollback) on a thread of its own and
hands the answer back through the event loop: two thread switches per statement. On two
busy cores each switch waits for the scheduler, and a checkout's twenty-odd statements in
order-service cost more in those hand-offs than in SQLite itself (bench/RESULTS.md). A
statement on a local WAL file with `synchronous=NORMAL` (no fsync at commit) takes
microseconds, so running it right where it is awaited is cheaper than handing it off.

What could block the loop instead, and why it does not here:
- waiting for another connection's write lock: SQLite's busy handler would sleep on the
  loop's thread, and the lock's holder, if it is a transaction of this same process, could
  not finish meanwhile. So the connections have no busy handler: a statement that finds the
  database locked is tried again after an asyncio sleep (1 ms, doubling to 20 ms) until the
  busy timeout. Rarely needed: `Database` queues the process's own writers before they
  begin (`chassis/db.queued_writer`); another process writing the file (a restarted service
  overlapping its predecessor, a CLI) is what meets it;
- a WAL checkpoint (every 1,000 pages written): one fsync, now and then, on the loop.

SQLAlchemy's aiosqlite dialect drives it (`create_async_engine(..., async_creator=...)`,
see `chassis/db.create_engine`): the classes below offer the part of aiosqlite's
`Connection` and `Cursor` that the dialect uses, each coroutine completing without
suspending.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, TypeVar

T = TypeVar("T")

FIRST_RETRY_SECONDS = 0.001
MAX_RETRY_SECONDS = 0.02


async def _while_locked(attempt: Callable[[], T], busy_timeout: float) -> T:
    """`attempt()`, tried again after a short asyncio sleep while the database is locked by
    another connection, until `busy_timeout` seconds have passed (then the error stands)."""
    deadline = time.monotonic() + busy_timeout
    pause = FIRST_RETRY_SECONDS
    while True:
        try:
            return attempt()
        except sqlite3.OperationalError as exc:
            locked = "locked" in str(exc) or "busy" in str(exc)
            if not locked or time.monotonic() + pause > deadline:
                raise
        await asyncio.sleep(pause)
        pause = min(pause * 2, MAX_RETRY_SECONDS)


class InLoopCursor:
    """aiosqlite's `Cursor` over a `sqlite3.Cursor`, run in place."""

    def __init__(self, cursor: sqlite3.Cursor, busy_timeout: float) -> None:
        self._cursor = cursor
        self._busy_timeout = busy_timeout

    async def __aenter__(self) -> InLoopCursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._cursor.close()

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._rows()

    async def _rows(self) -> AsyncIterator[Any]:
        while (row := self._cursor.fetchone()) is not None:
            yield row

    async def execute(self, sql: str, parameters: Any = None) -> InLoopCursor:
        if parameters is None:
            await _while_locked(lambda: self._cursor.execute(sql), self._busy_timeout)
        else:
            await _while_locked(lambda: self._cursor.execute(sql, parameters), self._busy_timeout)
        return self

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> InLoopCursor:
        rows = list(parameters)  # a retry must see them all again
        await _while_locked(lambda: self._cursor.executemany(sql, rows), self._busy_timeout)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(self._cursor.arraysize if size is None else size)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()

    async def setinputsizes(self, *sizes: Any) -> None:
        return None

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value


class _RunAtOnce:
    """Stands in for aiosqlite's request queue: the dialect sets a connection's isolation
    level by queueing `(future, function)` for the connection's thread; here it runs now."""

    def put_nowait(self, item: tuple[asyncio.Future[Any], Any]) -> None:
        future, function = item
        try:
            future.set_result(function())
        except Exception as exc:  # the dialect reads the error from the future
            future.set_exception(exc)


class InLoopConnection:
    """aiosqlite's `Connection` over a `sqlite3.Connection`, run in place."""

    def __init__(self, connection: sqlite3.Connection, busy_timeout: float) -> None:
        self._connection: sqlite3.Connection | None = connection
        self._busy_timeout = busy_timeout
        self._tx = _RunAtOnce()

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._connection is None:
            raise ValueError("no active connection")
        return self._connection

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    def cursor(self) -> InLoopCursor:
        return InLoopCursor(self._conn.cursor(), self._busy_timeout)

    async def commit(self) -> None:
        await _while_locked(self._conn.commit, self._busy_timeout)

    async def rollback(self) -> None:
        self._conn.rollback()

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._conn.create_function(*args, **kwargs)

    async def close(self) -> None:
        self.stop()

    def stop(self) -> None:
        """Close now (the dialect's forced close when a connection is invalidated)."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None


async def connect(*args: Any, busy_timeout: float, **kwargs: Any) -> InLoopConnection:
    """What `aiosqlite.connect` is to the dialect; the other arguments are `sqlite3.connect`'s.

    `busy_timeout`: how long a statement waits (asynchronously) for another connection's
    lock. SQLite's own busy handler is off (`timeout=0`, see above). The connection may be
    closed from another thread (the pool's clean-up when an engine is garbage-collected),
    hence `check_same_thread=False`; it is used by one task at a time."""
    kwargs["check_same_thread"] = False
    kwargs["timeout"] = 0
    return InLoopConnection(sqlite3.connect(*args, **kwargs), busy_timeout)
