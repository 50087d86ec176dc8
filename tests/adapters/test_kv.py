"""Contract suite of the kv port: every assertion runs on the in-process store (volatile, and
durable with an append-only file) and on a real Redis (started by `.ci/backends.sh`)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from emporium.chassis.kv import KeyValueStore, KVTypeError, open_kv
from tests.backends import backend_url


@pytest.fixture(params=["memory", "memory-aof", "redis"], ids=["memory", "memory-aof", "redis"])
async def kv(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[KeyValueStore]:
    url = {
        "memory": lambda: "memory://",
        "memory-aof": lambda: f"memory://{tmp_path}/kv/store.aof",
        "redis": lambda: backend_url("redis"),
    }[request.param]()
    # A fresh namespace per test: the Redis server is shared and reused between runs.
    store = open_kv(url, namespace=f"test-{uuid.uuid4().hex[:12]}")
    await store.ping()
    yield store
    await store.close()


async def _wait_gone(kv: KeyValueStore, key: str, seconds: float = 3.0) -> bool:
    """Poll until `key` is gone (a TTL of 1 s must have taken effect well within 3 s)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        if not await kv.exists(key):
            return True
        await asyncio.sleep(0.05)
    return False


async def test_set_get_delete_and_values_come_back_as_bytes(kv: KeyValueStore) -> None:
    assert await kv.get("missing") is None
    await kv.set("greeting", "héllo")
    await kv.set("raw", b"\x00\xff")
    assert await kv.get("greeting") == "héllo".encode()
    assert await kv.get("raw") == b"\x00\xff"
    assert await kv.exists("greeting")
    await kv.set("greeting", "bye")
    assert await kv.get("greeting") == b"bye"
    assert await kv.delete("greeting", "raw", "missing") == 2
    assert await kv.get("greeting") is None
    assert not await kv.exists("greeting")
    assert await kv.delete() == 0


async def test_namespaces_isolate_services_sharing_one_redis() -> None:
    """Only Redis is shared between processes (each memory store is its own object)."""
    url = backend_url("redis")
    name = f"ns-{uuid.uuid4().hex[:12]}"
    mine, other, same = open_kv(url, name), open_kv(url, f"other-{name}"), open_kv(url, name)
    try:
        await mine.set("shared-name", "mine")
        assert await other.get("shared-name") is None
        assert await same.get("shared-name") == b"mine"
    finally:
        for store in (mine, other, same):
            await store.close()


async def test_ttl_expires_keys_and_reports_remaining_seconds(kv: KeyValueStore) -> None:
    await kv.set("session", "s1", ttl=1)
    await kv.set("forever", "f")
    remaining = await kv.ttl("session")
    assert remaining is not None
    assert 0 < remaining <= 1
    assert await kv.ttl("forever") is None
    assert await kv.ttl("missing") is None
    assert await _wait_gone(kv, "session")
    assert await kv.get("session") is None
    assert await kv.get("forever") == b"f"


async def test_set_without_ttl_clears_an_old_ttl(kv: KeyValueStore) -> None:
    await kv.set("k", "v", ttl=100)
    await kv.set("k", "v2")
    assert await kv.ttl("k") is None


async def test_expire_sets_a_ttl_on_existing_keys_only(kv: KeyValueStore) -> None:
    assert not await kv.expire("missing", 10)
    await kv.hset("h", {"a": "1"})
    assert await kv.expire("h", 100)
    remaining = await kv.ttl("h")
    assert remaining is not None
    assert 99 < remaining <= 100
    assert await kv.expire("h", 1)
    assert await _wait_gone(kv, "h")
    assert await kv.hgetall("h") == {}


async def test_expire_with_non_positive_ttl_deletes(kv: KeyValueStore) -> None:
    await kv.set("k", "v")
    assert await kv.expire("k", 0)
    assert not await kv.exists("k")


