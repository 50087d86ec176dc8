"""Open-loop load: Poisson arrivals at a fixed rate, each arrival its own session, so a slow
answer never slows the offered load (a closed loop, like `checkout.py`, would hide a slow
platform behind fewer requests). Prints p50/p95/p99/p99.9 and the error rate per endpoint
next to the seed's SLO table, the generator's own CPU, the platform's CPU per checkout and
memory per process, and how far the eventually consistent views lag. Asserts nothing.

    python bench/load.py --start --rate 20 --seconds 60
    python bench/load.py --start --find-max --hold 60

`--rate` counts checkouts per second. The mix (per checkout arrival, each its own session):
- a checkout session: product list, search, a product page with its recommendations, the
  order (a returning shopper's token, a fresh `Idempotency-Key`) and one read of it;
- `--browse-ratio` (default 1) browse sessions: a category page, two product pages and the
  recommendations of one, without buying;
- `--login-ratio` (default 0.1) sign-ins: most shoppers come back with a session; a sign-in
  runs argon2id (64 MiB, deliberately about 60-100 ms of CPU), so it is priced separately.
Why this mix and not a shop's real 2-3 % conversion: the issue's bar is checkouts per second
with their browsing around them; reads are cheap, cacheable and scale out apart from the
checkout path, which is where the saga, the outbox and the money are.

`--find-max` raises the rate (doubling, then bisecting to 10 %) and holds each step for
`--hold` seconds; a step passes when every endpoint's p99 is inside its SLO and its error
rate inside the seed's budget. The answer is the highest passing rate.

`--workers N` splits the arrivals over N generator processes (each a Poisson stream of
rate/N, so their sum is Poisson at the full rate); their CPU is reported apart, since the
generator shares the two cores with the platform. With `--start` the platform is started by
`emporium up --no-demo` in a temporary directory, with the profile the environment selects
(for the production profile export the `EMPORIUM_*` URLs `.ci/backends.sh start` prints).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing
import os
import random
import resource
import sys
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from prometheus_client.parser import text_string_to_metric_families

from _util import machine, percentile, platform_running, search_lag_seconds
from emporium.chassis.catalog import SERVICES
from floor import measure as measure_floor

ADMIN_EMAIL = "admin@emporium.local"
ADMIN_PASSWORD = "bench-admin-password-0123"
SHOPPER_PASSWORD = "bench load password 123"
ADDRESS = {"line1": "1 Bench Rd", "city": "Testville", "postal_code": "12345", "country": "US"}
PRODUCTS = 40
CATEGORIES = 8
STOCK = 10_000_000
WARMUP_SECONDS = 5.0
IDLE_SECONDS = 5.0  # the platform's own idle CPU (pollers, timers), measured before a step
PROBE_ORDERS = "order: placed to PAID"


@dataclass(frozen=True)
class Objective:
    """One row of the seed's SLO table: the owning service, p99 and error budget."""

    service: str
    p99_ms: float
    error_budget: float


GATEWAY = Objective("api-gateway", 200.0, 0.001)
ORDER = Objective("order", 500.0, 0.005)
SEARCH = Objective("search", 300.0, 0.01)
# A sign-in is argon2id by design (API.md); the seed's table has no row for it: the
# gateway's error budget applies, its latency is reported, not judged.
LOGIN = Objective("auth", math.inf, 0.001)
OBJECTIVES = {
    "GET /products": GATEWAY,
    "GET /products/{id}": GATEWAY,
    "GET /recommendations": GATEWAY,
    "GET /search": SEARCH,
    "POST /orders": ORDER,
    "GET /orders/{id}": ORDER,
    "POST /auth/login": LOGIN,
}


@dataclass
class Fixture:
    """What every generator process needs: the catalog and signed-in shoppers."""

    gateway: str
    products: list[str]
    categories: list[str]
    shoppers: list[tuple[str, str]]  # (email, access token)


