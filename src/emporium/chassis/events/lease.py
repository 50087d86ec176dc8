"""The relay's lease: at most one active outbox relay per service database.

Two relays taking rows with `SKIP LOCKED` would publish the events of one key out of order, so
a relay publishes only while it holds the lease. On PostgreSQL the lease is a session-level
advisory lock held on a dedicated connection: if the process dies, the server drops the
connection and the lock with it. SQLite has no sessions to die with the process, so the lease
is a row with an expiry that the holder keeps renewing; a crashed holder's lease lapses after
`ttl` seconds.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from abc import ABC, abstractmethod
from datetime import UTC, datetime, timedelta

from sqlalchemy import Table, select, text
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from emporium.chassis.db import queued_writer

log = logging.getLogger(__name__)


def new_holder_id() -> str:
    """Who holds a lease, readable by an operator: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Lease(ABC):
    """`ensure()` is cheap to call before every batch: it acquires, renews or checks."""

    @abstractmethod
    async def ensure(self) -> bool:
        """True while this process holds the lease."""

    @abstractmethod
    async def release(self) -> None: ...


class AdvisoryLockLease(Lease):
    """`pg_try_advisory_lock(hashtext(name))` on a connection kept open while active."""

    def __init__(self, engine: AsyncEngine, name: str, check_every: float = 1.0) -> None:
        self._engine = engine
        self._name = name
        self._check_every = check_every
        self._conn: AsyncConnection | None = None
        self._checked_at = 0.0

    async def ensure(self) -> bool:
        if self._conn is not None:
            if time.monotonic() - self._checked_at < self._check_every:
                return True
            return await self._still_connected()
        conn = await self._engine.connect()
        try:
            got = await conn.scalar(
                text("SELECT pg_try_advisory_lock(hashtext(:name))"), {"name": self._name}
            )
            await conn.commit()  # the lock is session-level: no transaction stays open
        except BaseException:
            await conn.invalidate()
            raise
        if not got:
            await conn.close()
            return False
        self._conn, self._checked_at = conn, time.monotonic()
        return True

    async def _still_connected(self) -> bool:
        assert self._conn is not None
        try:
            await self._conn.execute(text("SELECT 1"))
            await self._conn.commit()
        except Exception:
            log.warning("relay lease %s: lock connection lost, lease dropped", self._name)
            await self._drop(invalidate=True)
            return False
        self._checked_at = time.monotonic()
        return True

    async def release(self) -> None:
        if self._conn is None:
            return
        try:
            await self._conn.execute(
                text("SELECT pg_advisory_unlock(hashtext(:name))"), {"name": self._name}
            )
            await self._conn.commit()
        except Exception:
            await self._drop(invalidate=True)  # closing the session frees the lock anyway
            return
        await self._drop(invalidate=False)

    async def _drop(self, *, invalidate: bool) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if invalidate:
                await conn.invalidate()
            else:
                await conn.close()
        except Exception:
            log.debug("relay lease %s: closing the lock connection failed", self._name)


class TableLease(Lease):
    """A row (name, holder, expires_at) taken over only when free or expired, renewed at ttl/3.

    Meant for SQLite (it also works on PostgreSQL, where the advisory lock is better: it is
    released the moment the holder's connection dies instead of after `ttl`)."""

    def __init__(
        self, engine: AsyncEngine, table: Table, name: str, holder: str, ttl: float = 10.0
    ) -> None:
        self._engine = engine
        self._table = table
        self._name = name
        self.holder = holder
        self._ttl = ttl
        self._renew_at = 0.0  # monotonic time of the next renewal while held

    async def ensure(self) -> bool:
        if self._renew_at and time.monotonic() < self._renew_at:
            return True
        started = time.monotonic()
        now = datetime.now(UTC)
        t = self._table
        insert = postgresql_insert if self._engine.dialect.name == "postgresql" else sqlite_insert
        stmt = insert(t).values(
            name=self._name, holder=self.holder, expires_at=now + timedelta(seconds=self._ttl)
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[t.c.name],
            set_={"holder": stmt.excluded.holder, "expires_at": stmt.excluded.expires_at},
            where=(t.c.holder == self.holder) | (t.c.expires_at < now),
        )
        async with queued_writer(self._engine), self._engine.begin() as conn:
            await conn.execute(stmt)
            holder = await conn.scalar(select(t.c.holder).where(t.c.name == self._name))
        held = holder == self.holder
        self._renew_at = started + self._ttl / 3 if held else 0.0
        return held

    async def release(self) -> None:
        self._renew_at = 0.0
        t = self._table
        async with queued_writer(self._engine), self._engine.begin() as conn:
            await conn.execute(t.delete().where(t.c.name == self._name, t.c.holder == self.holder))
