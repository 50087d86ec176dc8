"""The Prometheus and Alertmanager command-line tools the rule tests run.

Debian's `prometheus` (promtool 2.42) and `prometheus-alertmanager` (amtool 0.25) packages.
Missing, the tests skip on a laptop and fail under EMPORIUM_REQUIRE_REAL_BACKENDS=1 (CI),
like every real-backend test (tests/backends.py)."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.backends import require_real_backends
from tests.e2e.platform import Platform, running_platform, wait_healthy

ROOT = Path(__file__).resolve().parents[2] / "deploy" / "observability"
INSTALL = "apt-get install -y --no-install-recommends prometheus prometheus-alertmanager"


def tool(name: str) -> str:
    """The path of `name`, or skip (fail in CI) when it is not installed."""
    path = shutil.which(name)
    if path:
        return path
    reason = f"{name} is not installed (`{INSTALL}`)"
    if require_real_backends():
        pytest.fail(f"EMPORIUM_REQUIRE_REAL_BACKENDS=1 but {reason}")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _server(name: str, run_dir: Path, argv: list[str], port: int) -> Iterator[str]:
    """`argv` started with its output in run_dir/<name>.log, ready on `port`; its base URL.
    Stopped after."""
    url = f"http://127.0.0.1:{port}"
    with (run_dir / f"{name}.log").open("w") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_ready(f"{url}/-/ready", proc, run_dir / f"{name}.log")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@contextlib.contextmanager
def running_prometheus(
    run_dir: Path, config: dict[str, Any], port: int, args: Sequence[str] = ()
) -> Iterator[str]:
    """A real Prometheus with `config` (observability.prometheus.config, edited by the test)
    and extra command-line `args` on 127.0.0.1:`port`, ready; its base URL. Stopped (and its
    log kept in run_dir) after."""
    from emporium.observability.generate import render

    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "prometheus.yml").write_text(render(config))
    argv = [
        tool("prometheus"),
        f"--config.file={run_dir / 'prometheus.yml'}",
        f"--storage.tsdb.path={run_dir / 'prometheus-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        *args,
    ]
    with _server("prometheus", run_dir, argv, port) as url:
        yield url


@contextlib.contextmanager
def running_alertmanager(run_dir: Path, config: dict[str, Any], port: int) -> Iterator[str]:
    """A real Alertmanager (Debian names the server `prometheus-alertmanager`) with `config`
    (observability.alertmanager.config) on 127.0.0.1:`port`, alone (no cluster), ready."""
    from emporium.observability.generate import render

    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "alertmanager.yml").write_text(render(config))
    argv = [
        tool("prometheus-alertmanager"),
        f"--config.file={run_dir / 'alertmanager.yml'}",
        f"--storage.path={run_dir / 'alertmanager-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]
    with _server("alertmanager", run_dir, argv, port) as url:
        yield url


def fast_prometheus_config(interval: str, rule_files: list[str]) -> dict[str, Any]:
    """The generated scrape configuration with every scrape and rule evaluation each
    `interval` (so rates over a few seconds have samples) and the given rule files."""
    from emporium.observability import prometheus

    config = prometheus.config()
    config["global"]["scrape_interval"] = interval
    config["global"]["evaluation_interval"] = interval
    config["rule_files"] = rule_files
    return config


@contextlib.contextmanager
def observed_platform(
    tmp: Path, env: dict[str, str], config: dict[str, Any], args: Sequence[str] = ()
) -> Iterator[tuple[Platform, str]]:
    """The platform started as `make up` does (with the demo catalog), healthy, and a real
    Prometheus scraping it with `config`; the platform and Prometheus's URL. On a failure the
    platform's and Prometheus's logs are printed."""
    with running_platform(tmp, env, demo=True) as platform:
        wait_healthy()
        try:
            with running_prometheus(tmp / "prometheus", config, free_port(), args) as url:
                yield platform, url
        except BaseException:
            print(platform.log()[-20000:])
            with contextlib.suppress(OSError):
                print((tmp / "prometheus" / "prometheus.log").read_text(errors="replace")[-5000:])
            raise


def instant(url: str, expr: str) -> list[dict[str, Any]]:
    """The result of an instant query of the Prometheus at `url`."""
    answer = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert answer["status"] == "success", (expr, answer)
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


# -- a shopper of the demo catalog ------------------------------------------------------------

ADDRESS = {"line1": "1 Test Street", "city": "Seoul", "postal_code": "04524", "country": "KR"}


def demo_products(client: httpx.Client) -> list[dict[str, Any]]:
    """The demo catalog, once it is loaded and its first product has stock (the loader runs
    after the platform turns healthy)."""
    products: list[dict[str, Any]] = []
    for _ in range(300):
        products = client.get("/api/v1/products").json()["items"]
        if products:
            break
        time.sleep(0.2)
    assert products, "the demo catalog never appeared"
    for _ in range(300):
        stock = client.get(f"/api/v1/inventory/{products[0]['sku']}")
        if stock.status_code == 200 and stock.json().get("available", 0) > 0:
            break
        time.sleep(0.2)
    return products


def signed_up(client: httpx.Client, prefix: str) -> dict[str, str]:
    """A new shopper's authorization header."""
    email, password = f"{prefix}-{uuid.uuid4().hex[:8]}@example.com", "correct horse battery"
    registered = client.post(
        "/api/v1/auth/register", json={"email": email, "password": password, "name": prefix}
    )
    assert registered.status_code in (200, 201), registered.text
    tokens = client.post("/api/v1/auth/login", json={"email": email, "password": password}).json()
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def place_order(
    client: httpx.Client, auth: dict[str, str], product_id: str, token: str = "tok_visa"
) -> httpx.Response:
    """POST /orders for one unit of `product_id`, paid with `token`."""
    return client.post(
        "/api/v1/orders",
        headers={**auth, "Idempotency-Key": uuid.uuid4().hex},
        json={
            "items": [{"product_id": product_id, "quantity": 1}],
            "shipping_address": ADDRESS,
            "payment_token": token,
        },
    )


def wait_ready(url: str, proc: subprocess.Popen[Any], log: Path, timeout: float = 60) -> None:
    """Poll `url` until it answers 200; fail with the server's log if it exits or never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{proc.args} exited {proc.returncode}:\n{log.read_text()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    pytest.fail(f"{url} not ready in {timeout}s:\n{log.read_text()}")