@dataclass
class Samples:
    """One generator's measurements (picklable, merged by the parent)."""

    latencies_ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    answers: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    start_lag_ms: list[float] = field(default_factory=list)
    checkouts: int = 0
    placed: int = 0  # every 201/202, warm-up included (analytics counts them all)
    cpu_seconds: float = 0.0
    order_ids: list[str] = field(default_factory=list)

    def merge(self, other: Samples) -> None:
        for label, values in other.latencies_ms.items():
            self.latencies_ms[label].extend(values)
        for label, count in other.errors.items():
            self.errors[label] += count
        for label, count in other.answers.items():
            self.answers[label] += count
        self.start_lag_ms.extend(other.start_lag_ms)
        self.checkouts += other.checkouts
        self.placed += other.placed
        self.cpu_seconds += other.cpu_seconds
        self.order_ids.extend(other.order_ids)


class Session:
    """One arrival's requests, timed; a sample counts only after the warm-up."""

    def __init__(self, client: httpx.AsyncClient, samples: Samples, counted: bool) -> None:
        self.client = client
        self.samples = samples
        self.counted = counted

    async def call(self, label: str, method: str, url: str, **kw: Any) -> httpx.Response | None:
        began = time.perf_counter()
        try:
            response = await self.client.request(method, url, **kw)
        except httpx.HTTPError as exc:
            if self.counted:
                self.samples.errors[label] += 1
                self.samples.answers[f"{label} {type(exc).__name__}"] += 1
            return None
        if self.counted:
            self.samples.latencies_ms[label].append((time.perf_counter() - began) * 1000)
            if response.status_code >= 400:
                self.samples.errors[label] += 1
                self.samples.answers[f"{label} {response.status_code}"] += 1
        return response


async def checkout(s: Session, fx: Fixture, rng: random.Random) -> None:
    _, token = rng.choice(fx.shoppers)
    auth = {"Authorization": f"Bearer {token}"}
    await s.call("GET /products", "GET", "/api/v1/products")
    await s.call("GET /search", "GET", "/api/v1/search", params={"q": "load gadget"})
    product = rng.choice(fx.products)
    await s.call("GET /products/{id}", "GET", f"/api/v1/products/{product}")
    await s.call(
        "GET /recommendations", "GET", "/api/v1/recommendations", params={"product_id": product}
    )
    body = {
        "items": [{"product_id": product, "quantity": rng.randint(1, 2)}],
        "payment_token": "tok_visa",
        "shipping_address": ADDRESS,
    }
    headers = {**auth, "Idempotency-Key": uuid.uuid4().hex}
    placed = await s.call("POST /orders", "POST", "/api/v1/orders", json=body, headers=headers)
    if placed is None or placed.status_code not in (201, 202):
        return
    order_id = placed.json()["id"]
    s.samples.placed += 1
    if s.counted:
        s.samples.checkouts += 1
        s.samples.order_ids.append(order_id)
    await s.call("GET /orders/{id}", "GET", f"/api/v1/orders/{order_id}", headers=auth)


async def browse(s: Session, fx: Fixture, rng: random.Random) -> None:
    category = rng.choice(fx.categories)
    await s.call("GET /products", "GET", "/api/v1/products", params={"category": category})
    first, second = rng.sample(fx.products, 2)
    await s.call("GET /products/{id}", "GET", f"/api/v1/products/{first}")
    await s.call(
        "GET /recommendations", "GET", "/api/v1/recommendations", params={"product_id": first}
    )
    await s.call("GET /products/{id}", "GET", f"/api/v1/products/{second}")


