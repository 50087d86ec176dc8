"""The platform's primitives, priced in CPU per operation on this machine: the floor a
checkout cannot go below whatever the services do around them.

    python bench/floor.py [--ops 2000]

- `grpc`: one bare unary round trip (grpc.aio server and client in one process, no
  interceptors): both sides of one call the services handle;
- `http`: the server side of one bare ASGI request (a one-route Starlette app on uvicorn in
  a child process, priced by its own CPU accounting; the client is not the platform's);
- `commit`: one SQLite WAL transaction with one row (synchronous=NORMAL, as the embedded
  profile runs it), and, when `EMPORIUM_TEST_POSTGRES_URL` is set, one PostgreSQL commit
  with asyncpg;
- `publish` / `consume`: one event through the embedded log bus (`chassis.bus`), published
  alone and consumed with a commit.
CPU is `time.process_time()` around N operations (for gRPC client and server share the
process: both ends of a call between two services). `bench/load.py` multiplies these by what a
checkout asks of each service (its counters) to show actual/floor per service.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import machine
from emporium.chassis.bus.base import Message
from emporium.chassis.bus.factory import open_bus

METHOD = "/bench.Echo/Echo"


async def cpu_ms_per_op(ops: int, one: Callable[[], Awaitable[Any]]) -> float:
    for _ in range(min(100, ops)):  # warm-up: connections, caches, JIT-free but lazy imports
        await one()
    began = time.process_time()
    for _ in range(ops):
        await one()
    return (time.process_time() - began) * 1000 / ops


async def grpc_round_trip(ops: int) -> float:
    async def echo(request: bytes, context: Any) -> bytes:
        return request

    server = grpc.aio.server()
    handler = grpc.unary_unary_rpc_method_handler(echo)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("bench.Echo", {"Echo": handler}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    stub = channel.unary_unary(METHOD)
    try:
        return await cpu_ms_per_op(ops, lambda: stub(b"x" * 256, timeout=5))
    finally:
        await channel.close()
        await server.stop(None)


ASGI_SERVER = """
import sys, uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
async def ok(request):
    return JSONResponse({"status": "ok"})
app = Starlette(routes=[Route("/", ok)])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", lifespan="off")
"""


async def asgi_request(ops: int) -> float:
    """Server side only (the client is the shopper, not the platform): uvicorn and a bare
    Starlette route in a child process, priced by that process's own CPU accounting; the
    client writes raw keep-alive HTTP/1.1 so it stays out of the way."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = await asyncio.create_subprocess_exec(sys.executable, "-c", ASGI_SERVER, str(port))
    try:
        for _ in range(200):
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                break
            except OSError:
                await asyncio.sleep(0.05)
        else:
            raise SystemExit("the bare ASGI server did not start")
        request = b"GET / HTTP/1.1\r\nHost: floor\r\n\r\n"

        async def one() -> None:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            await reader.readexactly(length)

        for _ in range(100):
            await one()
        before = process_cpu_seconds(server.pid)
        for _ in range(ops):
            await one()
        used = process_cpu_seconds(server.pid) - before
        writer.close()
        return used * 1000 / ops
    finally:
        server.terminate()
        await asyncio.wait_for(server.wait(), timeout=10)


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of another process (fields 14 and 15 of /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def sqlite_commit(ops: int, directory: Path) -> float:
    db = sqlite3.connect(directory / "floor.sqlite3", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE t (id TEXT PRIMARY KEY, body TEXT)")

    async def one() -> None:
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO t VALUES (?, ?)", (uuid.uuid4().hex, "x" * 200))
        db.execute("COMMIT")

    try:
        return await cpu_ms_per_op(ops, one)
    finally:
        db.close()


async def postgres_commit(ops: int, url: str) -> float:
    import asyncpg  # production adapter's driver; only when a server is given

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    table = f"floor_{uuid.uuid4().hex[:8]}"
    await conn.execute(f"CREATE TABLE {table} (id TEXT PRIMARY KEY, body TEXT)")

    async def one() -> None:
        async with conn.transaction():
            await conn.execute(f"INSERT INTO {table} VALUES ($1, $2)", uuid.uuid4().hex, "x" * 200)

    try:
        return await cpu_ms_per_op(ops, one)
    finally:
        await conn.execute(f"DROP TABLE {table}")
        await conn.close()


async def bus_publish_consume(ops: int, directory: Path) -> tuple[float, float]:
    bus = open_bus(f"embedded://{directory}/bus.sqlite3", client_id="floor")
    await bus.start()
    topic = "floor.events"
    payload = b'{"order_id": "0000", "total_minor": 1250}'
    counter = iter(range(10**9))

    def message() -> Message:
        n = next(counter)
        return Message(topic, f"k-{n % 64}", payload, (("ce_id", str(n).encode()),))

    try:
        publish = await cpu_ms_per_op(ops, lambda: bus.publish([message()]))
        total = next(counter)  # every message published so far, warm-up included
        consumer = bus.consumer("floor", [topic])
        await consumer.start()
        seen = 0
        began = time.process_time()
        while seen < total:
            got = await consumer.fetch(max_records=1, timeout=0.5)
            for delivery in got:
                await consumer.commit(delivery)
            seen += len(got)
        consume = (time.process_time() - began) * 1000 / max(seen, 1)
        await consumer.stop()
        return publish, consume
    finally:
        await bus.close()


async def measure(ops: int) -> dict[str, float]:
    """CPU ms per operation: grpc, http, commit, publish, consume (and pg_commit)."""
    with tempfile.TemporaryDirectory(prefix="emporium-floor-") as tmp:
        directory = Path(tmp)
        costs = {
            "grpc": await grpc_round_trip(ops),
            "http": await asgi_request(ops),
            "commit": await sqlite_commit(ops, directory),
        }
        costs["publish"], costs["consume"] = await bus_publish_consume(ops // 4, directory)
    if url := os.environ.get("EMPORIUM_TEST_POSTGRES_URL"):
        costs["pg_commit"] = await postgres_commit(ops, url)
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ops", type=int, default=2000)
    args = parser.parse_args()
    costs = asyncio.run(measure(args.ops))
    print(f"# the platform's primitives, CPU per operation, on {machine()}")
    for name, ms in costs.items():
        print(f"{name:<10} {ms * 1000:>9.1f} µs CPU per operation")
    print(json.dumps({"bench": "floor", **{f"{k}_ms": v for k, v in costs.items()}}))


if __name__ == "__main__":
    main()
