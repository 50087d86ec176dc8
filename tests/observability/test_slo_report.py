"""`emporium slo` and bench/checkout.py's SLO table: the formatting on its own, then both
against a real Prometheus scraping a running platform after a short checkout benchmark."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from emporium.observability import prometheus
from emporium.observability.report import Measured, format_table
from emporium.observability.slo import SLOS
from tests.e2e.platform import GATEWAY, running_platform, wait_healthy
from tests.observability.tools import free_port, running_prometheus, tool

REPO = Path(__file__).resolve().parents[2]
ADMIN_PASSWORD = "slo-report-admin-password-0123"


def test_format_table_puts_objective_next_to_measurement() -> None:
    order, payment = SLOS[1], SLOS[2]
    rows = [
        Measured(order, 0.99975, 0.0421, 0.00125, 0.75),
        Measured(payment, None, None, None, None),
    ]
    lines = format_table(rows, "1h").splitlines()
    assert lines[0] == "SLOs over the last 1h (objective / measured)"
    assert lines[1].split() == ["service", "availability", "p99", "error", "rate", "budget", "left"]
    assert lines[2].split() == [
        *("order", "99.90%", "/", "99.975%"),
        *("500", "ms", "/", "42", "ms"),
        *("<0.5%", "/", "0.125%", "75.0%"),
    ]
    # No sample (no traffic yet): said so, not a zero.
    assert lines[3].split() == [
        *("payment", "99.90%", "/", "n/a"),
        *("1000", "ms", "/", "n/a"),
        *("<0.1%", "/", "n/a", "n/a"),
    ]


def test_format_table_shows_an_overspent_budget_as_negative() -> None:
    search = SLOS[3]
    (row,) = format_table([Measured(search, 0.9, 0.5, 0.05, -4.0)], "5m").splitlines()[2:]
    assert row.split()[-1] == "-400.0%"


def _numbers_per_service(text: str) -> dict[str, list[str]]:
    rows = {}
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] in {s.service for s in SLOS}:
            rows[fields[0]] = fields
    return rows


def _bench_then_slo(
    url: str, env: dict[str, str]
) -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]:
    bench = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "checkout.py"),
            *("--gateway", GATEWAY, "--shoppers", "2", "--seconds", "15"),
            *("--prometheus", url, "--scrape-seconds", "1"),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    slo = subprocess.run(
        [sys.executable, "-m", "emporium", "slo", "--prometheus", url, "--window", "2m"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return bench, slo


def test_emporium_slo_measures_a_running_platform(tmp_path: Path) -> None:
    """A real Prometheus (1 s scrapes) watches `emporium up`; after a 15 s checkout benchmark,
    both the benchmark's table and `emporium slo` have numbers in every column of every SLO."""
    tool("prometheus")
    config = prometheus.config()
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    del config["rule_files"], config["alerting"]
    env = {**os.environ, "EMPORIUM_ADMIN_PASSWORD": ADMIN_PASSWORD}
    with running_platform(tmp_path, {"EMPORIUM_ADMIN_PASSWORD": ADMIN_PASSWORD}):
        wait_healthy()
        # Scraping starts once the platform is up: its start is no outage.
        with running_prometheus(tmp_path / "observe", config, free_port()) as url:
            bench, slo = _bench_then_slo(url, env)
    assert bench.returncode == 0, bench.stdout + bench.stderr
    assert slo.returncode == 0, slo.stderr
    assert "SLOs over the last 2m" in slo.stdout
    for output in (bench.stdout, slo.stdout):
        rows = _numbers_per_service(output)
        assert set(rows) == {s.service for s in SLOS}, output
        for service, fields in rows.items():
            assert "n/a" not in fields, output
            # measured availability, p99 and error rate, and the budget left, are numbers
            measured = [fields[3], fields[7], fields[11], fields[12]]
            assert all(re.fullmatch(r"-?\d+(\.\d+)?%?", m) for m in measured), (service, output)
    print(slo.stdout)
