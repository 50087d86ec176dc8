"""An in-process key/value store with TTLs: the embedded profile's kv (`memory://`).

Like Redis without persistence: everything is lost when the process stops, which suits what
the kv holds (caches, sessions that can be re-established, recomputable features). The data
lives in this store object only, so two `open_kv("memory://", ...)` calls are two separate
stores; the embedded profile runs one process per service, each with its own.

Expired keys are dropped lazily, when an operation touches them, and by a sweep every
`SWEEP_EVERY` writes, so keys written once and never read again do not pile up. No operation
awaits while it touches the data, so each runs atomically with respect to other coroutines
on the event loop (e.g. two `set_if_absent` on one key: exactly one wins).
"""

from __future__ import annotations

import builtins
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from emporium.chassis.kv.base import KeyValueStore, KVTypeError, Value, to_bytes

SWEEP_EVERY = 1024
Kind = Literal["string", "hash", "set", "zset"]
_INTEGER = re.compile(rb"^-?(0|[1-9][0-9]*)$")
_INT64 = (-(2**63), 2**63 - 1)


@dataclass
class _Entry:
    kind: Kind
    value: bytes | dict[str, bytes] | set[str] | dict[str, float]
    expires_at: float | None = None


class MemoryKeyValueStore(KeyValueStore):
    """A kv store held in a dict; `clock` is injectable for unit tests of expiry."""

    def __init__(self, namespace: str = "", clock: Callable[[], float] = time.monotonic) -> None:
        self.namespace = namespace
        self._clock = clock
        self._data: dict[str, _Entry] = {}
        self._writes = 0

    async def ping(self) -> None:
        return None

    # -- helpers -----------------------------------------------------------------------------

    def _live(self, key: str) -> _Entry | None:
        entry = self._data.get(key)
        if entry is not None and entry.expires_at is not None and entry.expires_at <= self._clock():
            del self._data[key]
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
        self._wrote()
        return entry

    def _wrote(self) -> None:
        self._writes += 1
        if self._writes % SWEEP_EVERY == 0:
            now = self._clock()
            for key in [k for k, e in self._data.items() if e.expires_at and e.expires_at <= now]:
                del self._data[key]

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

    async def get(self, key: str) -> bytes | None:
        entry = self._of_kind(key, "string")
        return None if entry is None else _as_bytes(entry)

    async def set(self, key: str, value: Value, ttl: float | None = None) -> None:
        self._data[key] = _Entry("string", to_bytes(value), self._deadline(ttl))
        self._wrote()

    async def set_if_absent(self, key: str, value: Value, ttl: float | None = None) -> bool:
        deadline = self._deadline(ttl)
        if self._live(key) is not None:
            return False
        self._data[key] = _Entry("string", to_bytes(value), deadline)
        self._wrote()
        return True

    async def delete(self, *keys: str) -> int:
        found = 0
        for key in keys:
            if self._live(key) is not None:
                del self._data[key]
                found += 1
        return found

    async def exists(self, key: str) -> bool:
        return self._live(key) is not None

    async def incr(self, key: str, by: int = 1) -> int:
        entry = self._of_kind(key, "string")
        total = _add(b"0" if entry is None else _as_bytes(entry), by, key)
        if entry is None:
            entry = self._data[key] = _Entry("string", b"")
        entry.value = str(total).encode()  # keeps the TTL, as Redis INCRBY
        self._wrote()
        return total

    async def expire(self, key: str, ttl: float) -> bool:
        entry = self._live(key)
        if entry is None:
            return False
        if ttl <= 0:  # as Redis: an expiry in the past deletes the key
            del self._data[key]
        else:
            entry.expires_at = self._clock() + ttl
        return True

    async def ttl(self, key: str) -> float | None:
        entry = self._live(key)
        if entry is None or entry.expires_at is None:
            return None
        return max(0.0, entry.expires_at - self._clock())

    # -- hashes ------------------------------------------------------------------------------

    async def hget(self, key: str, field: str) -> bytes | None:
        entry = self._of_kind(key, "hash")
        return None if entry is None else _as_hash(entry).get(field)

    async def hset(self, key: str, mapping: Mapping[str, Value]) -> int:
        if not mapping:
            raise ValueError("hset needs at least one field")
        fields = _as_hash(self._create(key, "hash"))
        new = sum(1 for name in mapping if name not in fields)
        fields.update({name: to_bytes(value) for name, value in mapping.items()})
        return new

    async def hgetall(self, key: str) -> dict[str, bytes]:
        entry = self._of_kind(key, "hash")
        return {} if entry is None else dict(_as_hash(entry))

    async def hdel(self, key: str, *fields: str) -> int:
        entry = self._of_kind(key, "hash")
        if entry is None:
            return 0
        values = _as_hash(entry)
        found = sum(1 for name in fields if values.pop(name, None) is not None)
        self._drop_if_empty(key, entry)
        return found

    async def hincrby(self, key: str, field: str, by: int = 1) -> int:
        entry = self._of_kind(key, "hash")
        current = b"0" if entry is None else _as_hash(entry).get(field, b"0")
        total = _add(current, by, f"{key}.{field}")
        _as_hash(self._create(key, "hash"))[field] = str(total).encode()
        return total

    # -- sorted sets -------------------------------------------------------------------------

    async def zincrby(self, key: str, member: str, by: float = 1.0) -> float:
        scores = _as_zset(self._create(key, "zset"))
        scores[member] = scores.get(member, 0.0) + float(by)
        return scores[member]

    async def zscore(self, key: str, member: str) -> float | None:
        entry = self._of_kind(key, "zset")
        return None if entry is None else _as_zset(entry).get(member)

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

    async def sadd(self, key: str, *members: str) -> int:
        values = _as_set(self._create(key, "set"))
        new = set(members) - values
        values.update(new)
        return len(new)

    async def srem(self, key: str, *members: str) -> int:
        entry = self._of_kind(key, "set")
        if entry is None:
            return 0
        values = _as_set(entry)
        gone = values & set(members)
        values -= gone
        self._drop_if_empty(key, entry)
        return len(gone)

    async def smembers(self, key: str) -> builtins.set[str]:
        entry = self._of_kind(key, "set")
        return set() if entry is None else set(_as_set(entry))

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