def shopper_address(n: int) -> dict[str, str]:
    """Shopper n's own client address, as the ingress in front of the gateway names it
    (`X-Forwarded-For`, trusted from loopback in a `--start` run): the gateway's login
    budget is per address, and real shoppers do not share one."""
    return {"X-Forwarded-For": f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"}


async def sign_in(s: Session, fx: Fixture, rng: random.Random) -> None:
    n = rng.randrange(len(fx.shoppers))
    await s.call(
        "POST /auth/login",
        "POST",
        "/api/v1/auth/login",
        json={"email": fx.shoppers[n][0], "password": SHOPPER_PASSWORD},
        headers=shopper_address(n),
    )


@dataclass(frozen=True)
class Offered:
    """One generator's share of the load."""

    rate: float  # checkouts per second
    browse_ratio: float
    login_ratio: float
    seconds: float
    seed: int


async def generate(fx: Fixture, offered: Offered) -> Samples:
    """Arrivals at exponential intervals on an absolute schedule: a late wake-up starts the
    due sessions at once (and records how late), it never stretches the schedule."""
    samples = Samples()
    rng = random.Random(offered.seed)
    kinds = [(checkout, offered.rate), (browse, offered.rate * offered.browse_ratio)]
    kinds.append((sign_in, offered.rate * offered.login_ratio))
    total = sum(rate for _, rate in kinds)
    journeys = [kind for kind, _ in kinds]
    weights = [rate for _, rate in kinds]
    limits = httpx.Limits(max_connections=512, max_keepalive_connections=256)
    timeout = httpx.Timeout(10.0)
    tasks: set[asyncio.Task[None]] = set()
    async with httpx.AsyncClient(base_url=fx.gateway, limits=limits, timeout=timeout) as client:
        began = time.monotonic()
        due = began
        end = began + offered.seconds
        while True:
            due += rng.expovariate(total)
            if due >= end:
                break
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            counted = due - began >= WARMUP_SECONDS
            if counted:
                samples.start_lag_ms.append(max(0.0, time.monotonic() - due) * 1000)
            journey = rng.choices(journeys, weights)[0]
            session = Session(client, samples, counted)
            task = asyncio.create_task(journey(session, fx, random.Random(rng.random())))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    samples.cpu_seconds = usage.ru_utime + usage.ru_stime
    return samples


def generator_process(fx: Fixture, offered: Offered) -> Samples:
    return asyncio.run(generate(fx, offered))


def offer(fx: Fixture, args: argparse.Namespace, rate: float, seconds: float) -> Samples:
    """Run `--workers` generator processes for `seconds` at `rate` checkouts/s in all."""
    shares = [
        Offered(rate / args.workers, args.browse_ratio, args.login_ratio, seconds, seed)
        for seed in range(args.workers)
    ]
    context = multiprocessing.get_context("spawn")
    with context.Pool(args.workers) as pool:
        results = pool.starmap(generator_process, [(fx, share) for share in shares])
    merged = Samples()
    for result in results:
        merged.merge(result)
    return merged


# ---------------------------------------------------------------- platform accounting


def service_pids(data_dir: Path | None) -> dict[str, int]:
    """The platform's processes by name, from the pid files `emporium up` writes."""
    if data_dir is None:
        return {}
    out = {}
    for pid_file in sorted((data_dir / "run").glob("*.pid")):
        try:
            out[pid_file.stem] = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            continue
    return out


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process (fields 14 and 15 of /proc/<pid>/stat)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return float("nan")
    fields = stat.rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_mib(pid: int) -> tuple[float, float]:
    """(RSS, PSS) of `pid` in MiB. RSS counts every shared page (the libraries all 13
    processes map) in each process; PSS divides a shared page among its sharers, so the sum
    of PSS is what the platform holds of the machine's memory."""
    rss = pss = float("nan")
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Rss:"):
                rss = int(line.split()[1]) / 1024
            elif line.startswith("Pss:"):
                pss = int(line.split()[1]) / 1024
    except OSError:
        pass
    return rss, pss


def platform_cpu(pids: dict[str, int]) -> dict[str, float]:
    return {name: cpu_seconds(pid) for name, pid in pids.items()}


# What a checkout asks of each service, from the services' own counters: calls handled,
# transactions committed, events written to the outbox and events consumed.
WORK_COUNTERS = {
    "emporium_rpc_requests": "rpc",
    "emporium_http_requests": "http",
    "emporium_db_commits": "commits",
    "emporium_outbox_published": "published",
    "emporium_events_consumed": "consumed",
}


def platform_work() -> dict[tuple[str, str], float]:
    """(service, kind) -> counter total, scraped from every service's /metrics."""
    out: dict[tuple[str, str], float] = defaultdict(float)
    for info in SERVICES:
        try:
            text = httpx.get(f"http://127.0.0.1:{info.http_port}/metrics", timeout=5).text
        except httpx.HTTPError:
            continue
        for family in text_string_to_metric_families(text):
            kind = WORK_COUNTERS.get(family.name)
            if kind is None:
                continue
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    if kind == "http" and sample.labels.get("route") in ("/metrics", "/healthz"):
                        continue
                    out[(info.name, kind)] += sample.value
    return out


# ---------------------------------------------------------------- set-up and views


async def admin_headers(client: httpx.AsyncClient, password: str) -> dict[str, str]:
    login = await client.post(
        "/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": password}
    )
    login.raise_for_status()
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


