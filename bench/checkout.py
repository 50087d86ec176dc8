"""N concurrent shoppers browse, search and buy through the gateway; prints checkouts/s and
p50/p95/p99 per endpoint next to the seed's SLOs. Asserts nothing. With `--prometheus URL` (a
Prometheus scraping the platform, `make observe`) it also prints `emporium slo`'s table over the
run's own window.

    python bench/checkout.py [--start] [--shoppers 8] [--seconds 30]

With `--start` a platform is started in a temporary directory (no demo catalog) and the
script seeds its own catalog (as the administrator); without it, a running platform is used
and EMPORIUM_ADMIN_PASSWORD must be the administrator's password.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx

from emporium.observability import report

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import machine, percentile, platform_running, search_lag_seconds

ADMIN_PASSWORD = "bench-admin-password-0123"
# p99 objectives from the seed's SLO table, per endpoint family (milliseconds).
SLO_P99_MS = {"orders": 500.0, "search": 300.0, "products": 200.0, "health": 200.0}
PRODUCTS = 20
STOCK = 1_000_000


class Timings:
    """Latencies per endpoint label, plus failures."""

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, int] = defaultdict(int)
        self.statuses: dict[str, int] = defaultdict(int)

    async def call(self, label: str, request: Any) -> httpx.Response | None:
        began = time.perf_counter()
        try:
            response: httpx.Response = await request
        except httpx.HTTPError as exc:
            self.errors[label] += 1
            self.statuses[f"{label} {type(exc).__name__}"] += 1
            return None
        self.samples[label].append(time.perf_counter() - began)
        if response.status_code >= 400:
            self.errors[label] += 1
            self.statuses[f"{label} {response.status_code}"] += 1
        return response


async def seed_catalog(client: httpx.AsyncClient, password: str) -> list[str]:
    login = await client.post(
        "/api/v1/auth/login", json={"email": "admin@emporium.local", "password": password}
    )
    login.raise_for_status()
    admin = {"Authorization": f"Bearer {login.json()['access_token']}"}
    run = uuid.uuid4().hex[:6]
    ids = []
    for n in range(PRODUCTS):
        body = {
            "sku": f"BENCH-{run}-{n}",
            "name": f"Bench Gadget {n} {run}",
            "description": "a gadget for the checkout benchmark",
            "category": f"bench{n % 4}",
            "price_minor": 1000 + n,
            "currency": "USD",
        }
        created = await client.post("/api/v1/products", json=body, headers=admin)
        created.raise_for_status()
        ids.append(created.json()["id"])
        stock = {"on_hand": STOCK}
        put = await client.put(f"/api/v1/inventory/{body['sku']}", json=stock, headers=admin)
        put.raise_for_status()
    return ids


async def shopper(
    client: httpx.AsyncClient, timings: Timings, products: list[str], until: float, seed: int
) -> int:
    rng = random.Random(seed)
    email, password = f"bench-{uuid.uuid4().hex[:10]}@example.com", "bench password 123"
    await client.post(
        "/api/v1/auth/register", json={"email": email, "password": password, "name": "Bench"}
    )
    login = await client.post("/api/v1/auth/login", json={"email": email, "password": password})
    login.raise_for_status()
    auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
    address = {"line1": "1 Bench Rd", "city": "Testville", "postal_code": "12345", "country": "US"}
    checkouts = 0
    while time.monotonic() < until:
        await timings.call("GET /api/v1/products", client.get("/api/v1/products"))
        await timings.call(
            "GET /api/v1/search", client.get("/api/v1/search", params={"q": "bench gadget"})
        )
        product = rng.choice(products)
        await timings.call("GET /api/v1/products/{id}", client.get(f"/api/v1/products/{product}"))
        body = {
            "items": [{"product_id": product, "quantity": rng.randint(1, 3)}],
            "payment_token": "tok_visa",
            "shipping_address": address,
        }
        headers = {**auth, "Idempotency-Key": uuid.uuid4().hex}
        placed = await timings.call(
            "POST /api/v1/orders", client.post("/api/v1/orders", json=body, headers=headers)
        )
        if placed is not None and placed.status_code in (201, 202):
            checkouts += 1
    return checkouts


async def catch_up_seconds(client: httpx.AsyncClient, password: str) -> dict[str, float]:
    """How long the eventually consistent views take to reflect a change (issue: < 2 s):
    a new product in search, and a new user's welcome notification."""
    login = await client.post(
        "/api/v1/auth/login", json={"email": "admin@emporium.local", "password": password}
    )
    admin = {"Authorization": f"Bearer {login.json()['access_token']}"}
    word, search_lag = await search_lag_seconds(client, admin)
    email, secret = f"lag-{word}@example.com", "lag probe password"
    began = time.perf_counter()
    await client.post(
        "/api/v1/auth/register", json={"email": email, "password": secret, "name": "Lag"}
    )
    token = (
        await client.post("/api/v1/auth/login", json={"email": email, "password": secret})
    ).json()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    while not (await client.get("/api/v1/notifications", headers=auth)).json()["items"]:
        await asyncio.sleep(0.02)
    return {"search_catch_up_s": search_lag, "notification_catch_up_s": time.perf_counter() - began}


