"""The embedded event bus: a durable log in one SQLite file shared by the local processes.

Why SQLite: the embedded profile runs the twelve services as separate processes on one
machine with nothing installed, and they need the same semantics the code relies on with
Kafka. One WAL-mode file gives atomic, durable appends (`synchronous=FULL`: `publish`
returns after the commit reached the disk), readers that never block the writer, and a
place to keep the consumer groups' committed offsets next to the log.

Model (Kafka's, simplified):
- A topic is created on first use with a fixed number of partitions (`bus_topics`; the
  first creator's count wins). A message goes to partition `crc32(key) % partitions`, and
  offsets are dense per partition, so the messages of one key keep their publish order.
- A group's committed offset is per partition: committing delivery N commits everything up
  to N in that partition. A member that takes a partition starts at the committed offset, so
  what a previous member fetched but did not commit is delivered again.
- Group membership: each member keeps a row in `bus_members` alive by a heartbeat (expiry =
  `lease_seconds`). Partitions of a topic are dealt round-robin over the live members that
  subscribe to it (sorted by id), and a member reads a partition only while it holds its
  lease row in `bus_leases` (renewed by the same heartbeat), so no partition is ever read by
  two members at once. A member gives back partitions that are no longer its own only inside
  `fetch` (between batches, like Kafka's rebalance inside poll), so a normal rebalance never
  fails a commit. `stop` deletes the member's rows: the others take over at once. A crashed
  member's rows expire after `lease_seconds`, and then the others take over.
- Retention (Kafka's `retention.ms`, default 7 days): messages older than `retention_seconds`
  are deleted, checked when the bus starts and then at most every `TRIM_EVERY_SECONDS` on
  publish. The newest message of each partition is always kept, because it carries the
  partition's end offset (offsets are never reused). A group whose committed offset points
  into the deleted range resumes at the oldest message kept (Kafka's `earliest` reset).
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
import weakref
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from emporium.chassis.bus.base import (
    Consumer,
    Delivery,
    EventBus,
    Headers,
    Message,
    PartitionRevokedError,
)

T = TypeVar("T")
TopicPartition = tuple[str, int]
log = logging.getLogger(__name__)

DEFAULT_PARTITIONS = 3
POLL_INTERVAL_SECONDS = 0.025  # between checks of a file another process is creating
# A consumer checks the log again after MIN_POLL_SECONDS, doubling the pause while it finds
# nothing, up to IDLE_POLL_SECONDS: a busy consumer reacts in milliseconds, and an idle
# platform does not spend a tenth of a core asking a dozen logs "anything new?".
MIN_POLL_SECONDS = 0.01
IDLE_POLL_SECONDS = 0.1
BUSY_TIMEOUT_MS = 30_000
DEFAULT_LEASE_SECONDS = 10.0
DEFAULT_RETENTION_SECONDS = 7 * 24 * 3600.0
TRIM_EVERY_SECONDS = 3600.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS bus_topics (
    topic TEXT PRIMARY KEY,
    partitions INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS bus_messages (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    "offset" INTEGER NOT NULL,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    headers TEXT NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    PRIMARY KEY (topic, partition, "offset")
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS bus_offsets (
    grp TEXT NOT NULL,
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    committed INTEGER NOT NULL,
    PRIMARY KEY (grp, topic, partition)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS bus_members (
    grp TEXT NOT NULL,
    member TEXT NOT NULL,
    topics TEXT NOT NULL,
    expires_ms INTEGER NOT NULL,
    PRIMARY KEY (grp, member)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS bus_leases (
    grp TEXT NOT NULL,
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    owner TEXT NOT NULL,
    expires_ms INTEGER NOT NULL,
    PRIMARY KEY (grp, topic, partition)
) WITHOUT ROWID;
"""


class LeaseLostError(PartitionRevokedError):
    """A member committed on a partition whose lease another member of its group now holds
    (it stalled past the lease); like Kafka's CommitFailedError after a rebalance."""


def partition_for(key: str, partitions: int) -> int:
    """Stable across processes and runs (unlike `hash()`), so one key keeps one partition."""
    return zlib.crc32(key.encode("utf-8")) % partitions


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


def _check_layout(conn: sqlite3.Connection) -> None:
    columns = {row[1] for row in conn.execute("PRAGMA table_info(bus_messages)")}
    if "partition" not in columns:
        raise RuntimeError(
            "the embedded bus file predates partitioned topics; stop the platform and "
            "delete it (it is a local development log)"
        )


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
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            _enable_wal(conn)
            conn.execute("PRAGMA synchronous = FULL")
            conn.executescript(_SCHEMA)  # each statement autocommits; IF NOT EXISTS: race-safe
            _check_layout(conn)
        except BaseException:
            conn.close()
            raise
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
        return self.read(lambda conn: _in_transaction(conn, fn))

    async def close(self) -> None:
        def close() -> None:
            with self._lock:
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None

        await asyncio.to_thread(close)


