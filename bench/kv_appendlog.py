"""The durable embedded kv (`memory:///path.aof`): write throughput, and how long the event
loop stalls while it writes (the append-only file is written by a thread off the loop).

A ticker coroutine sleeps 1 ms in a loop and records how late it wakes; meanwhile N writer
coroutines do `set` on the store. `--slow-disk-ms` makes every write to the file take that
long (a `time.sleep` inside it), standing in for a disk that stalls: a write on the loop
would delay the ticker by that much each time, a write off the loop not at all.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from _util import machine, percentile
from emporium.chassis.kv.appendlog import AppendLog
from emporium.chassis.kv.memory import MemoryKeyValueStore


async def ticker(stop: asyncio.Event, lags: list[float]) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        await asyncio.sleep(0.001)
        lags.append(time.perf_counter() - started - 0.001)


async def run(writers: int, ops: int, directory: Path) -> None:
    kv = MemoryKeyValueStore("bench", path=directory / "bench.aof")
    await kv.ping()
    stop, lags = asyncio.Event(), []
    tick = asyncio.create_task(ticker(stop, lags))

    async def writer(w: int) -> None:
        for i in range(ops // writers):
            await kv.set(f"k{w}:{i % 500}", "x" * 64)

    started = time.perf_counter()
    await asyncio.gather(*(writer(w) for w in range(writers)))
    seconds = time.perf_counter() - started
    stop.set()
    await tick
    await kv.close()
    ms = [x * 1000 for x in lags]
    print(
        f"{writers:>3} writers  {ops / seconds:>9.0f} sets/s   loop lag p50 "
        f"{percentile(ms, 50):6.2f} ms  p99 {percentile(ms, 99):6.2f} ms  "
        f"max {max(ms):7.2f} ms",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ops", type=int, default=20_000)
    parser.add_argument("--slow-disk-ms", type=float, default=0.0)
    args = parser.parse_args()
    if args.slow_disk_ms:
        original = AppendLog._write_all

        def slow(fd: int, data: bytes) -> None:
            time.sleep(args.slow_disk_ms / 1000)
            original(fd, data)

        AppendLog._write_all = staticmethod(slow)  # type: ignore[method-assign]
    print(f"# kv append-only file, {machine()}, slow disk {args.slow_disk_ms} ms per write")
    for writers in (1, 16):
        with tempfile.TemporaryDirectory() as tmp:
            asyncio.run(run(writers, args.ops if not args.slow_disk_ms else 400, Path(tmp)))


if __name__ == "__main__":
    main()
