"""An in-process key/value store with TTLs: the embedded profile's kv (`memory://...`).

`memory://` is like Redis without persistence: everything is lost when the process stops
(tests use it). `memory:///path/store.aof` is like Redis with an append-only file, and is the
embedded profile's default, because what the kv holds must survive a restart or a `kill -9`:
auth's sessions and revocations, recommendation's features (whose events are already
consumed). Every change queues one record for the file, and the operation returns only once
the file's writer thread has handed it to the OS, so a kill loses nothing that returned while
the event loop never waits on the disk (other coroutines run meanwhile). Reads wait the same
way for what is already queued, so no answer rests on a change the file does not have yet.
The file is replayed on first use; see `appendlog` for fsync, torn lines, compaction and the
lock.
Records describe the effect (`put` a whole entry, `hset` fields to values, a zset member's new
score, `del` keys), so replaying one twice does no harm; expiries are written as absolute
wall-clock times, as the store itself runs on a monotonic clock. A key dropped because it
expired is logged as a `del` (as Redis does), so the file always mirrors memory.

The data lives in this store object only, so two `open_kv("memory://", ...)` calls are two
separate stores; the embedded profile runs one process per service, each with its own (and
its own file: a second store on one file is refused).

Expired keys are dropped lazily, when an operation touches them, and by a sweep every
`SWEEP_EVERY` writes, so keys written once and never read again do not pile up. No operation
awaits while it touches the data (the wait for the file comes after), so each runs atomically
with respect to other coroutines on the event loop (e.g. two `set_if_absent` on one key:
exactly one wins).
"""

from __future__ import annotations

import asyncio
import builtins
import functools
import os
import re
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Concatenate, Literal, ParamSpec, TypeVar

from emporium.chassis.kv.appendlog import (
    COMPACT_MIN_RECORDS,
    AppendLog,
    Record,
    decode_bytes,
    encode_bytes,
)
from emporium.chassis.kv.base import KeyValueStore, KVTypeError, Value, to_bytes

SWEEP_EVERY = 1024
P = ParamSpec("P")
T = TypeVar("T")
Kind = Literal["string", "hash", "set", "zset"]
_INTEGER = re.compile(rb"^-?(0|[1-9][0-9]*)$")
_INT64 = (-(2**63), 2**63 - 1)


@dataclass
class _Entry:
    kind: Kind
    value: bytes | dict[str, bytes] | set[str] | dict[str, float]
    expires_at: float | None = None


