"""REST round trips through the gateway: prints requests/s and p50/p99; asserts nothing.

    python bench/rest_roundtrip.py [--start] [--requests 2000] [--concurrency 16]

`/healthz` measures the gateway alone; `/api/v1/health` goes gateway -> gRPC health check of
all eleven backends -> back, so it is one REST call fanning out to eleven gRPC round trips.
Without `--start`, a platform must already run (`make up`).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import machine, platform_running, report


async def hammer(
    client: httpx.AsyncClient, path: str, total: int, concurrency: int, quiet: bool = False
) -> None:
    latencies: list[float] = []
    remaining = total

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            began = time.perf_counter()
            response = await client.get(path)
            response.raise_for_status()
            latencies.append(time.perf_counter() - began)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    if not quiet:
        report(f"REST GET {path} (c={concurrency})", total, time.perf_counter() - began, latencies)


async def main_async(args: argparse.Namespace) -> None:
    limits = httpx.Limits(max_connections=args.concurrency)
    async with httpx.AsyncClient(base_url=args.gateway, limits=limits, timeout=10) as client:
        for path in ("/healthz", "/api/v1/health"):
            await hammer(client, path, args.requests // 10, args.concurrency, quiet=True)
            await hammer(client, path, args.requests, args.concurrency)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gateway", default="http://127.0.0.1:8080")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--start", action="store_true", help="start the platform first")
    args = parser.parse_args()
    print(f"# REST round trip via the gateway on {machine()}")
    with platform_running(args.gateway, args.start):
        asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