async def test_non_positive_ttl_on_set_is_rejected(kv: KeyValueStore) -> None:
    with pytest.raises(ValueError, match="ttl"):
        await kv.set("k", "v", ttl=0)
    with pytest.raises(ValueError, match="ttl"):
        await kv.set_if_absent("k", "v", ttl=-1)
    assert not await kv.exists("k")


async def test_set_if_absent_lets_exactly_one_caller_win(kv: KeyValueStore) -> None:
    results = await asyncio.gather(*(kv.set_if_absent("lock", f"owner-{i}") for i in range(10)))
    assert sorted(results) == [False] * 9 + [True]
    winner = results.index(True)
    assert await kv.get("lock") == f"owner-{winner}".encode()
    assert not await kv.set_if_absent("lock", "late")
    assert await kv.delete("lock") == 1
    assert await kv.set_if_absent("lock", "again", ttl=1)
    assert await _wait_gone(kv, "lock")
    assert await kv.set_if_absent("lock", "after-expiry")


async def test_incr_counts_from_zero_and_keeps_the_ttl(kv: KeyValueStore) -> None:
    assert await kv.incr("hits") == 1
    assert await kv.incr("hits", 41) == 42
    assert await kv.incr("hits", -2) == 40
    assert await kv.get("hits") == b"40"
    await kv.set("limited", "5", ttl=100)
    assert await kv.incr("limited") == 6
    remaining = await kv.ttl("limited")
    assert remaining is not None
    assert remaining > 90


async def test_concurrent_incr_loses_no_update(kv: KeyValueStore) -> None:
    await asyncio.gather(*(kv.incr("n") for _ in range(50)))
    assert await kv.get("n") == b"50"


async def test_incr_with_ttl_starts_a_window_once_and_never_extends_it(
    kv: KeyValueStore,
) -> None:
    assert await kv.incr_with_ttl("window", ttl=100) == (1, pytest.approx(100, abs=1))
    await kv.expire("window", 50)  # later increments keep whatever TTL the key has
    value, left = await kv.incr_with_ttl("window", ttl=100, by=2)
    assert value == 3
    assert 45 < left <= 50
    remaining = await kv.ttl("window")
    assert remaining is not None
    assert remaining <= 50
    await kv.set("plain", "7")  # an existing counter without a TTL gets one
    assert (await kv.incr_with_ttl("plain", ttl=1))[0] == 8
    assert await _wait_gone(kv, "plain")
    assert (await kv.incr_with_ttl("plain", ttl=100))[0] == 1  # a new window after expiry
    with pytest.raises(ValueError):
        await kv.incr_with_ttl("window", ttl=0)


async def test_concurrent_incr_with_ttl_gives_every_caller_its_own_count(
    kv: KeyValueStore,
) -> None:
    """What the login throttle relies on: fifty concurrent attempts see 1..50, each once,
    so exactly the first N can be let through, whatever the interleaving."""
    results = await asyncio.gather(*(kv.incr_with_ttl("attempts", ttl=60) for _ in range(50)))
    assert sorted(value for value, _ in results) == list(range(1, 51))
    assert all(0 < left <= 60 for _, left in results)
    assert await kv.get("attempts") == b"50"


async def test_wrong_kind_of_value_raises_kv_type_error(kv: KeyValueStore) -> None:
    await kv.set("text", "abc")
    with pytest.raises(KVTypeError):
        await kv.incr("text")
    with pytest.raises(KVTypeError):
        await kv.incr_with_ttl("text", ttl=10)
    with pytest.raises(KVTypeError):
        await kv.hget("text", "f")
    await kv.sadd("members", "a")
    with pytest.raises(KVTypeError):
        await kv.get("members")
    await kv.hset("h", {"f": "x"})
    with pytest.raises(KVTypeError):
        await kv.hincrby("h", "f")
    assert await kv.get("text") == b"abc"


