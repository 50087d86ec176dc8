"""The append-only file behind a durable in-process kv store (`memory:///path/store.aof`).

Why: the embedded profile keeps sessions, refresh tokens, revocations and recommendation's
feature store in the in-process kv; without a file a restart (or a `kill -9`) loses them, and
recommendation's features cannot be rebuilt because their events' offsets are already
committed. This is Redis's AOF, scaled down:

- One JSON line per change that happened (the store decides what a record says; this module
  only needs a dict with an `op`). Each line goes to the OS with one `write` before the
  operation returns, so a killed process loses nothing that returned.
- `appendfsync everysec`: a background thread fsyncs at most once a second when something was
  written, and `close()` fsyncs. A crash of the *machine* (power loss) can cost up to about a
  second of writes; fsync per write would make every kv write wait for the disk.
- Replay on open; a torn final line (a crash mid-write: no newline, or not JSON) is ignored,
  logged and truncated off. A bad line anywhere else is corruption: opening fails loudly
  rather than silently dropping data.
- Compaction: once the file holds more than twice the records a snapshot of the live keys
  would need (and at least `min_records`), it is rewritten as that snapshot into a temporary
  file in the same directory, fsynced and swapped in with `os.replace`, so a crash at any
  moment leaves either the old or the new file, both complete.
- One process per file: an exclusive non-blocking `flock`; a second opener gets
  `AppendLogLockedError` naming the path (two writers would interleave and corrupt it).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

Record = dict[str, Any]

log = logging.getLogger(__name__)

FSYNC_EVERY_SECONDS = 1.0
COMPACT_MIN_RECORDS = 10_000


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


class AppendLog:
    """One append-only file, opened (locked and replayed) by `open` and released by `close`."""

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
        self._syncer = threading.Thread(
            target=self._sync_loop, name=f"kv-aof-fsync:{self.path.name}", daemon=True
        )
        self._syncer.start()

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

    def append(self, record: Record) -> None:
        """Hand one record to the OS (one `write`); durable against a process kill when this
        returns, against a machine crash after the next background fsync."""
        self._write_all(self._require_fd(), _line(record))
        self._dirty = True
        self._records += 1

    def needs_compaction(self, live_keys: int) -> bool:
        """Whether the file has grown past twice what a snapshot of `live_keys` would need."""
        return self._records >= self._next_compaction and self._records > 2 * live_keys

    def compact(self, snapshot: Iterable[Record]) -> None:
        """Replace the file by `snapshot` (one record per live key), atomically.

        Runs synchronously inside the kv operation that triggered it, so no write can slip
        between taking the snapshot and swapping the file. A failure leaves the old file in
        place (and is logged): the data is still all there, only bigger.
        """
        fd = self._require_fd()
        tmp_fd, tmp_name = tempfile.mkstemp(
            dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".rewrite"
        )
        try:
            fcntl.flock(tmp_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held before it gets the name
            count = self._write_snapshot(tmp_fd, snapshot)
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
        self._records = count
        self._next_compaction = max(self._min_records, 2 * count)
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
        """Stop the fsync thread, fsync and release the file (and its lock)."""
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
