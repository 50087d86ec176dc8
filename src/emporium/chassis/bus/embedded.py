"""The embedded event bus: a durable log in one SQLite file shared by the local processes.

Why SQLite: the embedded profile runs the twelve services as separate processes on one
machine with nothing installed, and they need the same semantics the code relies on with
Kafka. One WAL-mode file gives atomic, durable appends (`synchronous=FULL`: `publish`
returns after the commit reached the disk), readers that never block the writer, and a
place to keep the consumer groups' committed offsets next to the log.

Model: each topic is a single partition (0), so every key keeps its publish order. A
consumer group reads each topic through at most one member at a time: the member holds a
lease row `(group, topic)` that it renews while alive (a heartbeat task); another member of
the group gets nothing from that topic until the lease is released (`stop`) or expires (the
holder crashed). A member that takes a lease starts from the group's committed offset, so
whatever the previous holder fetched but did not commit is delivered again.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from emporium.chassis.bus.base import Consumer, Delivery, EventBus, Headers, Message

T = TypeVar("T")
log = logging.getLogger(__name__)

PARTITION = 0
POLL_INTERVAL_SECONDS = 0.025
BUSY_TIMEOUT_MS = 30_000
DEFAULT_LEASE_SECONDS = 10.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS bus_messages (
    topic TEXT NOT NULL,
    "offset" INTEGER NOT NULL,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    headers TEXT NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    PRIMARY KEY (topic, "offset")
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS bus_offsets (
    grp TEXT NOT NULL,
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    committed INTEGER NOT NULL,
    PRIMARY KEY (grp, topic, partition)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS bus_leases (
    grp TEXT NOT NULL,
    topic TEXT NOT NULL,
    owner TEXT NOT NULL,
    expires_ms INTEGER NOT NULL,
    PRIMARY KEY (grp, topic)
) WITHOUT ROWID;
"""


class LeaseLostError(RuntimeError):
    """A member committed on a topic whose lease another member of its group now holds
    (it stalled past the lease); like Kafka's CommitFailedError after a rebalance."""


def _now_ms() -> int:
    return int(time.time() * 1000)


def _encode_headers(headers: Headers) -> str:
    return json.dumps([[k, base64.b64encode(v).decode("ascii")] for k, v in headers])


def _decode_headers(text: str) -> Headers:
    return tuple((str(k), base64.b64decode(v)) for k, v in json.loads(text))