async def prepare(gateway: str, password: str, shoppers: int) -> Fixture:
    async with httpx.AsyncClient(base_url=gateway, timeout=30) as client:
        admin = await admin_headers(client, password)
        run = uuid.uuid4().hex[:6]
        categories = [f"load{n}-{run}" for n in range(CATEGORIES)]
        products = []
        for n in range(PRODUCTS):
            body = {
                "sku": f"LOAD-{run}-{n}",
                "name": f"Load Gadget {n} {run}",
                "description": "a gadget for the load benchmark",
                "category": categories[n % CATEGORIES],
                "price_minor": 1000 + n,
                "currency": "USD",
            }
            created = await client.post("/api/v1/products", json=body, headers=admin)
            created.raise_for_status()
            products.append(created.json()["id"])
            stock = {"on_hand": STOCK}
            put = await client.put(f"/api/v1/inventory/{body['sku']}", json=stock, headers=admin)
            put.raise_for_status()
        signed_in = []
        for n in range(shoppers):
            email = f"load-{run}-{n}@example.com"
            account = {"email": email, "password": SHOPPER_PASSWORD, "name": f"Shopper {n}"}
            (await client.post("/api/v1/auth/register", json=account)).raise_for_status()
            login = await client.post(
                "/api/v1/auth/login",
                json={"email": email, "password": SHOPPER_PASSWORD},
                headers=shopper_address(n),
            )
            login.raise_for_status()
            signed_in.append((email, login.json()["access_token"]))
    return Fixture(gateway, products, categories, signed_in)


async def receipt_lag_ms(client: httpx.AsyncClient, fx: Fixture) -> tuple[float, float]:
    """One probe order: (ms until PAID, ms until its payment receipt is listed)."""
    _, token = fx.shoppers[0]
    auth = {"Authorization": f"Bearer {token}"}
    body = {
        "items": [{"product_id": fx.products[0], "quantity": 1}],
        "payment_token": "tok_visa",
        "shipping_address": ADDRESS,
    }
    began = time.perf_counter()
    placed = await client.post(
        "/api/v1/orders", json=body, headers={**auth, "Idempotency-Key": uuid.uuid4().hex}
    )
    placed.raise_for_status()
    order_id = placed.json()["id"]
    while (await client.get(f"/api/v1/orders/{order_id}", headers=auth)).json()[
        "status"
    ] == "PENDING":
        await asyncio.sleep(0.05)
    paid = (time.perf_counter() - began) * 1000
    while not await has_receipt(client, auth, order_id):
        await asyncio.sleep(0.05)
    return paid, (time.perf_counter() - began) * 1000


async def has_receipt(client: httpx.AsyncClient, auth: dict[str, str], order_id: str) -> bool:
    """Whether the newest page lists the payment receipt of `order_id` (its subject names
    the order; counting receipts would stall once the shopper has more than a page)."""
    page = await client.get("/api/v1/notifications", params={"limit": 100}, headers=auth)
    page.raise_for_status()
    return any(
        n["kind"] == "payment_receipt" and order_id in n["subject"] for n in page.json()["items"]
    )


async def probe_views(fx: Fixture, password: str, seconds: float) -> dict[str, list[float]]:
    """Every few seconds while the load runs: search and receipt lags."""
    lags: dict[str, list[float]] = defaultdict(list)
    async with httpx.AsyncClient(base_url=fx.gateway, timeout=30) as client:
        admin = await admin_headers(client, password)
        end = time.monotonic() + seconds
        await asyncio.sleep(min(WARMUP_SECONDS, seconds / 4))
        while time.monotonic() < end - 2:
            try:
                _, seconds_to_find = await search_lag_seconds(client, admin, poll=0.05)
                lags["search: new product found"].append(seconds_to_find * 1000)
                paid, receipt = await receipt_lag_ms(client, fx)
                lags[PROBE_ORDERS].append(paid)
                lags["notification: placed to receipt listed"].append(receipt)
            except httpx.HTTPError as exc:
                lags[f"probe failed: {type(exc).__name__}"].append(0.0)
            await asyncio.sleep(2.0)
    return lags


