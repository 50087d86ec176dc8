"""Pick the kv store a URL names: `memory://` (embedded) or `redis://` / `rediss://`."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from emporium.chassis.kv.base import KeyValueStore

_NAMESPACE = re.compile(r"^[A-Za-z0-9_.-]*$")


def open_kv(url: str, namespace: str) -> KeyValueStore:
    """A kv store for `url` whose keys live under `namespace` (usually the service name);
    nothing is connected until first use.

    `memory://` (in-process, per store object), `redis://host:port/db`, `rediss://...`.
    """
    if not _NAMESPACE.match(namespace):
        raise ValueError(f"invalid kv namespace {namespace!r}: letters, digits and _.- only")
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        from emporium.chassis.kv.memory import MemoryKeyValueStore

        return MemoryKeyValueStore(namespace)
    if scheme in ("redis", "rediss"):
        from emporium.chassis.kv.redis import RedisKeyValueStore

        return RedisKeyValueStore(url, namespace)
    raise ValueError(f"unsupported kv URL scheme {scheme!r} in {url!r}; expected memory or redis")