def slo_for(label: str) -> float:
    for family, slo in SLO_P99_MS.items():
        if family in label:
            return slo
    return float("nan")


async def main_async(args: argparse.Namespace) -> float:
    """Run the shoppers and print their numbers; the run's seconds."""
    limits = httpx.Limits(max_connections=args.shoppers * 2)
    async with httpx.AsyncClient(base_url=args.gateway, limits=limits, timeout=30) as client:
        products = await seed_catalog(client, args.admin_password)
        lags = await catch_up_seconds(client, args.admin_password)
        print(
            f"catch-up (idle platform): search {lags['search_catch_up_s'] * 1000:.0f} ms, "
            f"welcome notification {lags['notification_catch_up_s'] * 1000:.0f} ms"
        )
        print(json.dumps({"bench": "checkout", **lags}))
        timings = Timings()
        began = time.monotonic()
        until = began + args.seconds
        done = await asyncio.gather(
            *(shopper(client, timings, products, until, seed) for seed in range(args.shoppers))
        )
        elapsed = time.monotonic() - began
    total = sum(done)
    print(f"checkouts: {total} in {elapsed:.1f}s = {total / elapsed:.1f} checkouts/s")
    print(
        f"{'endpoint':<30}{'n':>7}{'err':>6}"
        f"{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}{'SLO p99':>10}"
    )
    for label, samples in sorted(timings.samples.items()):
        ms = [s * 1000 for s in samples]
        p50, p95, p99 = (percentile(ms, q) for q in (50, 95, 99))
        print(
            f"{label:<30}{len(ms):>7}{timings.errors[label]:>6}{p50:>10.1f}{p95:>10.1f}"
            f"{p99:>10.1f}{slo_for(label):>10.0f}"
        )
        record = {
            "bench": "checkout",
            "endpoint": label,
            "n": len(ms),
            "p50_ms": p50,
            "p95_ms": p95,
            "p99_ms": p99,
            "slo_p99_ms": slo_for(label),
            "errors": timings.errors[label],
            "shoppers": args.shoppers,
        }
        print(json.dumps(record))
    if timings.statuses:
        print("error answers:", dict(sorted(timings.statuses.items())))
    print(
        json.dumps(
            {
                "bench": "checkout",
                "checkouts_per_s": total / elapsed,
                "shoppers": args.shoppers,
                "seconds": elapsed,
            }
        )
    )
    return elapsed


def slo_table(prometheus: str, elapsed: float, scrape_seconds: float) -> None:
    """The SLO table over this run: wait for Prometheus to scrape the run's last requests
    (two scrape intervals), then measure over the run."""
    time.sleep(2 * scrape_seconds)
    window = f"{int(elapsed + 2 * scrape_seconds) + 1}s"
    print(report.format_table(report.measure(prometheus, window), window))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gateway", default="http://127.0.0.1:8080")
    parser.add_argument("--shoppers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--start", action="store_true", help="start the platform first")
    parser.add_argument(
        "--prometheus", default=None, help="a Prometheus scraping the platform: print the SLOs"
    )
    parser.add_argument(
        "--scrape-seconds", type=float, default=15.0, help="its scrape interval (default 15)"
    )
    parser.add_argument(
        "--admin-password", default=os.environ.get("EMPORIUM_ADMIN_PASSWORD", ADMIN_PASSWORD)
    )
    args = parser.parse_args()
    print(f"# checkout benchmark on {machine()}: {args.shoppers} shoppers, {args.seconds:.0f}s")
    with platform_running(args.gateway, args.start, args.admin_password):
        elapsed = asyncio.run(main_async(args))
        if args.prometheus:
            slo_table(args.prometheus, elapsed, args.scrape_seconds)


if __name__ == "__main__":
    main()