async def analytics_drain_ms(gateway: str, password: str, since: str, placed: int) -> float:
    """After the load: how long until analytics counts every order placed since `since`."""
    async with httpx.AsyncClient(base_url=gateway, timeout=30) as client:
        admin = await admin_headers(client, password)
        began = time.perf_counter()
        deadline = began + 120
        while time.perf_counter() < deadline:
            sales = await client.get(
                "/api/v1/analytics/sales", params={"from": since}, headers=admin
            )
            sales.raise_for_status()
            if sales.json()["orders"] >= placed:
                return (time.perf_counter() - began) * 1000
            await asyncio.sleep(0.1)
    return math.inf


# ---------------------------------------------------------------- one step, reported


@dataclass
class Step:
    rate: float
    seconds: float  # offered
    elapsed: float  # wall time of the step: generator start-up and the last answers too
    samples: Samples
    cpu: dict[str, float]
    idle_cpu_per_s: dict[str, float]  # the same processes' CPU per second before the load
    work: dict[tuple[str, str], float]  # (service, kind) -> count during the step
    lags: dict[str, list[float]]

    def verdicts(self) -> dict[str, tuple[float, float, bool]]:
        """endpoint -> (p99 ms, error rate, inside its SLO)."""
        out = {}
        for label, objective in OBJECTIVES.items():
            values = self.samples.latencies_ms.get(label, [])
            calls = len(values) + sum(
                n
                for key, n in self.samples.answers.items()
                if key.startswith(label + " ") and not key[len(label) + 1 :].isdigit()
            )
            if not calls:
                continue
            p99 = percentile(values, 99) if values else math.inf
            rate = self.samples.errors.get(label, 0) / calls
            out[label] = (p99, rate, p99 <= objective.p99_ms and rate <= objective.error_budget)
        return out

    def holds(self) -> bool:
        verdicts = self.verdicts()
        return bool(verdicts) and all(ok for *_, ok in verdicts.values())


def run_step(
    fx: Fixture, args: argparse.Namespace, rate: float, seconds: float, pids: dict[str, int]
) -> Step:
    async def with_probes() -> tuple[Samples, dict[str, list[float]]]:
        probes = asyncio.create_task(probe_views(fx, args.admin_password, seconds))
        load = asyncio.to_thread(offer, fx, args, rate, seconds)
        samples = await load
        return samples, await probes

    quiet = platform_cpu(pids)
    time.sleep(IDLE_SECONDS)
    before = platform_cpu(pids)
    idle = {name: (before[name] - quiet[name]) / IDLE_SECONDS for name in before}
    work_before = platform_work()
    began = time.monotonic()
    samples, lags = asyncio.run(with_probes())
    work_after = platform_work()
    after = platform_cpu(pids)
    elapsed = time.monotonic() - began
    cpu = {name: after[name] - before.get(name, math.nan) for name in after}
    work = {key: work_after[key] - work_before.get(key, 0.0) for key in work_after}
    return Step(rate, seconds, elapsed, samples, cpu, idle, work, lags)


