"""The kv port on Redis (redis-py's asyncio client): the production kv.

URL: `redis://[user:password@]host:port/db` or `rediss://...` for TLS; redis-py's query
options (`?socket_timeout=2&health_check_interval=30`) override the defaults below. The client
keeps a connection pool and connects on first use; `close()` releases it. Keys are sent as
`<namespace>:<key>` so services can share one Redis.
"""

from __future__ import annotations

import builtins
import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import redis.asyncio
from redis.exceptions import ResponseError

from emporium.chassis.kv.base import KeyValueStore, KVTypeError, Value, namespaced, to_bytes

DEFAULT_OPTIONS: dict[str, Any] = {
    "socket_connect_timeout": 5.0,
    "socket_timeout": 5.0,
    "health_check_interval": 30,
}


@contextmanager
def _kv_errors() -> Iterator[None]:
    """Redis's type errors as KVTypeError, so callers catch the same thing on every adapter."""
    try:
        yield
    except ResponseError as exc:
        text = str(exc)
        if text.startswith("WRONGTYPE") or "not an integer" in text or "overflow" in text:
            raise KVTypeError(text) from exc
        raise


# INCRBY, then PEXPIRE only if the key has no TTL yet, in one atomic step (a script runs
# with nothing else in between); returns the value and the milliseconds left.
_INCR_WITH_TTL = """
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
local left = redis.call('PTTL', KEYS[1])
if left < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  left = tonumber(ARGV[2])
end
return {value, left}
"""


def _millis(ttl: float) -> int:
    if ttl <= 0:
        raise ValueError(f"ttl must be positive, got {ttl}")
    return max(1, math.ceil(ttl * 1000))


class RedisKeyValueStore(KeyValueStore):
    """A kv store on one Redis database, scoped to `namespace`."""

    def __init__(self, url: str, namespace: str = "") -> None:
        self.namespace = namespace
        self.url = url
        # redis-py's async methods are typed `T | Awaitable[T]`; Any keeps the awaits simple.
        self._client: Any = redis.asyncio.Redis.from_url(url, **DEFAULT_OPTIONS)
        self._incr_with_ttl: Any = self._client.register_script(_INCR_WITH_TTL)

    def _k(self, key: str) -> str:
        return namespaced(self.namespace, key)

    async def ping(self) -> None:
        await self._client.ping()

    async def close(self) -> None:
        await self._client.aclose()

    # -- strings -----------------------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        with _kv_errors():
            value: bytes | None = await self._client.get(self._k(key))
        return value

    async def set(self, key: str, value: Value, ttl: float | None = None) -> None:
        px = None if ttl is None else _millis(ttl)
        await self._client.set(self._k(key), to_bytes(value), px=px)

    async def set_if_absent(self, key: str, value: Value, ttl: float | None = None) -> bool:
        px = None if ttl is None else _millis(ttl)
        return bool(await self._client.set(self._k(key), to_bytes(value), px=px, nx=True))

    async def delete(self, *keys: str) -> int:
        if not keys:
            return 0
        return int(await self._client.delete(*(self._k(k) for k in keys)))

    async def exists(self, key: str) -> bool:
        return bool(await self._client.exists(self._k(key)))

    async def incr(self, key: str, by: int = 1) -> int:
        with _kv_errors():
            return int(await self._client.incrby(self._k(key), by))

    async def incr_with_ttl(self, key: str, ttl: float, by: int = 1) -> tuple[int, float]:
        with _kv_errors():
            value, left = await self._incr_with_ttl(keys=[self._k(key)], args=[by, _millis(ttl)])
        return int(value), int(left) / 1000

    async def expire(self, key: str, ttl: float) -> bool:
        # PEXPIRE 0 deletes the key, which is what a non-positive ttl means here too.
        millis = 0 if ttl <= 0 else max(1, math.ceil(ttl * 1000))
        return bool(await self._client.pexpire(self._k(key), millis))

    async def ttl(self, key: str) -> float | None:
        millis = int(await self._client.pttl(self._k(key)))
        return None if millis < 0 else millis / 1000  # -1: no ttl, -2: no key

    # -- hashes ------------------------------------------------------------------------------

    async def hget(self, key: str, field: str) -> bytes | None:
        with _kv_errors():
            value: bytes | None = await self._client.hget(self._k(key), field)
        return value

    async def hset(self, key: str, mapping: Mapping[str, Value]) -> int:
        if not mapping:
            raise ValueError("hset needs at least one field")
        encoded = {name: to_bytes(value) for name, value in mapping.items()}
        with _kv_errors():
            return int(await self._client.hset(self._k(key), mapping=encoded))

    async def hgetall(self, key: str) -> dict[str, bytes]:
        with _kv_errors():
            raw: dict[bytes, bytes] = await self._client.hgetall(self._k(key))
        return {name.decode(): value for name, value in raw.items()}

    async def hdel(self, key: str, *fields: str) -> int:
        if not fields:
            return 0
        with _kv_errors():
            return int(await self._client.hdel(self._k(key), *fields))

    async def hincrby(self, key: str, field: str, by: int = 1) -> int:
        with _kv_errors():
            return int(await self._client.hincrby(self._k(key), field, by))

    # -- sorted sets -------------------------------------------------------------------------

    async def zincrby(self, key: str, member: str, by: float = 1.0) -> float:
        with _kv_errors():
            return float(await self._client.zincrby(self._k(key), by, member))

    async def zscore(self, key: str, member: str) -> float | None:
        with _kv_errors():
            score = await self._client.zscore(self._k(key), member)
        return None if score is None else float(score)

    async def zrevrange(self, key: str, start: int = 0, stop: int = -1) -> list[tuple[str, float]]:
        with _kv_errors():
            pairs = await self._client.zrevrange(self._k(key), start, stop, withscores=True)
        return [(member.decode(), float(score)) for member, score in pairs]

    # -- sets --------------------------------------------------------------------------------

    async def sadd(self, key: str, *members: str) -> int:
        if not members:
            return 0
        with _kv_errors():
            return int(await self._client.sadd(self._k(key), *members))

    async def srem(self, key: str, *members: str) -> int:
        if not members:
            return 0
        with _kv_errors():
            return int(await self._client.srem(self._k(key), *members))

    async def smembers(self, key: str) -> builtins.set[str]:
        with _kv_errors():
            raw: set[bytes] = await self._client.smembers(self._k(key))
        return {member.decode() for member in raw}

    async def sismember(self, key: str, member: str) -> bool:
        with _kv_errors():
            return bool(await self._client.sismember(self._k(key), member))
