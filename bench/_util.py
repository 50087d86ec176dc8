"""Small helpers shared by the benchmark scripts: percentiles and a platform launcher."""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by nearest rank; samples need not be sorted."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def report(name: str, count: int, seconds: float, latencies_s: Sequence[float]) -> None:
    ms = [x * 1000 for x in latencies_s]
    print(
        f"{name:<44} {count / seconds:>9.0f} req/s   p50 {percentile(ms, 50):7.2f} ms   "
        f"p99 {percentile(ms, 99):7.2f} ms   (n={count})",
        flush=True,
    )


@contextlib.contextmanager
def platform_running(
    gateway: str, start: bool, admin_password: str = "bench-admin-password-0123"
) -> Iterator[Path | None]:
    """Use a running platform (yields None), or start one (`emporium up --no-demo`) in a
    temporary data dir with `admin_password` for the administrator (yields that data dir:
    its `run/*.pid` files name the processes, for CPU accounting)."""
    if not start:
        yield None
        return
    tmp = tempfile.mkdtemp(prefix="emporium-bench-")
    env = {
        **os.environ,
        "EMPORIUM_DATA_DIR": f"{tmp}/var",
        "EMPORIUM_ADMIN_PASSWORD": admin_password,
        # Every simulated shopper comes from one address: the per-client limit would
        # answer most of the load with 429 and measure the limiter instead of the shop.
        "EMPORIUM_GATEWAY_RATE_LIMIT": "100000",
        "EMPORIUM_GATEWAY_RATE_BURST": "100000",
        # ... and so would the per-address login budget: the generator plays the ingress and
        # names each shopper's own address in X-Forwarded-For (load.py's shopper_address).
        "EMPORIUM_GATEWAY_TRUSTED_PROXIES": "127.0.0.1/32",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "emporium", "up", "--no-demo", "--data-dir", f"{tmp}/var"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{gateway}/api/v1/health", timeout=2).status_code == 200:
                    break
            time.sleep(0.5)
        else:
            raise SystemExit("platform did not become healthy")
        yield Path(f"{tmp}/var")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)


async def search_lag_seconds(
    client: httpx.AsyncClient, admin: dict[str, str], poll: float = 0.02
) -> tuple[str, float]:
    """A product created now (as the admin): its unique word, and the seconds until search
    finds it."""
    word = uuid.uuid4().hex[:10]
    body = {
        "sku": f"LAG-{word}",
        "name": f"Lagprobe {word}",
        "description": "probe",
        "category": "probe",
        "price_minor": 100,
        "currency": "USD",
    }
    began = time.perf_counter()
    (await client.post("/api/v1/products", json=body, headers=admin)).raise_for_status()
    while not (await client.get("/api/v1/search", params={"q": word})).json()["items"]:
        await asyncio.sleep(poll)
    return word, time.perf_counter() - began
