"""The durable in-process kv (`memory:///path.aof`): what was written survives a reopen and a
`kill -9`, a torn last line is dropped, compaction keeps exactly the live data, and one file
belongs to one store."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from emporium.chassis.kv import open_kv
from emporium.chassis.kv.appendlog import AppendLog, AppendLogCorruptError, AppendLogLockedError
from emporium.chassis.kv.memory import MemoryKeyValueStore


class Clocks:
    """A monotonic and a wall clock the test moves by hand (no sleeping)."""

    def __init__(self) -> None:
        self.mono = 1000.0
        self.wall = 1_700_000_000.0

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += seconds


def store(path: Path, clocks: Clocks | None = None, **kwargs: int) -> MemoryKeyValueStore:
    if clocks is None:
        return MemoryKeyValueStore("svc", path=path, **kwargs)
    return MemoryKeyValueStore(
        "svc", clock=lambda: clocks.mono, wall_clock=lambda: clocks.wall, path=path, **kwargs
    )


def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


async def test_every_kind_of_data_survives_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "data" / "kv.aof"
    kv = open_kv(f"memory://{path}", "svc")
    await kv.set("text", "héllo")
    await kv.set("raw", b"\x00\xff\xfe not utf-8")
    await kv.set("gone", "x")
    assert await kv.delete("gone", "never") == 1
    assert await kv.set_if_absent("lock", "owner-1")
    assert not await kv.set_if_absent("lock", "owner-2")
    await kv.incr("hits", 41)
    await kv.incr("hits")
    await kv.hset("user:1", {"name": "Ada", "plan": "pro", "bin": b"\x80"})
    await kv.hincrby("user:1", "logins", 3)
    await kv.hdel("user:1", "plan")
    await kv.hset("emptied", {"f": "v"})
    await kv.hdel("emptied", "f")
    await kv.sadd("tags", "a", "b", "c")
    await kv.srem("tags", "b")
    await kv.zincrby("best", "p1", 2.5)
    await kv.zincrby("best", "p2", 5)
    await kv.zincrby("best", "p1", 1)
    await kv.set("dropped", "v")
    assert await kv.expire("dropped", 0)
    await kv.close()

    again = open_kv(f"memory://{path}", "svc")
    assert await again.get("text") == "héllo".encode()
    assert await again.get("raw") == b"\x00\xff\xfe not utf-8"
    assert not await again.exists("gone")
    assert await again.get("lock") == b"owner-1"
    assert await again.get("hits") == b"42"
    assert await again.hgetall("user:1") == {"name": b"Ada", "bin": b"\x80", "logins": b"3"}
    assert not await again.exists("emptied")
    assert await again.smembers("tags") == {"a", "c"}
    assert await again.zrevrange("best") == [("p2", 5.0), ("p1", 3.5)]
    assert not await again.exists("dropped")
    assert await again.incr("hits") == 43  # and it keeps working from there
    await again.close()


async def test_ttls_survive_as_absolute_times(tmp_path: Path) -> None:
    path = tmp_path / "kv.aof"
    clocks = Clocks()
    kv = store(path, clocks)
    await kv.set("short", "s", ttl=10)
    await kv.set("long", "l", ttl=1000)
    await kv.hset("h", {"a": "1"})
    assert await kv.expire("h", 500)
    await kv.hset("h", {"b": "2"})  # keeps the TTL
    await kv.set("cleared", "c", ttl=100)
    await kv.set("cleared", "c2")  # a set without ttl clears it
    await kv.close()

    clocks.advance(60)  # the process was down for a minute
    again = store(path, clocks)
    assert await again.get("short") is None
    assert await again.get("long") == b"l"
    assert await again.ttl("long") == pytest.approx(940)
    assert await again.hgetall("h") == {"a": b"1", "b": b"2"}
    assert await again.ttl("h") == pytest.approx(440)
    assert await again.ttl("cleared") is None
    await again.close()


async def test_a_long_ttl_keeps_roughly_its_remaining_time_with_real_clocks(
    tmp_path: Path,
) -> None:
    path = tmp_path / "kv.aof"
    kv = store(path)
    await kv.set("session", "s", ttl=3600)
    await kv.close()
    again = store(path)
    remaining = await again.ttl("session")
    assert remaining is not None
    assert 3500 < remaining <= 3600
    await again.close()


async def test_a_key_recreated_after_expiring_is_not_revived_or_lost(tmp_path: Path) -> None:
    """Expiry while running is logged as a delete, so a replay cannot mix the old key (and
    its TTL) into the new one."""
    path = tmp_path / "kv.aof"
    clocks = Clocks()
    kv = store(path, clocks)
    await kv.hset("h", {"old": "1"})
    assert await kv.expire("h", 5)
    clocks.advance(10)
    await kv.hset("h", {"new": "2"})  # a fresh hash without a TTL
    await kv.set("s", "v", ttl=5)
    await kv.close()

    clocks.advance(10)  # "s" expired while down: dropped on open, and logged as dropped
    second = store(path, clocks)
    assert await second.get("s") is None
    await second.sadd("s", "member")
    await second.close()

    third = store(path, clocks)
    assert await third.hgetall("h") == {"new": b"2"}
    assert await third.ttl("h") is None
    assert await third.smembers("s") == {"member"}
    await third.close()


async def test_a_torn_last_line_is_ignored_and_truncated(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "kv.aof"
    kv = store(path)
    await kv.set("a", "1")
    await kv.hset("h", {"f": "v"})
    await kv.close()
    intact = path.read_bytes()
    with path.open("ab") as f:
        f.write(b'{"op":"put","k":"torn","t":"str')  # the crash hit mid-write

    again = store(path)
    with caplog.at_level(logging.WARNING, logger="emporium.chassis.kv.appendlog"):
        assert await again.get("a") == b"1"
    assert "torn last line" in caplog.text
    assert str(path) in caplog.text
    assert await again.hgetall("h") == {"f": b"v"}
    assert not await again.exists("torn")
    assert path.read_bytes() == intact  # cut off before anything new is appended
    await again.set("b", "2")
    await again.close()

    third = store(path)
    assert (await third.get("a"), await third.get("b")) == (b"1", b"2")
    await third.close()


async def test_an_undecodable_last_line_is_dropped_too(tmp_path: Path) -> None:
    path = tmp_path / "kv.aof"
    kv = store(path)
    await kv.set("a", "1")
    await kv.close()
    with path.open("ab") as f:
        f.write(b"\x00\x00\x00\x00\n")  # e.g. a block of zeros after a machine crash
    again = store(path)
    assert await again.get("a") == b"1"
    await again.close()
    assert records(path) == [{"op": "put", "k": "a", "t": "string", "v": "1", "x": None}]


async def test_a_bad_line_before_the_last_refuses_to_open(tmp_path: Path) -> None:
    path = tmp_path / "kv.aof"
    kv = store(path)
    await kv.set("a", "1")
    await kv.close()
    content = path.read_bytes()
    path.write_bytes(b"garbage\n" + content)
    again = store(path)
    with pytest.raises(AppendLogCorruptError, match=f"{path}.*line 1"):
        await again.get("a")
    assert path.read_bytes() == b"garbage\n" + content  # nothing destroyed


async def test_compaction_keeps_exactly_the_live_data_and_shrinks_the_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "kv.aof"
    clocks = Clocks()
    kv = store(path, clocks, compact_min_records=10)
    await kv.set("expiring", "x", ttl=1)  # record 1
    await kv.set("b", "1")  # 2
    await kv.hset("h", {"f": "v", "bin": b"\xff"})  # 3
    await kv.sadd("s", "m1", "m2")  # 4
    await kv.zincrby("z", "p", 2)  # 5
    assert await kv.delete("b") == 1  # 6
    clocks.advance(5)  # "expiring" is past its TTL, still in memory
    for _ in range(4):
        await kv.incr("n")  # 7..10: 10 records, 5 keys in memory: not yet twice as many
    assert len(records(path)) == 10
    await kv.incr("n")  # 11 > 2 * 5: compact

    snapshot = records(path)
    assert {r["op"] for r in snapshot} == {"put"}
    assert sorted(str(r["k"]) for r in snapshot) == ["h", "n", "s", "z"]
    assert listing(tmp_path) == ["kv.aof"]  # no temporary file left

    for _ in range(200):
        await kv.zincrby("z", "p", 1)
    assert len(records(path)) < 30  # compacted again and again, not 200 lines
    await kv.set("after", "compaction")
    await kv.close()

    again = store(path, clocks)
    assert await again.get("expiring") is None
    assert await again.get("b") is None
    assert await again.get("n") == b"5"
    assert await again.hgetall("h") == {"f": b"v", "bin": b"\xff"}
    assert await again.smembers("s") == {"m1", "m2"}
    assert await again.zscore("z", "p") == 202.0
    assert await again.get("after") == b"compaction"
    await again.close()


async def test_a_second_store_on_the_same_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "kv.aof"
    first = open_kv(f"memory://{path}", "auth")
    await first.set("k", "v")
    second = open_kv(f"memory://{path}", "auth")
    with pytest.raises(AppendLogLockedError, match=str(path)):
        await second.ping()
    with pytest.raises(AppendLogLockedError, match="already in use"):
        await second.get("k")
    await first.close()
    assert await second.get("k") == b"v"  # free once the first one closed
    await second.close()


async def test_nothing_touches_the_disk_before_first_use(tmp_path: Path) -> None:
    path = tmp_path / "not-yet" / "kv.aof"
    kv = open_kv(f"memory://{path}", "svc")
    assert not path.parent.exists()
    await kv.ping()
    assert path.exists()
    await kv.close()


async def test_a_rewrite_left_by_a_crash_mid_compaction_is_removed(tmp_path: Path) -> None:
    path = tmp_path / "kv.aof"
    kv = store(path)
    await kv.set("k", "v")
    await kv.close()
    (tmp_path / ".kv.aof.abc123.rewrite").write_bytes(b'{"op":"put","k":"half"')
    again = store(path)
    assert await again.get("k") == b"v"
    assert listing(tmp_path) == ["kv.aof"]
    await again.close()


async def test_a_closed_durable_store_refuses_further_use(tmp_path: Path) -> None:
    kv = store(tmp_path / "kv.aof")
    await kv.set("k", "v")
    await kv.close()
    with pytest.raises(RuntimeError, match="closed"):
        await kv.get("k")


async def test_memory_without_a_path_writes_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    kv = open_kv("memory://", "svc")
    await kv.set("k", "v")
    await kv.hset("h", {"f": "v"})
    await kv.close()
    assert listing(tmp_path) == []
    assert await open_kv("memory://", "svc").get("k") is None  # nothing carried over


async def test_failed_set_if_absent_and_no_op_writes_add_no_record(tmp_path: Path) -> None:
    path = tmp_path / "kv.aof"
    kv = store(path)
    await kv.set("k", "v")
    await kv.sadd("s", "a")
    before = path.read_bytes()
    assert not await kv.set_if_absent("k", "other")
    assert await kv.delete("missing") == 0
    assert await kv.sadd("s", "a") == 0
    assert await kv.srem("s", "zzz") == 0
    assert await kv.hdel("missing", "f") == 0
    assert not await kv.expire("missing", 10)
    assert path.read_bytes() == before
    await kv.close()


CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from emporium.chassis.kv.memory import MemoryKeyValueStore

    async def main() -> None:
        # A small threshold, so the kill may also land in (or after) a compaction.
        kv = MemoryKeyValueStore("crash", path=sys.argv[1], compact_min_records=100)
        i = 0
        while True:  # until killed; never closes the store
            await kv.set(f"k{i}", str(i))
            await kv.incr("count")
            await kv.hset("h", {f"f{i}": str(i)})
            await kv.sadd("s", f"m{i}")
            await kv.zincrby("z", "p", 1)
            print(i, flush=True)  # every write of round i has returned
            i += 1

    asyncio.run(main())
    """
)