def print_step(step: Step, pids: dict[str, int], floor: dict[str, float]) -> None:
    s = step.samples
    measured = max(step.seconds - WARMUP_SECONDS, 1e-9)
    print(
        f"\n## offered {step.rate:.1f} checkouts/s for {step.seconds:.0f} s: "
        f"{s.checkouts} checkouts counted = {s.checkouts / measured:.1f}/s after the "
        f"{WARMUP_SECONDS:.0f} s warm-up; SLOs {'HELD' if step.holds() else 'BROKEN'}"
    )
    print(
        f"{'endpoint':<22}{'owner':>12}{'n':>8}{'err %':>8}{'p50':>8}{'p95':>8}"
        f"{'p99':>8}{'p99.9':>8}{'SLO p99':>9}{'budget %':>9}  ok"
    )
    verdicts = step.verdicts()
    for label, objective in OBJECTIVES.items():
        values = s.latencies_ms.get(label, [])
        if label not in verdicts:
            continue
        p99, error_rate, ok = verdicts[label]
        p50, p95, p999 = (percentile(values, q) for q in (50, 95, 99.9))
        print(
            f"{label:<22}{objective.service:>12}{len(values):>8}{error_rate * 100:>8.2f}"
            f"{p50:>8.1f}{p95:>8.1f}{p99:>8.1f}{p999:>8.1f}{objective.p99_ms:>9.0f}"
            f"{objective.error_budget * 100:>9.2f}  {'yes' if ok else 'NO'}"
        )
        print(
            json.dumps(
                {
                    "bench": "load",
                    "rate": step.rate,
                    "endpoint": label,
                    "n": len(values),
                    "p50_ms": p50,
                    "p95_ms": p95,
                    "p99_ms": p99,
                    "p999_ms": p999,
                    "error_rate": error_rate,
                    "slo_p99_ms": objective.p99_ms,
                    "ok": ok,
                }
            )
        )
    if s.answers:
        print("error answers:", dict(sorted(s.answers.items())))
    lag = s.start_lag_ms
    print(
        f"generator: {s.cpu_seconds:.1f} s CPU in {step.elapsed:.0f} s "
        f"({s.cpu_seconds / step.elapsed * 100:.0f} % of one core); arrivals started late by "
        f"p50 {percentile(lag, 50):.1f} ms, p99 {percentile(lag, 99):.1f} ms"
    )
    for name, values in sorted(step.lags.items()):
        print(
            f"view lag, {name}: n={len(values)} p50 {percentile(values, 50):.0f} ms, "
            f"max {max(values):.0f} ms"
        )
    placed = s.placed + len(step.lags.get(PROBE_ORDERS, []))
    if step.cpu and placed:
        total = sum(v for v in step.cpu.values() if not math.isnan(v))
        idle = sum(step.idle_cpu_per_s.values()) * step.elapsed
        print(
            f"platform CPU: {total:.1f} s in {step.elapsed:.0f} s = "
            f"{total / step.elapsed * 100:.0f} % of one core (idle before the load: "
            f"{idle / step.elapsed * 100:.0f} %); {placed} orders placed: "
            f"{total / placed * 1000:.1f} ms per checkout with its browsing, "
            f"{(total - idle) / placed * 1000:.1f} ms above idle"
        )
        print(
            f"{'process':<16}{'CPU s':>8}{'idle %':>8}{'ms/checkout':>13}{'RSS MiB':>9}"
            f"{'PSS MiB':>9}"
        )
        rss_total = pss_total = 0.0
        for name, used in sorted(step.cpu.items(), key=lambda kv: -kv[1]):
            rss, pss = memory_mib(pids[name])
            rss_total += 0 if math.isnan(rss) else rss
            pss_total += 0 if math.isnan(pss) else pss
            above = used - step.idle_cpu_per_s.get(name, 0.0) * step.elapsed
            print(
                f"{name:<16}{used:>8.2f}{step.idle_cpu_per_s.get(name, 0.0) * 100:>8.1f}"
                f"{above / placed * 1000:>13.2f}{rss:>9.0f}{pss:>9.0f}"
            )
        print(
            f"platform memory: {rss_total:.0f} MiB RSS, {pss_total:.0f} MiB PSS (shared pages "
            f"counted once) in {len(pids)} processes"
        )
        print("(ms/checkout: CPU above the idle rate per order placed, browsing included)")
    if step.work and placed and floor:
        print_floor(step, placed, floor)
    if step.work and placed:
        kinds = list(dict.fromkeys(WORK_COUNTERS.values()))
        print(
            f"work per checkout (with its browsing): {'service':<16}"
            + "".join(f"{kind:>11}" for kind in kinds)
        )
        for service in sorted({name for name, _ in step.work}):
            counts = [step.work.get((service, kind), 0.0) / placed for kind in kinds]
            print(f"{'':<39}{service:<16}" + "".join(f"{c:>11.2f}" for c in counts))


FLOOR_OF_KIND = {
    "rpc": "grpc",
    "http": "http",
    "commits": "commit",
    "published": "publish",
    "consumed": "consume",
}


