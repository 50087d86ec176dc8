"""The append-only file behind a durable in-process kv store (`memory:///path/store.aof`).

Why: the embedded profile keeps sessions, refresh tokens, revocations and recommendation's
feature store in the in-process kv; without a file a restart (or a `kill -9`) loses them, and
recommendation's features cannot be rebuilt because their events' offsets are already
committed. This is Redis's AOF, scaled down:

- One JSON line per change that happened (the store decides what a record says; this module
  only needs a dict with an `op`). `append` encodes the line and queues it; a writer thread
  hands whatever is queued to the OS in one `write` (group commit), so a slow disk never
  stalls the event loop, and the store awaits `flushed(ticket)` before its operation
  returns: a killed process loses nothing that returned.
- `appendfsync everysec`: a background thread fsyncs at most once a second when something was
  written, and `close()` fsyncs. A crash of the *machine* (power loss) can cost up to about a
  second of writes; fsync per write would make every kv write wait for the disk.
- Replay on open; a torn final line (a crash mid-write: no newline, or not JSON) is ignored,
  logged and truncated off. A bad line anywhere else is corruption: opening fails loudly
  rather than silently dropping data.
- Compaction: once the file holds more than twice the records a snapshot of the live keys
  would need (and at least `min_records`), it is rewritten as that snapshot into a temporary
  file in the same directory, fsynced and swapped in with `os.replace`, so a crash at any
  moment leaves either the old or the new file, both complete. The snapshot is taken on the
  caller's side at the point it is queued; the writer thread writes it in queue order
  (everything queued before goes to the old file first), so nothing slips in between.
- One process per file: an exclusive non-blocking `flock`; a second opener gets
  `AppendLogLockedError` naming the path (two writers would interleave and corrupt it).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fcntl
import json
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Record = dict[str, Any]

log = logging.getLogger(__name__)

FSYNC_EVERY_SECONDS = 1.0
COMPACT_MIN_RECORDS = 10_000
MAX_FAILURES_KEPT = 10_000  # failed tickets remembered for the operations still to ask


class AppendLogLockedError(RuntimeError):
    """The file is already open in another store (this or another process): a configuration
    error, each service process needs its own kv file."""


class AppendLogCorruptError(RuntimeError):
    """A line before the last one cannot be read: refuse to start rather than lose data."""


def encode_bytes(value: bytes) -> str:
    """`value` as a JSON-safe str, losslessly: UTF-8 stays readable, other bytes become lone
    surrogates (`surrogateescape`), which JSON writes as `\\udcXX` escapes."""
    return value.decode("utf-8", "surrogateescape")


def decode_bytes(text: str) -> bytes:
    """The inverse of `encode_bytes`."""
    return text.encode("utf-8", "surrogateescape")


@dataclass(frozen=True)
class _Compaction:
    """A queued rewrite of the file as `snapshot` (one record per live key)."""

    snapshot: list[Record]


class AppendLog:
    """One append-only file, opened (locked and replayed) by `open` and released by `close`.

    `append` and `compact` may be called from the event loop: they only queue; the writer
    thread does the I/O in queue order, and `flushed(ticket)` waits for it."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        min_records: int = COMPACT_MIN_RECORDS,
        fsync_every: float = FSYNC_EVERY_SECONDS,
    ) -> None:
        self.path = Path(path)
        self._min_records = min_records
        self._fsync_every = fsync_every
        self._fd: int | None = None
        self._records = 0  # lines in the file, to decide when to compact
        self._next_compaction = min_records
        self._dirty = False
        self._fd_lock = threading.Lock()  # the fsync thread vs closing/swapping the fd
        self._stop = threading.Event()
        self._syncer: threading.Thread | None = None
        # The queue to the writer thread, guarded by `_queue_changed`'s lock: lines (bytes)
        # and compactions, each with the ticket it was given; `_written` is the last ticket
        # the writer finished, `_waiters` the futures of `flushed` calls not yet satisfied.
        self._queue_changed = threading.Condition()
        self._queue: collections.deque[tuple[int, bytes | _Compaction]] = collections.deque()
        self._queued = 0
        self._written = 0
        self._failed: dict[int, OSError] = {}  # ticket -> why its write failed (recent ones)
        self._waiters: list[tuple[int, asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._closing = False
        self._writer: threading.Thread | None = None

    # -- open / replay -----------------------------------------------------------------------

    def open(self, apply: Callable[[Record], None]) -> None:
        """Lock the file (creating it and its directory), feed every record to `apply` in
        order, and start the background fsync."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = _open_locked(self.path)
        self._records = 0
        self._remove_stale_rewrites()
        try:
            self._replay(apply)
        except BaseException:
            os.close(self._fd)
            self._fd = None
            raise
        self._next_compaction = max(self._min_records, 2 * self._records)
        self._closing = False
        self._syncer = threading.Thread(
            target=self._sync_loop, name=f"kv-aof-fsync:{self.path.name}", daemon=True
        )
        self._syncer.start()
        self._writer = threading.Thread(
            target=self._write_loop, name=f"kv-aof-writer:{self.path.name}", daemon=True
        )
        self._writer.start()

    def _remove_stale_rewrites(self) -> None:
        """Delete temporary files of a compaction that a crash interrupted: with the lock held,
        no other compaction of this file can be running."""
        for stale in self.path.parent.glob(f".{self.path.name}.*.rewrite"):
            with contextlib.suppress(OSError):
                stale.unlink()

    def _replay(self, apply: Callable[[Record], None]) -> None:
        assert self._fd is not None
        good_end = 0
        with open(self.path, "rb") as reader:
            for number, line in enumerate(reader, start=1):
                record = _parse(line)
                if record is None or not line.endswith(b"\n"):
                    if reader.read(1):
                        raise AppendLogCorruptError(
                            f"kv append-only file {self.path}: line {number} is unreadable "
                            f"and is not the last one; fix or move the file away"
                        )
                    log.warning(
                        "kv append-only file %s: ignoring a torn last line %d (%d bytes), "
                        "left by a crash mid-write; truncating it",
                        self.path,
                        number,
                        len(line),
                    )
                    os.ftruncate(self._fd, good_end)
                    break
                try:
                    apply(record)
                except (KeyError, TypeError, ValueError) as exc:
                    raise AppendLogCorruptError(
                        f"kv append-only file {self.path}: line {number} is no valid record "
                        f"({exc!r})"
                    ) from exc
                good_end += len(line)
                self._records += 1

    # -- append ------------------------------------------------------------------------------

    def append(self, record: Record) -> int:
        """Queue one record for the file; returns its ticket for `flushed`. Durable against a
        process kill once flushed, against a machine crash after the next background fsync."""
        self._require_fd()
        self._records += 1
        return self._enqueue(_line(record))

    def needs_compaction(self, live_keys: int) -> bool:
        """Whether the file has grown past twice what a snapshot of `live_keys` would need."""
        return self._records >= self._next_compaction and self._records > 2 * live_keys

    def compact(self, snapshot: Iterable[Record]) -> int:
        """Queue the replacement of the file by `snapshot` (one record per live key), to be
        swapped in atomically after everything queued before it; returns its ticket.

        A failure leaves the old file in place (and is logged): the data is still all there,
        only bigger, and later records keep going to it."""
        self._require_fd()
        records = list(snapshot)
        self._records = len(records)
        self._next_compaction = max(self._min_records, 2 * len(records))
        return self._enqueue(_Compaction(records))

    def mark(self) -> int:
        """The last ticket queued so far (an operation passes it to `flushed` later)."""
        return self._queued

    async def flushed(self, since: int = 0) -> None:
        """Return once everything queued so far has been handed to the OS; raise the OSError
        of a failed write of a record queued after ticket `since` (the caller's own)."""
        upto = self._queued
        if self._written < upto:
            loop = asyncio.get_running_loop()
            future: asyncio.Future[None] = loop.create_future()
            with self._queue_changed:
                if self._written < upto:
                    self._waiters.append((upto, loop, future))
                else:
                    future.set_result(None)
            await future
        if self._failed:
            with self._queue_changed:
                error = next((e for t, e in self._failed.items() if since < t <= upto), None)
            if error is not None:
                raise error

    def _enqueue(self, item: bytes | _Compaction) -> int:
        with self._queue_changed:
            self._queued += 1
            self._queue.append((self._queued, item))
            self._queue_changed.notify()
            return self._queued

    # -- the writer thread -------------------------------------------------------------------

    def _write_loop(self) -> None:
        while True:
            with self._queue_changed:
                while not self._queue and not self._closing:
                    self._queue_changed.wait()
                if not self._queue:
                    return  # closing and drained
                items = list(self._queue)
                self._queue.clear()
            try:
                self._write_items(items)
            except Exception as exc:  # never let the writer die: waiters would hang
                log.exception("kv append-only file %s: writer failed", self.path)
                self._record_failure([t for t, _ in items], OSError(f"kv writer failed: {exc}"))
            self._finish(items[-1][0])

    def _write_items(self, items: list[tuple[int, bytes | _Compaction]]) -> None:
        """Write queued lines in one `write` per run of lines, compactions in between."""
        lines: list[tuple[int, bytes]] = []
        for ticket, item in items:
            if isinstance(item, bytes):
                lines.append((ticket, item))
                continue
            self._write_lines(lines)
            lines = []
            self._rewrite(item.snapshot)
        self._write_lines(lines)

    def _write_lines(self, lines: list[tuple[int, bytes]]) -> None:
        if not lines:
            return
        fd = self._require_fd()
        size = os.fstat(fd).st_size
        try:
            self._write_all(fd, b"".join(line for _, line in lines))
        except OSError as exc:
            log.error("kv append-only file %s: write failed", self.path, exc_info=True)
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)  # no half line left for the next write to follow
            self._record_failure([ticket for ticket, _ in lines], exc)
            return
        self._dirty = True

    def _record_failure(self, tickets: list[int], error: OSError) -> None:
        with self._queue_changed:
            for ticket in tickets:
                self._failed[ticket] = error
            while len(self._failed) > MAX_FAILURES_KEPT:  # oldest first: insertion order
                del self._failed[next(iter(self._failed))]

    def _finish(self, ticket: int) -> None:
        """Mark everything up to `ticket` done and wake the `flushed` calls waiting for it."""
        with self._queue_changed:
            self._written = ticket
            ready = [w for w in self._waiters if w[0] <= ticket]
            self._waiters = [w for w in self._waiters if w[0] > ticket]
        for _, loop, future in ready:
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits
                loop.call_soon_threadsafe(_resolve, future)

    def _rewrite(self, snapshot: list[Record]) -> None:
        """Write `snapshot` to a temporary file and swap it in for the file (writer thread)."""
        fd = self._require_fd()
        tmp_fd, tmp_name = tempfile.mkstemp(
            dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".rewrite"
        )
        try:
            fcntl.flock(tmp_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held before it gets the name
            self._write_snapshot(tmp_fd, snapshot)
            os.fsync(tmp_fd)
            fcntl.fcntl(tmp_fd, fcntl.F_SETFL, fcntl.fcntl(tmp_fd, fcntl.F_GETFL) | os.O_APPEND)
            with self._fd_lock:
                os.replace(tmp_name, self.path)
                self._fd = tmp_fd
        except OSError:
            log.warning("kv append-only file %s: compaction failed", self.path, exc_info=True)
            os.close(tmp_fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
            self._next_compaction = 2 * self._records  # try again once it doubled once more
            return
        os.close(fd)  # releases the old inode's lock; the new file's is already held
        try:
            _fsync_directory(self.path.parent)
        except OSError:
            log.warning("kv append-only file %s: fsync of its directory failed", self.path)

    def _write_snapshot(self, fd: int, snapshot: Iterable[Record]) -> int:
        count, chunk = 0, bytearray()
        for record in snapshot:
            chunk += _line(record)
            count += 1
            if len(chunk) >= 1 << 20:
                self._write_all(fd, bytes(chunk))
                chunk.clear()
        self._write_all(fd, bytes(chunk))
        return count

    # -- fsync / close -----------------------------------------------------------------------

    def _sync_loop(self) -> None:
        while not self._stop.wait(self._fsync_every):
            try:
                self._sync()
            except OSError:
                log.warning("kv append-only file %s: fsync failed", self.path, exc_info=True)

    def _sync(self) -> None:
        with self._fd_lock:
            if self._dirty and self._fd is not None:
                self._dirty = False  # cleared before the fsync: a later write re-marks it
                os.fsync(self._fd)

    def close(self) -> None:
        """Write what is still queued, stop the threads, fsync and release the file (and its
        lock). Blocking: from the event loop, call it through `asyncio.to_thread`."""
        with self._queue_changed:
            self._closing = True
            self._queue_changed.notify()
        if self._writer is not None:
            self._writer.join()
            self._writer = None
        self._stop.set()
        if self._syncer is not None:
            self._syncer.join()
            self._syncer = None
        with self._fd_lock:
            if self._fd is not None:
                fd, self._fd = self._fd, None
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)

    def _require_fd(self) -> int:
        if self._fd is None:
            raise RuntimeError(f"kv append-only file {self.path} is not open")
        return self._fd

    @staticmethod
    def _write_all(fd: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]


def _open_locked(path: Path) -> int:
    """An append-mode fd on `path` holding its exclusive lock.

    Checks after locking that `path` still names the locked file: a compaction in another
    process may have swapped the file in between, and a lock on the old inode guards nothing.
    """
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise AppendLogLockedError(
                f"kv append-only file {path} is already in use by another kv store (another "
                f"process, or another store in this one); each service process needs its own "
                f"file: check the service's KV_URL"
            ) from None
        try:
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _parse(line: bytes) -> Record | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) and "op" in record else None


def _line(record: Record) -> bytes:
    return json.dumps(record, separators=(",", ":")).encode("ascii") + b"\n"


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (POSIX needs the directory fsynced for that)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