def test_every_write_that_returned_survives_a_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "kv.aof"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    acked = -1
    try:
        for line in child.stdout:
            acked = int(line)
            if acked >= 300:
                break
        os.kill(child.pid, signal.SIGKILL)
        acked = max([acked, *(int(line) for line in child.stdout)])  # acks already in the pipe
    finally:
        child.kill()
        child.wait()
        assert child.stderr is not None
        stderr = child.stderr.read()
        child.stdout.close()
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL, stderr
    assert acked >= 300, stderr

    async def check() -> None:
        kv = open_kv(f"memory://{path}", "crash")
        for i in range(acked + 1):
            assert await kv.get(f"k{i}") == str(i).encode(), i
        count = int(await kv.get("count") or b"0")
        assert acked + 1 <= count <= acked + 2  # round acked+1 may have got half way
        fields = await kv.hgetall("h")
        assert {f"f{i}" for i in range(acked + 1)} <= set(fields)
        assert {f"m{i}" for i in range(acked + 1)} <= await kv.smembers("s")
        score = await kv.zscore("z", "p")
        assert score is not None
        assert acked + 1 <= score <= acked + 2
        await kv.close()

    asyncio.run(check())


async def test_a_slow_disk_write_does_not_hold_up_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The write blocks until another coroutine releases it: on the event loop that would
    deadlock (until the 10 s safety valve), off it the other coroutine runs meanwhile. What is
    checked is the order of events, not how long anything took."""
    kv = store(tmp_path / "kv.aof")
    await kv.ping()  # opened before the disk turns slow
    original = AppendLog._write_all
    events: list[str] = []
    writing, release = threading.Event(), threading.Event()

    def slow_write_all(fd: int, data: bytes) -> None:
        events.append("write started")
        writing.set()
        events.append("released" if release.wait(10) else "timed out")
        original(fd, data)
        events.append("write finished")

    monkeypatch.setattr(AppendLog, "_write_all", staticmethod(slow_write_all))

    async def another_coroutine() -> None:
        await asyncio.to_thread(writing.wait, 10)
        events.append("another coroutine ran")
        release.set()

    async def write() -> None:
        await kv.set("k", "v")
        events.append("set returned")

    await asyncio.gather(write(), another_coroutine())

    assert events == [
        "write started",
        "another coroutine ran",
        "released",
        "write finished",
        "set returned",  # and only then: what returned is in the file
    ]
    assert records(tmp_path / "kv.aof")[-1]["k"] == "k"
    await kv.close()


async def test_writes_queued_together_go_to_the_file_in_order_in_one_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "kv.aof"
    kv = store(path)
    await kv.ping()
    original = AppendLog._write_all
    writes: list[int] = []
    all_queued = threading.Event()

    def counting_write_all(fd: int, data: bytes) -> None:
        all_queued.wait(10)  # the first write waits until every set has queued its line
        writes.append(data.count(b"\n"))
        original(fd, data)

    monkeypatch.setattr(AppendLog, "_write_all", staticmethod(counting_write_all))
    sets = [asyncio.create_task(kv.set(f"k{i}", str(i))) for i in range(50)]
    await asyncio.sleep(0)  # each set runs up to its wait for the file
    all_queued.set()
    await asyncio.gather(*sets)

    assert [r["k"] for r in records(path)] == [f"k{i}" for i in range(50)]
    assert sum(writes) == 50
    assert len(writes) <= 2  # what queued while a write was under way went out in one more
    await kv.close()


async def test_a_failed_write_fails_its_operation_and_leaves_no_half_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "kv.aof"
    kv = store(path)
    await kv.set("before", "1")
    original = AppendLog._write_all

    def disk_full_halfway(fd: int, data: bytes) -> None:
        os.write(fd, data[: len(data) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(AppendLog, "_write_all", staticmethod(disk_full_halfway))
    with pytest.raises(OSError, match="No space left"):
        await kv.set("lost", "2")
    monkeypatch.setattr(AppendLog, "_write_all", staticmethod(original))
    await kv.set("after", "3")  # the disk has room again
    await kv.close()

    assert [r["k"] for r in records(path)] == ["before", "after"]  # the half line is gone
    again = store(path)
    assert await again.get("before") == b"1"
    assert await again.get("after") == b"3"
    await again.close()