def print_floor(step: Step, placed: int, floor: dict[str, float]) -> None:
    """Actual CPU per checkout (above idle) against the floor: what the service is asked to
    do (its counters) priced at the bare primitives' cost measured in this run."""
    production = os.environ.get("EMPORIUM_PROFILE") == "production" and "pg_commit" in floor
    prices = {**floor, "commit": floor["pg_commit"]} if production else floor
    print(f"{'service':<16}{'actual ms':>11}{'floor ms':>10}{'actual/floor':>14}")
    for service in sorted({name for name, _ in step.work}):
        cost = sum(
            step.work.get((service, kind), 0.0) / placed * prices[price]
            for kind, price in FLOOR_OF_KIND.items()
        )
        used = step.cpu.get(service)
        if used is None or cost <= 0:
            continue
        actual = (used - step.idle_cpu_per_s.get(service, 0.0) * step.elapsed) / placed * 1000
        print(f"{service:<16}{actual:>11.2f}{cost:>10.2f}{actual / cost:>14.1f}")


def find_max(
    fx: Fixture, args: argparse.Namespace, pids: dict[str, int], floor: dict[str, float]
) -> None:
    """Double while the SLOs hold, then bisect between the last pass and the first failure
    to within 10 %."""
    good: float | None = None
    bad: float | None = None
    rate = args.rate
    while bad is None or (good is not None and bad / good > 1.1):
        step = run_step(fx, args, rate, args.hold, pids)
        print_step(step, pids, floor)
        if step.holds():
            good = rate
        else:
            bad = rate
        if bad is None:
            rate *= 2
        elif good is None:
            if rate <= 0.5:
                break
            rate /= 2
        else:
            rate = (good + bad) / 2
    verdict = f"{good:.1f} checkouts/s" if good is not None else f"none down to {rate:.1f}/s"
    print(f"\n# highest rate with every SLO held for {args.hold:.0f} s: {verdict}")
    print(json.dumps({"bench": "load", "find_max": good, "hold_s": args.hold}))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--gateway", default="http://127.0.0.1:8080")
    parser.add_argument("--rate", type=float, default=10.0, help="checkouts per second")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--browse-ratio", type=float, default=1.0)
    parser.add_argument("--login-ratio", type=float, default=0.1)
    parser.add_argument("--workers", type=int, default=1, help="generator processes")
    parser.add_argument("--shoppers", type=int, default=50, help="signed-in shoppers")
    parser.add_argument("--find-max", action="store_true")
    parser.add_argument("--hold", type=float, default=60.0, help="seconds per find-max step")
    parser.add_argument("--start", action="store_true", help="start the platform first")
    parser.add_argument(
        "--floor-ops", type=int, default=2000, help="operations per primitive (0: no floor)"
    )
    parser.add_argument("--data-dir", type=Path, help="a running platform's data dir (CPU)")
    parser.add_argument(
        "--admin-password", default=os.environ.get("EMPORIUM_ADMIN_PASSWORD", ADMIN_PASSWORD)
    )
    args = parser.parse_args()
    print(f"# open-loop load on {machine()}, profile {os.environ.get('EMPORIUM_PROFILE', '?')}")
    with platform_running(args.gateway, args.start, args.admin_password) as data_dir:
        pids = service_pids(data_dir or args.data_dir)
        fx = asyncio.run(prepare(args.gateway, args.admin_password, args.shoppers))
        floor = asyncio.run(measure_floor(args.floor_ops)) if args.floor_ops else {}
        if floor:
            print(
                "floor, CPU µs per operation: "
                + ", ".join(f"{name} {ms * 1000:.0f}" for name, ms in floor.items())
            )
        if args.find_max:
            find_max(fx, args, pids, floor)
            return
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1))
        step = run_step(fx, args, args.rate, args.seconds, pids)
        print_step(step, pids, floor)
        probes = len(step.lags.get(PROBE_ORDERS, []))
        placed = step.samples.placed + probes
        drained = asyncio.run(analytics_drain_ms(args.gateway, args.admin_password, since, placed))
        print(f"view lag, analytics: counted every placed order {drained:.0f} ms after the load")


if __name__ == "__main__":
    main()
