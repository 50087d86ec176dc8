"""gRPC unary round trips through the chassis server and client interceptors, in process.

    python bench/grpc_roundtrip.py [--seconds 5] [--concurrency 16] [--payload 256]

Starts a grpc.aio server made by `create_server` (identity, tracing, metrics, error mapping)
on loopback and runs N concurrent callers through one `create_channel` channel (deadline,
metadata, retry policy, circuit breaker, client metrics) for a fixed time. Prints one JSON
line and one human line; asserts nothing. Compare `--plain` (raw grpc.aio, no interceptors)
to see what the chassis costs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import machine, percentile, report
from emporium.chassis.rpc.client import create_channel
from emporium.chassis.rpc.identity import Caller, acting_as
from emporium.chassis.rpc.server import create_server
from emporium.chassis.tracing import configure_tracing

METHOD = "/bench.Echo/Echo"


async def echo(request: bytes, context: Any) -> bytes:
    return request


async def start(plain: bool) -> tuple[Any, str]:
    server = grpc.aio.server() if plain else create_server("bench")
    handler = grpc.unary_unary_rpc_method_handler(echo)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("bench.Echo", {"Echo": handler}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


async def run(args: argparse.Namespace) -> dict[str, Any]:
    configure_tracing("bench")  # real provider, no exporter: ids are generated as in prod
    server, target = await start(args.plain)
    channel = (
        grpc.aio.insecure_channel(target)
        if args.plain
        else create_channel(target, service="bench", idempotent={METHOD})
    )
    stub = channel.unary_unary(METHOD)
    payload = b"x" * args.payload
    latencies: list[float] = []

    async def caller(until: float) -> None:
        with acting_as(Caller("bench-user", frozenset({"customer"}))):
            while time.perf_counter() < until:
                began = time.perf_counter()
                await stub(payload, timeout=5)
                latencies.append(time.perf_counter() - began)

    try:
        warmup = time.perf_counter() + min(1.0, args.seconds / 5)
        await asyncio.gather(*(caller(warmup) for _ in range(args.concurrency)))
        latencies.clear()
        began = time.perf_counter()
        until = began + args.seconds
        await asyncio.gather(*(caller(until) for _ in range(args.concurrency)))
        elapsed = time.perf_counter() - began
    finally:
        await channel.close()
        await server.stop(None)
    ms = [x * 1000 for x in latencies]
    return {
        "bench": "grpc_roundtrip",
        "variant": "plain" if args.plain else "chassis",
        "concurrency": args.concurrency,
        "seconds": round(elapsed, 3),
        "requests": len(latencies),
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(percentile(ms, 50), 3),
        "p99_ms": round(percentile(ms, 99), 3),
        "elapsed": elapsed,
        "latencies": latencies,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--payload", type=int, default=256, help="request bytes")
    parser.add_argument("--plain", action="store_true", help="raw grpc.aio, no interceptors")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    latencies, elapsed = result.pop("latencies"), result.pop("elapsed")
    print(json.dumps(result), flush=True)
    print(f"# gRPC round trip in process on {machine()}")
    name = f"gRPC unary {result['variant']} (c={args.concurrency})"
    report(name, result["requests"], elapsed, latencies)


if __name__ == "__main__":
    main()