def _in_transaction(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = fn(conn)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result


def _partitions(conn: sqlite3.Connection, topic: str, default: int) -> int:
    """The topic's partition count, creating the topic with `default` if it is new.

    Call inside a write transaction (the insert must not race another creator's)."""
    conn.execute(
        "INSERT INTO bus_topics (topic, partitions) VALUES (?, ?) ON CONFLICT (topic) DO NOTHING",
        (topic, default),
    )
    row = conn.execute("SELECT partitions FROM bus_topics WHERE topic = ?", (topic,)).fetchone()
    return int(row[0])


def _end_offset(conn: sqlite3.Connection, topic: str, partition: int) -> int:
    row = conn.execute(
        'SELECT MAX("offset") FROM bus_messages WHERE topic = ? AND partition = ?',
        (topic, partition),
    ).fetchone()
    return 0 if row[0] is None else int(row[0]) + 1


def _append(conn: sqlite3.Connection, messages: Sequence[Message], default_partitions: int) -> None:
    """Append in one (write) transaction; offsets are dense per partition, from 0."""
    partitions: dict[str, int] = {}
    next_offset: dict[TopicPartition, int] = {}
    now = _now_ms()
    rows = []
    for m in messages:
        if m.topic not in partitions:
            partitions[m.topic] = _partitions(conn, m.topic, default_partitions)
        tp = (m.topic, partition_for(m.key, partitions[m.topic]))
        if tp not in next_offset:
            next_offset[tp] = _end_offset(conn, *tp)
        rows.append((*tp, next_offset[tp], m.key, m.value, _encode_headers(m.headers), now))
        next_offset[tp] += 1
    conn.executemany(
        'INSERT INTO bus_messages (topic, partition, "offset", key, value, headers, '
        "timestamp_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
        rows,
    )


def _trim(conn: sqlite3.Connection, older_than_ms: int) -> int:
    """Delete the messages older than `older_than_ms`, except each partition's newest;
    returns how many went. One partition at a time, by primary-key range."""
    deleted = 0
    partitions = conn.execute(
        'SELECT topic, partition, MAX("offset") FROM bus_messages GROUP BY topic, partition'
    ).fetchall()
    for topic, partition, newest in partitions:
        row = conn.execute(
            'SELECT MIN("offset") FROM bus_messages WHERE topic = ? AND partition = ? '
            "AND timestamp_ms >= ?",
            (topic, partition, older_than_ms),
        ).fetchone()
        keep_from = min(int(newest), int(row[0]) if row[0] is not None else int(newest))
        deleted += conn.execute(
            'DELETE FROM bus_messages WHERE topic = ? AND partition = ? AND "offset" < ?',
            (topic, partition, keep_from),
        ).rowcount
    return deleted


class EmbeddedBus(EventBus):
    """The bus over the SQLite log at `path` (several processes may open the same file).

    `partitions` applies to the topics this bus creates; `lease_seconds` is how long a
    crashed consumer's partitions stay blocked before another member takes them;
    `retention_seconds` is how long a message is kept (see the module doc)."""

    def __init__(
        self,
        path: Path | str,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        *,
        partitions: int = DEFAULT_PARTITIONS,
        retention_seconds: float = DEFAULT_RETENTION_SECONDS,
    ) -> None:
        if partitions < 1:
            raise ValueError("an embedded bus topic needs at least one partition")
        if retention_seconds <= 0:
            raise ValueError("an embedded bus needs a positive retention")
        self.path = Path(path)
        self.lease_seconds = lease_seconds
        self.partitions = partitions
        self.retention_seconds = retention_seconds
        self._conn = _Connection(self.path)
        self._consumers: weakref.WeakSet[EmbeddedConsumer] = weakref.WeakSet()
        self._next_trim = 0.0

    async def start(self) -> None:
        await self._conn.open()
        await self.trim()

    async def publish(self, messages: Sequence[Message]) -> None:
        if messages:
            await self._conn.run_write(lambda c: _append(c, messages, self.partitions))
            if time.monotonic() >= self._next_trim:
                await self.trim()

    async def trim(self) -> int:
        """Apply the retention now; returns how many messages were deleted."""
        self._next_trim = time.monotonic() + TRIM_EVERY_SECONDS
        cutoff = _now_ms() - int(self.retention_seconds * 1000)
        deleted = await self._conn.run_write(lambda c: _trim(c, cutoff))
        if deleted:
            log.info("event log retention", extra={"deleted": deleted, "path": str(self.path)})
        return deleted

    def consumer(self, group: str, topics: Sequence[str]) -> Consumer:
        consumer = EmbeddedConsumer(self.path, group, topics, self.lease_seconds, self.partitions)
        self._consumers.add(consumer)
        return consumer

    async def close(self) -> None:
        """Stop the consumers still running (giving back their partitions), then close."""
        for consumer in list(self._consumers):
            await consumer.stop()
        await self._conn.close()


class EmbeddedConsumer(Consumer):
    """A member of `group`; reads the partitions it holds a lease on (see the module doc)."""

    def __init__(
        self,
        path: Path,
        group: str,
        topics: Sequence[str],
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        default_partitions: int = DEFAULT_PARTITIONS,
    ) -> None:
        self.group = group
        self.topics = list(dict.fromkeys(topics))
        self.member_id = uuid.uuid4().hex
        self._lease_ms = int(lease_seconds * 1000)
        self._default_partitions = default_partitions
        self._conn = _Connection(path)
        # partition -> next offset to fetch; present exactly for the partitions we hold
        self._positions: dict[TopicPartition, int] = {}
        self._wanted: set[TopicPartition] = set()  # our share at the last sync
        self._members_seen: tuple[str, ...] = ()
        self._synced_ms = 0
        self._rotation = 0
        self._pause = MIN_POLL_SECONDS
        self._heartbeat: asyncio.Task[None] | None = None

    def assignment(self) -> set[TopicPartition]:
        """The partitions this member reads now (for tests and diagnostics)."""
        return set(self._positions)

    async def start(self) -> None:
        await self._conn.open()
        await self._conn.run_write(lambda c: self._sync(c, release=True))
        self._heartbeat = asyncio.create_task(self._heartbeat_forever())

    async def fetch(self, max_records: int = 100, timeout: float = 0.5) -> list[Delivery]:
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            deliveries = await self._conn.run(lambda c: self._fetch_once(c, max_records))
            if deliveries:
                self._pause = MIN_POLL_SECONDS
                return deliveries
            if time.monotonic() >= deadline:
                return deliveries
            await asyncio.sleep(min(self._pause, max(deadline - time.monotonic(), 0)))
            self._pause = min(self._pause * 2, IDLE_POLL_SECONDS)

    async def commit(self, delivery: Delivery) -> None:
        tp = (delivery.topic, delivery.partition)

        def commit(conn: sqlite3.Connection) -> None:
            row = conn.execute(
                "SELECT owner FROM bus_leases WHERE grp = ? AND topic = ? AND partition = ?",
                (self.group, *tp),
            ).fetchone()
            if row is None or row[0] != self.member_id:
                self._positions.pop(tp, None)
                raise LeaseLostError(
                    f"group {self.group!r} no longer holds {tp[0]!r}[{tp[1]}]; not committed"
                )
            conn.execute(
                "INSERT INTO bus_offsets (grp, topic, partition, committed) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (grp, topic, partition) DO UPDATE SET committed = excluded.committed",
                (self.group, *tp, delivery.offset + 1),
            )

        await self._conn.run_write(commit)

    async def seek_to_committed(self) -> None:
        def rewind(conn: sqlite3.Connection) -> None:
            for tp in list(self._positions):
                self._positions[tp] = self._committed(conn, tp)

        await self._conn.run(rewind)

    async def lag(self) -> int:
        def lag(conn: sqlite3.Connection) -> int:
            return sum(
                max(_end_offset(conn, *tp) - self._committed(conn, tp), 0)
                for tp in list(self._positions)
            )

        return await self._conn.run(lag)

    async def stop(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
            self._heartbeat = None

        def leave(conn: sqlite3.Connection) -> None:
            args = (self.group, self.member_id)
            conn.execute("DELETE FROM bus_leases WHERE grp = ? AND owner = ?", args)
            conn.execute("DELETE FROM bus_members WHERE grp = ? AND member = ?", args)

        with contextlib.suppress(RuntimeError):  # never started, or already stopped
            await self._conn.run_write(leave)
        self._positions.clear()
        await self._conn.close()

    # -- inside a worker thread -------------------------------------------------------

    def _fetch_once(self, conn: sqlite3.Connection, max_records: int) -> list[Delivery]:
        """Rebalance if needed, then one pass over our partitions (from a rotating start,
        so none starves)."""
        if self._needs_sync(conn):
            _in_transaction(conn, lambda c: self._sync(c, release=True))
        held = sorted(self._positions)
        if not held:
            return []
        self._rotation = (self._rotation + 1) % len(held)
        out: list[Delivery] = []
        for tp in held[self._rotation :] + held[: self._rotation]:
            if len(out) >= max_records:
                break
            rows = conn.execute(
                'SELECT "offset", key, value, headers, timestamp_ms FROM bus_messages '
                'WHERE topic = ? AND partition = ? AND "offset" >= ? ORDER BY "offset" LIMIT ?',
                (*tp, self._positions[tp], max_records - len(out)),
            ).fetchall()
            out += [
                Delivery(tp[0], tp[1], offset, key, bytes(value), _decode_headers(headers), ts)
                for offset, key, value, headers, ts in rows
            ]
            if rows:
                self._positions[tp] = int(rows[-1][0]) + 1
        return out

    def _needs_sync(self, conn: sqlite3.Connection) -> bool:
        """Read-only check, so idle members do not take the write lock at every poll: our
        heartbeat is due, the live members changed, a partition of ours must be given back,
        or a partition we want has become free."""
        now = _now_ms()
        if now - self._synced_ms >= self._lease_ms // 3 or set(self._positions) - self._wanted:
            return True
        live = tuple(
            r[0]
            for r in conn.execute(
                "SELECT member FROM bus_members WHERE grp = ? AND expires_ms > ? ORDER BY member",
                (self.group, now),
            )
        )
        if live != self._members_seen:
            return True
        for topic, partition in self._wanted - set(self._positions):
            row = conn.execute(
                "SELECT expires_ms FROM bus_leases WHERE grp = ? AND topic = ? AND partition = ?",
                (self.group, topic, partition),
            ).fetchone()
            if row is None or row[0] <= now:
                return True
        return False

    def _sync(self, conn: sqlite3.Connection, *, release: bool) -> None:
        """Heartbeat and rebalance, inside a write transaction: renew our member row, work
        out our share of every subscribed topic, give back what is no longer ours (only when
        `release`, i.e. from `fetch`), and take or renew the leases of our share."""
        now = _now_ms()
        conn.execute(
            "INSERT INTO bus_members (grp, member, topics, expires_ms) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (grp, member) DO UPDATE SET expires_ms = excluded.expires_ms",
            (self.group, self.member_id, json.dumps(self.topics), now + self._lease_ms),
        )
        conn.execute("DELETE FROM bus_members WHERE grp = ? AND expires_ms <= ?", (self.group, now))
        members = conn.execute(
            "SELECT member, topics FROM bus_members WHERE grp = ? ORDER BY member", (self.group,)
        ).fetchall()
        wanted: set[TopicPartition] = set()
        for topic in self.topics:
            count = _partitions(conn, topic, self._default_partitions)
            subscribers = [m for m, topics in members if topic in json.loads(topics)]
            me = subscribers.index(self.member_id)
            wanted |= {(topic, p) for p in range(count) if p % len(subscribers) == me}
        for tp in set(self._positions) - wanted:
            if release:
                conn.execute(
                    "DELETE FROM bus_leases WHERE grp = ? AND topic = ? AND partition = ? "
                    "AND owner = ?",
                    (self.group, *tp, self.member_id),
                )
                del self._positions[tp]
        for tp in wanted | set(self._positions):
            self._take(conn, tp, now)
        self._wanted = wanted
        self._members_seen = tuple(m for m, _ in members)
        self._synced_ms = now

    def _take(self, conn: sqlite3.Connection, tp: TopicPartition, now: int) -> None:
        """Take or renew the lease of `tp` if it is free, expired or already ours."""
        taken = conn.execute(
            "INSERT INTO bus_leases (grp, topic, partition, owner, expires_ms) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (grp, topic, partition) DO UPDATE SET "
            "owner = excluded.owner, expires_ms = excluded.expires_ms "
            "WHERE bus_leases.owner = excluded.owner OR bus_leases.expires_ms <= ?",
            (self.group, *tp, self.member_id, now + self._lease_ms, now),
        ).rowcount
        if not taken:
            self._positions.pop(tp, None)
        elif tp not in self._positions:  # newly taken: start after the group's commit
            self._positions[tp] = self._committed(conn, tp)

    def _committed(self, conn: sqlite3.Connection, tp: TopicPartition) -> int:
        row = conn.execute(
            "SELECT committed FROM bus_offsets WHERE grp = ? AND topic = ? AND partition = ?",
            (self.group, *tp),
        ).fetchone()
        return 0 if row is None else int(row[0])

    async def _heartbeat_forever(self) -> None:
        """Keep our member row and leases alive while the member runs, even if fetch is not
        called often (a slow handler must not let another member take over mid-batch)."""
        while True:
            await asyncio.sleep(self._lease_ms / 4000)
            try:
                await self._conn.run_write(lambda c: self._sync(c, release=False))
            except sqlite3.Error:  # e.g. disk full: fetch() retries the sync and raises
                log.warning("bus heartbeat failed for group %s", self.group, exc_info=True)
