"""Pick the kv store a URL names: `memory://` (in-process, volatile), `memory:///path.aof`
(in-process with an append-only file: the embedded default) or `redis://` / `rediss://`."""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

from emporium.chassis.kv.base import KeyValueStore

_NAMESPACE = re.compile(r"^[A-Za-z0-9_.-]*$")


def open_kv(url: str, namespace: str) -> KeyValueStore:
    """A kv store for `url` whose keys live under `namespace` (usually the service name);
    nothing is connected until first use.

    `memory://` (in-process, per store object, lost when the process stops),
    `memory:///abs/dir/store.aof` (the same, replayed from and appended to that file; a path
    written with a host part, `memory://dir/store.aof`, is relative to the working
    directory, as for the other file URLs), `redis://host:port/db`, `rediss://...`.
    """
    if not _NAMESPACE.match(namespace):
        raise ValueError(f"invalid kv namespace {namespace!r}: letters, digits and _.- only")
    parts = urlsplit(url)
    if parts.scheme == "memory":
        from emporium.chassis.kv.memory import MemoryKeyValueStore

        path = unquote(parts.netloc + parts.path)
        return MemoryKeyValueStore(namespace, path=path or None)
    scheme = parts.scheme
    if scheme in ("redis", "rediss"):
        from emporium.chassis.kv.redis import RedisKeyValueStore

        return RedisKeyValueStore(url, namespace)
    raise ValueError(f"unsupported kv URL scheme {scheme!r} in {url!r}; expected memory or redis")