def _enable_wal(conn: sqlite3.Connection) -> None:
    """Switch the file to WAL (a persistent setting), retrying while another process does.

    Changing the journal mode of a file that another connection is creating can fail with
    SQLITE_BUSY at once, without going through the busy handler, hence the explicit retry."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(POLL_INTERVAL_SECONDS)


class _Connection:
    """One sqlite3 connection used from worker threads, one call at a time.

    Autocommit mode (`isolation_level=None`) so transactions are explicit; writers use
    `BEGIN IMMEDIATE` to take the write lock up front (a deferred transaction upgrading to
    write would fail with SQLITE_BUSY instead of waiting)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    async def open(self) -> None:
        await asyncio.to_thread(self._open)

    def _open(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        _enable_wal(conn)
        conn.execute("PRAGMA synchronous = FULL")
        conn.executescript(_SCHEMA)  # each statement autocommits; IF NOT EXISTS makes it racy-safe
        self._conn = conn

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.to_thread(self.read, fn)

    async def run_write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.to_thread(self.write, fn)

    def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            if self._conn is None:
                raise RuntimeError("embedded bus connection is not open (call start())")
            return fn(self._conn)

    def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def in_transaction(conn: sqlite3.Connection) -> T:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

        return self.read(in_transaction)

    async def close(self) -> None:
        def close() -> None:
            with self._lock:
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None

        await asyncio.to_thread(close)


def _append(conn: sqlite3.Connection, messages: Sequence[Message]) -> None:
    """Append in one transaction; offsets are dense per topic, starting at 0."""
    next_offset: dict[str, int] = {}
    now = _now_ms()
    rows = []
    for m in messages:
        if m.topic not in next_offset:
            row = conn.execute(
                'SELECT MAX("offset") FROM bus_messages WHERE topic = ?', (m.topic,)
            ).fetchone()
            next_offset[m.topic] = -1 if row[0] is None else int(row[0])
        next_offset[m.topic] += 1
        rows.append(
            (m.topic, next_offset[m.topic], m.key, m.value, _encode_headers(m.headers), now)
        )
    conn.executemany(
        'INSERT INTO bus_messages (topic, "offset", key, value, headers, timestamp_ms) '
        "VALUES (?, ?, ?, ?, ?, ?)",
        rows,
    )


class EmbeddedBus(EventBus):
    """The bus over the SQLite log at `path` (several processes may open the same file)."""

    def __init__(self, path: Path | str, lease_seconds: float = DEFAULT_LEASE_SECONDS) -> None:
        self.path = Path(path)
        self.lease_seconds = lease_seconds
        self._conn = _Connection(self.path)

    async def start(self) -> None:
        await self._conn.open()

    async def publish(self, messages: Sequence[Message]) -> None:
        if messages:
            await self._conn.run_write(lambda c: _append(c, messages))

    def consumer(self, group: str, topics: Sequence[str]) -> Consumer:
        return EmbeddedConsumer(self.path, group, topics, self.lease_seconds)

    async def close(self) -> None:
        await self._conn.close()


class EmbeddedConsumer(Consumer):
    """A member of `group`; reads each topic only while it holds the group's lease on it."""

    def __init__(self, path: Path, group: str, topics: Sequence[str], lease_seconds: float) -> None:
        self.group = group
        self.topics = list(dict.fromkeys(topics))
        self.member_id = uuid.uuid4().hex
        self._lease_ms = int(lease_seconds * 1000)
        self._conn = _Connection(path)
        # topic -> next offset to fetch; present exactly for the topics whose lease we hold
        self._positions: dict[str, int] = {}
        self._renewed_ms: dict[str, int] = {}
        self._rotation = 0
        self._heartbeat: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._conn.open()
        self._heartbeat = asyncio.create_task(self._renew_forever())

    async def fetch(self, max_records: int = 100, timeout: float = 0.5) -> list[Delivery]:
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            deliveries = await self._conn.run(lambda c: self._fetch_once(c, max_records))
            if deliveries or time.monotonic() >= deadline:
                return deliveries
            await asyncio.sleep(min(POLL_INTERVAL_SECONDS, max(deadline - time.monotonic(), 0)))

    async def commit(self, delivery: Delivery) -> None:
        def commit(conn: sqlite3.Connection) -> None:
            if not self._holds(conn, delivery.topic):
                self._positions.pop(delivery.topic, None)
                raise LeaseLostError(
                    f"group {self.group!r} lost its lease on {delivery.topic!r}; not committed"
                )
            conn.execute(
                "INSERT INTO bus_offsets (grp, topic, partition, committed) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (grp, topic, partition) DO UPDATE SET committed = excluded.committed",
                (self.group, delivery.topic, delivery.partition, delivery.offset + 1),
            )

        await self._conn.run_write(commit)

    async def seek_to_committed(self) -> None:
        def rewind(conn: sqlite3.Connection) -> None:
            for topic in list(self._positions):
                self._positions[topic] = self._committed(conn, topic)

        await self._conn.run(rewind)

    async def lag(self) -> int:
        def lag(conn: sqlite3.Connection) -> int:
            total = 0
            for topic in list(self._positions):
                row = conn.execute(
                    'SELECT MAX("offset") FROM bus_messages WHERE topic = ?', (topic,)
                ).fetchone()
                end = 0 if row[0] is None else int(row[0]) + 1
                total += max(end - self._committed(conn, topic), 0)
            return total

        return await self._conn.run(lag)

    async def stop(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
            self._heartbeat = None

        def release(conn: sqlite3.Connection) -> None:
            conn.execute(
                "DELETE FROM bus_leases WHERE grp = ? AND owner = ?", (self.group, self.member_id)
            )

        with contextlib.suppress(RuntimeError):  # never started, or already stopped
            await self._conn.run_write(release)
        self._positions.clear()
        await self._conn.close()

    # -- inside a worker thread -------------------------------------------------------

    def _fetch_once(self, conn: sqlite3.Connection, max_records: int) -> list[Delivery]:
        """One pass over the topics (starting at a rotating one, so none starves)."""
        self._rotation = (self._rotation + 1) % max(len(self.topics), 1)
        ordered = self.topics[self._rotation :] + self.topics[: self._rotation]
        out: list[Delivery] = []
        for topic in ordered:
            if len(out) >= max_records or not self._claim(conn, topic):
                continue
            rows = conn.execute(
                'SELECT "offset", key, value, headers, timestamp_ms FROM bus_messages '
                'WHERE topic = ? AND "offset" >= ? ORDER BY "offset" LIMIT ?',
                (topic, self._positions[topic], max_records - len(out)),
            ).fetchall()
            for offset, key, value, headers, ts in rows:
                out.append(
                    Delivery(
                        topic, PARTITION, offset, key, bytes(value), _decode_headers(headers), ts
                    )
                )
            if rows:
                self._positions[topic] = int(rows[-1][0]) + 1
        return out

    def _claim(self, conn: sqlite3.Connection, topic: str) -> bool:
        """True if we hold the lease on `topic` (taking it if free or expired).

        A read first, so polling members that do not hold the lease never take the write
        lock; the take itself is a conditional upsert in a write transaction."""
        now = _now_ms()
        if topic in self._positions and now - self._renewed_ms[topic] < self._lease_ms // 3:
            return True
        row = conn.execute(
            "SELECT owner, expires_ms FROM bus_leases WHERE grp = ? AND topic = ?",
            (self.group, topic),
        ).fetchone()
        if row is not None and row[0] != self.member_id and row[1] > now:
            self._positions.pop(topic, None)
            return False
        conn.execute("BEGIN IMMEDIATE")
        try:
            taken = conn.execute(
                "INSERT INTO bus_leases (grp, topic, owner, expires_ms) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (grp, topic) DO UPDATE SET owner = excluded.owner, "
                "expires_ms = excluded.expires_ms "
                "WHERE bus_leases.owner = excluded.owner OR bus_leases.expires_ms <= ?",
                (self.group, topic, self.member_id, now + self._lease_ms, now),
            ).rowcount
            committed = self._committed(conn, topic) if taken else 0
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        if not taken:
            self._positions.pop(topic, None)
            return False
        if topic not in self._positions:  # newly taken: start after the group's commit
            self._positions[topic] = committed
        self._renewed_ms[topic] = now
        return True

    def _holds(self, conn: sqlite3.Connection, topic: str) -> bool:
        row = conn.execute(
            "SELECT owner FROM bus_leases WHERE grp = ? AND topic = ?", (self.group, topic)
        ).fetchone()
        return row is not None and row[0] == self.member_id

    def _committed(self, conn: sqlite3.Connection, topic: str) -> int:
        row = conn.execute(
            "SELECT committed FROM bus_offsets WHERE grp = ? AND topic = ? AND partition = ?",
            (self.group, topic, PARTITION),
        ).fetchone()
        return 0 if row is None else int(row[0])

    async def _renew_forever(self) -> None:
        """Keep our leases alive while the member runs, even if fetch is not called often
        (a slow handler must not let another member take over mid-batch)."""

        def renew(conn: sqlite3.Connection) -> None:
            for topic in list(self._positions):
                self._claim(conn, topic)

        while True:
            await asyncio.sleep(self._lease_ms / 4000)
            try:
                await self._conn.run(renew)
            except sqlite3.Error:  # e.g. disk full: fetch() retries the claim and raises
                log.warning("bus lease renewal failed for group %s", self.group, exc_info=True)
