"""The small key/value interface both kv adapters implement (a subset of Redis).

Used for caches (inventory's availability), sessions and revocations (auth), idempotency keys
and locks (`set_if_absent`), and recommendation's feature store (counters, hashes, sorted
sets of best sellers and co-purchases). Semantics checked on every adapter by
tests/adapters/test_kv.py:

- Keys, hash fields and set/sorted-set members are `str`. Values are given as `bytes` or
  `str` (a `str` is stored UTF-8 encoded) and always come back as `bytes`: the caller decides
  the encoding (JSON, a number, a token), exactly as with Redis without `decode_responses`.
- Every key is stored under the store's namespace (`<namespace>:<key>`), so services sharing
  one Redis never see each other's keys; the namespace is invisible to callers.
- TTLs are seconds (fractions allowed). A key past its TTL is gone for every operation.
  `set` without a ttl clears an old one (as Redis `SET`); `incr`, `hset` and the other
  in-place updates keep it.
- A hash, set or sorted set that loses its last member disappears (as in Redis).
- Using a key as the wrong kind (`hget` on a string, `incr` on a non-integer) raises
  `KVTypeError`.
"""

from __future__ import annotations

import builtins
from abc import ABC, abstractmethod
from collections.abc import Mapping

Value = bytes | str


class KVTypeError(ValueError):
    """A key was used as a kind it does not hold, or `incr` met a value that is no integer.

    A programming error, not a domain failure: it reaches the caller as a 500.
    """


def to_bytes(value: Value) -> bytes:
    """The bytes a value is stored as: `str` as UTF-8, `bytes` as they are."""
    return value.encode() if isinstance(value, str) else bytes(value)


def namespaced(namespace: str, key: str) -> str:
    """The key as stored: `<namespace>:<key>` (just `key` when the namespace is empty)."""
    return f"{namespace}:{key}" if namespace else key


class KeyValueStore(ABC):
    """An async key/value store scoped to one namespace (usually the service name)."""

    namespace: str

    @abstractmethod
    async def ping(self) -> None:
        """Raise if the store is unreachable (used by health checks)."""

    async def close(self) -> None:  # noqa: B027 - optional hook, the memory store holds nothing
        """Release connections; the store is unusable afterwards."""

    # -- strings -----------------------------------------------------------------------------

    @abstractmethod
    async def get(self, key: str) -> bytes | None:
        """The value of `key`, or None when it is missing or expired."""

    @abstractmethod
    async def set(self, key: str, value: Value, ttl: float | None = None) -> None:
        """Store `value` under `key`, expiring after `ttl` seconds (never when None)."""

    @abstractmethod
    async def set_if_absent(self, key: str, value: Value, ttl: float | None = None) -> bool:
        """Store `value` only if `key` does not exist (Redis `SET NX`); True if stored.

        The building block of idempotency keys and short locks: exactly one of several
        concurrent callers gets True.
        """

    @abstractmethod
    async def delete(self, *keys: str) -> int:
        """Remove keys of any kind; returns how many existed."""

    @abstractmethod
    async def exists(self, key: str) -> bool:
        """Whether `key` holds a value of any kind."""

    @abstractmethod
    async def incr(self, key: str, by: int = 1) -> int:
        """Add `by` to the integer at `key` (a missing key counts as 0); the new value."""

    @abstractmethod
    async def incr_with_ttl(self, key: str, ttl: float, by: int = 1) -> tuple[int, float]:
        """`incr`, and if the key has no TTL yet (it is new) let it expire after `ttl`
        seconds, in one atomic step; returns the new value and the seconds it has left.

        A counter per time window (failed logins, attempts per address): every caller
        counts itself first and then decides on the value it got, so concurrent callers
        can never all read "below the limit" and all go ahead (no check-then-act). The
        window starts with the first increment and is not extended by later ones.
        """

    @abstractmethod
    async def expire(self, key: str, ttl: float) -> bool:
        """Let `key` expire after `ttl` seconds; False if there is no such key."""

    @abstractmethod
    async def ttl(self, key: str) -> float | None:
        """Seconds until `key` expires; None when it has no TTL or does not exist."""

    # -- hashes ------------------------------------------------------------------------------

    @abstractmethod
    async def hget(self, key: str, field: str) -> bytes | None:
        """One field of the hash at `key`."""

    @abstractmethod
    async def hset(self, key: str, mapping: Mapping[str, Value]) -> int:
        """Set fields of the hash at `key`; returns how many fields are new."""

    @abstractmethod
    async def hgetall(self, key: str) -> dict[str, bytes]:
        """Every field of the hash at `key` ({} when missing)."""

    @abstractmethod
    async def hdel(self, key: str, *fields: str) -> int:
        """Remove fields of the hash at `key`; returns how many existed."""

    @abstractmethod
    async def hincrby(self, key: str, field: str, by: int = 1) -> int:
        """Add `by` to an integer field of the hash at `key`; the new value."""

    # -- sorted sets -------------------------------------------------------------------------

    @abstractmethod
    async def zincrby(self, key: str, member: str, by: float = 1.0) -> float:
        """Add `by` to `member`'s score in the sorted set at `key`; the new score."""

    @abstractmethod
    async def zscore(self, key: str, member: str) -> float | None:
        """`member`'s score, or None when it is not in the set."""

    @abstractmethod
    async def zrevrange(self, key: str, start: int = 0, stop: int = -1) -> list[tuple[str, float]]:
        """Members with their scores, highest score first (ties: member descending, as
        Redis), from rank `start` to rank `stop` inclusive (negative ranks count from the
        end): `zrevrange(k, 0, 9)` is the top ten."""

    # -- sets --------------------------------------------------------------------------------

    @abstractmethod
    async def sadd(self, key: str, *members: str) -> int:
        """Add members to the set at `key`; returns how many were new."""

    @abstractmethod
    async def srem(self, key: str, *members: str) -> int:
        """Remove members from the set at `key`; returns how many were there."""

    @abstractmethod
    async def smembers(self, key: str) -> builtins.set[str]:
        """Every member of the set at `key` (empty when missing)."""

    @abstractmethod
    async def sismember(self, key: str, member: str) -> bool:
        """Whether `member` is in the set at `key`."""