async def test_hashes(kv: KeyValueStore) -> None:
    assert await kv.hgetall("user:1") == {}
    assert await kv.hget("user:1", "name") is None
    assert await kv.hset("user:1", {"name": "Ada", "plan": b"pro"}) == 2
    assert await kv.hset("user:1", {"name": "Ada L.", "country": "UK"}) == 1
    assert await kv.hget("user:1", "name") == b"Ada L."
    assert await kv.hgetall("user:1") == {"name": b"Ada L.", "plan": b"pro", "country": b"UK"}
    assert await kv.hincrby("user:1", "logins") == 1
    assert await kv.hincrby("user:1", "logins", 9) == 10
    assert await kv.hdel("user:1", "plan", "missing") == 1
    assert await kv.hdel("user:1") == 0
    assert set(await kv.hgetall("user:1")) == {"name", "country", "logins"}
    assert await kv.hdel("user:1", "name", "country", "logins") == 3
    assert not await kv.exists("user:1")  # an emptied hash disappears
    with pytest.raises(ValueError, match="field"):
        await kv.hset("user:1", {})


async def test_sorted_sets_rank_best_sellers(kv: KeyValueStore) -> None:
    assert await kv.zrevrange("best") == []
    assert await kv.zscore("best", "p1") is None
    assert await kv.zincrby("best", "p1") == 1.0
    assert await kv.zincrby("best", "p2", 5) == 5.0
    assert await kv.zincrby("best", "p3", 2.5) == 2.5
    assert await kv.zincrby("best", "p1", 2) == 3.0
    assert await kv.zscore("best", "p1") == 3.0
    assert await kv.zrevrange("best") == [("p2", 5.0), ("p1", 3.0), ("p3", 2.5)]
    assert await kv.zrevrange("best", 0, 1) == [("p2", 5.0), ("p1", 3.0)]
    assert await kv.zrevrange("best", 1, -1) == [("p1", 3.0), ("p3", 2.5)]
    assert await kv.zrevrange("best", -1, -1) == [("p3", 2.5)]
    assert await kv.zrevrange("best", 5, 10) == []
    assert await kv.zrevrange("best", 2, 1) == []


async def test_sorted_set_ties_order_by_member_descending(kv: KeyValueStore) -> None:
    for member in ("b", "a", "c"):
        await kv.zincrby("ties", member, 1)
    await kv.zincrby("ties", "z", 0.5)
    assert await kv.zrevrange("ties") == [("c", 1.0), ("b", 1.0), ("a", 1.0), ("z", 0.5)]


async def test_sets(kv: KeyValueStore) -> None:
    assert await kv.smembers("tags") == set()
    assert await kv.sadd("tags", "a", "b", "a") == 2
    assert await kv.sadd("tags", "b", "c") == 1
    assert await kv.sadd("tags") == 0
    assert await kv.smembers("tags") == {"a", "b", "c"}
    assert await kv.sismember("tags", "a")
    assert not await kv.sismember("tags", "z")
    assert await kv.srem("tags", "a", "z") == 1
    assert await kv.smembers("tags") == {"b", "c"}
    assert await kv.srem("tags", "b", "c") == 2
    assert not await kv.exists("tags")  # an emptied set disappears


async def test_delete_removes_collections_too(kv: KeyValueStore) -> None:
    await kv.sadd("s", "x")
    await kv.zincrby("z", "x")
    await kv.hset("h", {"f": "v"})
    assert await kv.delete("s", "z", "h") == 3
    assert await kv.smembers("s") == set()
    assert await kv.zrevrange("z") == []
    assert await kv.hgetall("h") == {}


async def test_set_replaces_a_collection_with_a_string(kv: KeyValueStore) -> None:
    await kv.sadd("k", "x")
    assert not await kv.set_if_absent("k", "v")
    await kv.set("k", "v")
    assert await kv.get("k") == b"v"


def test_open_kv_rejects_unknown_schemes_and_bad_namespaces() -> None:
    with pytest.raises(ValueError, match="scheme"):
        open_kv("memcached://localhost", "svc")
    with pytest.raises(ValueError, match="namespace"):
        open_kv("memory://", "bad namespace")