def _durable(
    method: Callable[Concatenate[MemoryKeyValueStore, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[MemoryKeyValueStore, P], Coroutine[Any, Any, T]]:
    """Run an operation (atomically: it never awaits inside), then wait until the file has
    every record queued up to now, raising if one of the operation's own failed."""

    @functools.wraps(method)
    async def operation(store: MemoryKeyValueStore, /, *args: P.args, **kwargs: P.kwargs) -> T:
        aof = store._aof
        mark = aof.mark() if aof is not None else 0
        result = await method(store, *args, **kwargs)
        if aof is not None and store._state == "open":
            await aof.flushed(since=mark)
        return result

    return operation


class MemoryKeyValueStore(KeyValueStore):
    """A kv store held in a dict, durable when given a `path` (its append-only file, opened
    on first use); `clock` (monotonic, for TTLs) and `wall_clock` (the UNIX time expiries are
    written in) are injectable for unit tests of expiry."""

    def __init__(
        self,
        namespace: str = "",
        clock: Callable[[], float] = time.monotonic,
        *,
        path: str | os.PathLike[str] | None = None,
        compact_min_records: int = COMPACT_MIN_RECORDS,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.namespace = namespace
        self._clock = clock
        self._wall_clock = wall_clock
        self._data: dict[str, _Entry] = {}
        self._writes = 0
        self._aof = None if path is None else AppendLog(path, min_records=compact_min_records)
        self._state: Literal["new", "open", "closed"] = "new"

    @_durable
    async def ping(self) -> None:
        self._ready()

    async def close(self) -> None:
        if self._aof is not None and self._state != "closed":
            self._state = "closed"
            await asyncio.to_thread(self._aof.close)  # writes what is queued, then fsyncs

    # -- durability --------------------------------------------------------------------------

    def _ready(self) -> None:
        """Open (lock and replay) the append-only file on first use; every operation starts
        here, so nothing touches the disk at construction time."""
        if self._aof is None or self._state == "open":
            return
        if self._state == "closed":
            raise RuntimeError(f"kv store on {self._aof.path} is closed")
        self._data.clear()  # a failed earlier attempt may have replayed part of the file
        self._aof.open(self._replay)
        self._state = "open"
        now = self._clock()
        expired = [k for k, e in self._data.items() if e.expires_at and e.expires_at <= now]
        self._forget(expired)

    def _log(self, record: Record) -> None:
        if self._aof is not None:
            self._aof.append(record)

    def _changed(self, record: Record) -> None:
        """Log a change (before the operation returns, with no await in between: the op stays
        atomic), count it for the expiry sweep, and compact the file when it has grown."""
        self._log(record)
        self._wrote()
        if self._aof is not None and self._aof.needs_compaction(len(self._data)):
            self._aof.compact(self._snapshot())

    def _forget(self, keys: list[str]) -> None:
        """Drop expired keys, logging it so that a replay never revives or extends them."""
        for key in keys:
            del self._data[key]
        if keys:
            self._log({"op": "del", "k": keys})

    def _wall(self, expires_at: float | None) -> float | None:
        return None if expires_at is None else self._wall_clock() + (expires_at - self._clock())

    def _put(self, key: str, entry: _Entry) -> Record:
        return {
            "op": "put",
            "k": key,
            "t": entry.kind,
            "v": _encode_value(entry),
            "x": self._wall(entry.expires_at),
        }

    def _snapshot(self) -> Iterator[Record]:
        """One `put` per live key (dropping expired ones): the compacted file."""
        now = self._clock()
        self._forget([k for k, e in self._data.items() if e.expires_at and e.expires_at <= now])
        for key, entry in self._data.items():
            yield self._put(key, entry)

    def _replay(self, record: Record) -> None:
        """Apply one record of the file to memory, without judging expiry: the file holds a
        `del` wherever a key expired while the store ran."""
        op, key = record["op"], record["k"]
        if op == "del":
            for name in key:
                self._data.pop(name, None)
        elif op == "put":
            self._data[key] = _decode_entry(record["t"], record["v"])
            self._data[key].expires_at = self._monotonic(record["x"])
        elif op == "exp":
            if key in self._data:
                self._data[key].expires_at = self._monotonic(record["x"])
        elif op in _COLLECTION_OPS:
            kind, apply = _COLLECTION_OPS[op]
            entry = self._data.get(key)
            if entry is None or entry.kind != kind:
                entry = self._data[key] = _Entry(kind, set() if kind == "set" else {})
            apply(entry, record["m"])
            self._drop_if_empty(key, entry)
        else:
            raise ValueError(f"unknown op {op!r}")

    def _monotonic(self, wall: float | None) -> float | None:
        return None if wall is None else self._clock() + (float(wall) - self._wall_clock())

    # -- helpers -----------------------------------------------------------------------------

    def _live(self, key: str) -> _Entry | None:
        self._ready()
        entry = self._data.get(key)
        if entry is not None and entry.expires_at is not None and entry.expires_at <= self._clock():
            self._forget([key])
            return None
        return entry

    def _of_kind(self, key: str, kind: Kind) -> _Entry | None:
        entry = self._live(key)
        if entry is not None and entry.kind != kind:
            raise KVTypeError(f"key {key!r} holds a {entry.kind}, not a {kind}")
        return entry

    def _create(self, key: str, kind: Literal["hash", "set", "zset"]) -> _Entry:
        """The live collection of `kind` at `key`, created empty when missing."""
        entry = self._of_kind(key, kind)
        if entry is None:
            entry = self._data[key] = _Entry(kind, set() if kind == "set" else {})
        return entry

    def _wrote(self) -> None:
        self._writes += 1
        if self._writes % SWEEP_EVERY == 0:
            now = self._clock()
            self._forget([k for k, e in self._data.items() if e.expires_at and e.expires_at <= now])

    def _drop_if_empty(self, key: str, entry: _Entry) -> None:
        if not entry.value:
            del self._data[key]

    def _deadline(self, ttl: float | None) -> float | None:
        if ttl is None:
            return None
        if ttl <= 0:
            raise ValueError(f"ttl must be positive, got {ttl}")
        return self._clock() + ttl

    # -- strings -----------------------------------------------------------------------------

    @_durable
    async def get(self, key: str) -> bytes | None:
        entry = self._of_kind(key, "string")
        return None if entry is None else _as_bytes(entry)

    @_durable
    async def set(self, key: str, value: Value, ttl: float | None = None) -> None:
        self._ready()
        entry = self._data[key] = _Entry("string", to_bytes(value), self._deadline(ttl))
        self._changed(self._put(key, entry))

    @_durable
    async def set_if_absent(self, key: str, value: Value, ttl: float | None = None) -> bool:
        deadline = self._deadline(ttl)
        if self._live(key) is not None:
            return False
        entry = self._data[key] = _Entry("string", to_bytes(value), deadline)
        self._changed(self._put(key, entry))
        return True

    @_durable
    async def delete(self, *keys: str) -> int:
        self._ready()
        found = [key for key in dict.fromkeys(keys) if self._live(key) is not None]
        for key in found:
            del self._data[key]
        if found:
            self._changed({"op": "del", "k": found})
        return len(found)

    @_durable
    async def exists(self, key: str) -> bool:
        return self._live(key) is not None

    @_durable
    async def incr(self, key: str, by: int = 1) -> int:
        entry = self._of_kind(key, "string")
        total = _add(b"0" if entry is None else _as_bytes(entry), by, key)
        if entry is None:
            entry = self._data[key] = _Entry("string", b"")
        entry.value = str(total).encode()  # keeps the TTL, as Redis INCRBY
        self._changed(self._put(key, entry))
        return total

    @_durable
    async def incr_with_ttl(self, key: str, ttl: float, by: int = 1) -> tuple[int, float]:
        deadline = self._deadline(ttl)
        entry = self._of_kind(key, "string")
        total = _add(b"0" if entry is None else _as_bytes(entry), by, key)
        if entry is None:
            entry = self._data[key] = _Entry("string", b"")
        if entry.expires_at is None:
            entry.expires_at = deadline
        entry.value = str(total).encode()
        self._changed(self._put(key, entry))  # no await since the read: atomic
        left = self._ttl_of(entry)
        return total, ttl if left is None else left

    def _ttl_of(self, entry: _Entry) -> float | None:
        return None if entry.expires_at is None else max(0.0, entry.expires_at - self._clock())

    @_durable
    async def expire(self, key: str, ttl: float) -> bool:
        entry = self._live(key)
        if entry is None:
            return False
        if ttl <= 0:  # as Redis: an expiry in the past deletes the key
            del self._data[key]
            self._changed({"op": "del", "k": [key]})
        else:
            entry.expires_at = self._clock() + ttl
            self._changed({"op": "exp", "k": key, "x": self._wall(entry.expires_at)})
        return True

    @_durable
    async def ttl(self, key: str) -> float | None:
        entry = self._live(key)
        return None if entry is None else self._ttl_of(entry)

    # -- hashes ------------------------------------------------------------------------------

    @_durable
    async def hget(self, key: str, field: str) -> bytes | None:
        entry = self._of_kind(key, "hash")
        return None if entry is None else _as_hash(entry).get(field)

    @_durable
    async def hset(self, key: str, mapping: Mapping[str, Value]) -> int:
        if not mapping:
            raise ValueError("hset needs at least one field")
        fields = _as_hash(self._create(key, "hash"))
        new = sum(1 for name in mapping if name not in fields)
        update = {name: to_bytes(value) for name, value in mapping.items()}
        fields.update(update)
        self._changed(_fields_record("hset", key, update))
        return new

    @_durable
    async def hgetall(self, key: str) -> dict[str, bytes]:
        entry = self._of_kind(key, "hash")
        return {} if entry is None else dict(_as_hash(entry))

    @_durable
    async def hdel(self, key: str, *fields: str) -> int:
        entry = self._of_kind(key, "hash")
        if entry is None:
            return 0
        values = _as_hash(entry)
        found = [name for name in dict.fromkeys(fields) if values.pop(name, None) is not None]
        self._drop_if_empty(key, entry)
        if found:
            self._changed({"op": "hdel", "k": key, "m": found})
        return len(found)

    @_durable
    async def hincrby(self, key: str, field: str, by: int = 1) -> int:
        entry = self._of_kind(key, "hash")
        current = b"0" if entry is None else _as_hash(entry).get(field, b"0")
        total = _add(current, by, f"{key}.{field}")
        _as_hash(self._create(key, "hash"))[field] = str(total).encode()
        self._changed(_fields_record("hset", key, {field: str(total).encode()}))
        return total

    # -- sorted sets -------------------------------------------------------------------------

    @_durable
    async def zincrby(self, key: str, member: str, by: float = 1.0) -> float:
        scores = _as_zset(self._create(key, "zset"))
        score = scores[member] = scores.get(member, 0.0) + float(by)
        self._changed({"op": "zset", "k": key, "m": {member: score}})
        return score

    @_durable
    async def zscore(self, key: str, member: str) -> float | None:
        entry = self._of_kind(key, "zset")
        return None if entry is None else _as_zset(entry).get(member)

    @_durable
    async def zrevrange(self, key: str, start: int = 0, stop: int = -1) -> list[tuple[str, float]]:
        entry = self._of_kind(key, "zset")
        if entry is None:
            return []
        ranked = sorted(
            _as_zset(entry).items(), key=lambda item: (item[1], item[0].encode()), reverse=True
        )
        first, last = _rank_range(len(ranked), start, stop)
        return ranked[first : last + 1]

    # -- sets --------------------------------------------------------------------------------

    @_durable
    async def sadd(self, key: str, *members: str) -> int:
        entry = self._create(key, "set")
        values = _as_set(entry)
        new = set(members) - values
        values.update(new)
        self._drop_if_empty(key, entry)  # `sadd(key)` with no members creates nothing
        if new:
            self._changed({"op": "sadd", "k": key, "m": sorted(new)})
        return len(new)

    @_durable
    async def srem(self, key: str, *members: str) -> int:
        entry = self._of_kind(key, "set")
        if entry is None:
            return 0
        values = _as_set(entry)
        gone = values & set(members)
        values -= gone
        self._drop_if_empty(key, entry)
        if gone:
            self._changed({"op": "srem", "k": key, "m": sorted(gone)})
        return len(gone)

    @_durable
    async def smembers(self, key: str) -> builtins.set[str]:
        entry = self._of_kind(key, "set")
        return set() if entry is None else set(_as_set(entry))

    @_durable
    async def sismember(self, key: str, member: str) -> bool:
        entry = self._of_kind(key, "set")
        return entry is not None and member in _as_set(entry)


def _add(current: bytes, by: int, where: str) -> int:
    """`current` (a decimal integer, as Redis accepts it) plus `by`, within 64 bits."""
    if not _INTEGER.match(current):
        raise KVTypeError(f"value at {where!r} is not an integer")
    total = int(current) + by
    if not _INT64[0] <= total <= _INT64[1]:
        raise KVTypeError(f"increment at {where!r} would overflow 64 bits")
    return total


def _rank_range(size: int, start: int, stop: int) -> tuple[int, int]:
    """Redis's rank arithmetic: negative ranks from the end, clamped; empty when start > stop."""
    first = max(size + start if start < 0 else start, 0)
    last = min(size + stop if stop < 0 else stop, size - 1)
    return (first, last) if first <= last else (0, -1)


def _as_bytes(entry: _Entry) -> bytes:
    assert isinstance(entry.value, bytes)
    return entry.value


def _as_hash(entry: _Entry) -> dict[str, bytes]:
    assert isinstance(entry.value, dict)
    return entry.value  # type: ignore[return-value]  # kind "hash" holds bytes values


def _as_zset(entry: _Entry) -> dict[str, float]:
    assert isinstance(entry.value, dict)
    return entry.value  # type: ignore[return-value]  # kind "zset" holds float scores


def _as_set(entry: _Entry) -> builtins.set[str]:
    assert isinstance(entry.value, set)
    return entry.value


# -- records of the append-only file --------------------------------------------------------


def _fields_record(op: str, key: str, fields: Mapping[str, bytes]) -> Record:
    return {"op": op, "k": key, "m": {name: encode_bytes(v) for name, v in fields.items()}}


def _encode_value(entry: _Entry) -> Any:
    """An entry's value as JSON (bytes via `encode_bytes`, a set as a sorted list)."""
    if entry.kind == "string":
        return encode_bytes(_as_bytes(entry))
    if entry.kind == "hash":
        return {name: encode_bytes(v) for name, v in _as_hash(entry).items()}
    if entry.kind == "set":
        return sorted(_as_set(entry))
    return dict(_as_zset(entry))


def _decode_entry(kind: str, value: Any) -> _Entry:
    if kind == "string":
        return _Entry("string", decode_bytes(value))
    if kind == "hash":
        return _Entry("hash", {name: decode_bytes(v) for name, v in value.items()})
    if kind == "set":
        return _Entry("set", {str(member) for member in value})
    if kind == "zset":
        return _Entry("zset", {str(m): float(score) for m, score in value.items()})
    raise ValueError(f"unknown kind {kind!r}")


def _hset(entry: _Entry, fields: Any) -> None:
    _as_hash(entry).update({name: decode_bytes(v) for name, v in fields.items()})


def _hdel(entry: _Entry, fields: Any) -> None:
    for name in fields:
        _as_hash(entry).pop(name, None)


def _zset(entry: _Entry, scores: Any) -> None:
    _as_zset(entry).update({m: float(score) for m, score in scores.items()})


def _sadd(entry: _Entry, members: Any) -> None:
    _as_set(entry).update(members)


def _srem(entry: _Entry, members: Any) -> None:
    _as_set(entry).difference_update(members)


_COLLECTION_OPS: dict[str, tuple[Literal["hash", "set", "zset"], Callable[[_Entry, Any], None]]] = {
    "hset": ("hash", _hset),
    "hdel": ("hash", _hdel),
    "zset": ("zset", _zset),
    "sadd": ("set", _sadd),
    "srem": ("set", _srem),
}
