"""`emporium slo`: the seed's SLO table (slo.SLOS) with what Prometheus measured over a window.

Each number is the expression the generated recording rules record (rules.sli_error_ratio,
rules.latency_p99) evaluated over `--window` instead of a fixed one, so the table and the
alerts never disagree on what an SLI is. The error budget left is the smallest share left
among the three SLIs over that window (1 - bad ratio / budget): negative means overspent.
bench/checkout.py prints the same table (format_table) for its own run.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from typing import Any

import httpx

from emporium.observability.rules import latency_p99, sli_error_ratio
from emporium.observability.slo import SLIS, SLO, SLOS

DEFAULT_PROMETHEUS = "http://127.0.0.1:9090"


@dataclass(frozen=True)
class Measured:
    """One SLO row with its measurements; None where Prometheus had no sample (no traffic)."""

    slo: SLO
    availability: float | None
    p99_seconds: float | None
    error_ratio: float | None
    budget_left: float | None


def _scalar(client: httpx.Client, expr: str) -> float | None:
    response = client.get("/api/v1/query", params={"query": expr})
    response.raise_for_status()
    result = response.json()["data"]["result"]
    if not result:
        return None
    value = float(result[0]["value"][1])
    return None if math.isnan(value) else value


def measure(prometheus: str, window: str, slos: tuple[SLO, ...] = SLOS) -> list[Measured]:
    """Ask Prometheus for each SLO's SLIs over `window` (a PromQL duration: 1h, 90s)."""
    rows = []
    with httpx.Client(base_url=prometheus, timeout=10) as client:
        for slo in slos:
            ratios = {sli: _scalar(client, sli_error_ratio(slo, sli, window)) for sli in SLIS}
            left = [1.0 - r / slo.budget(sli) for sli, r in ratios.items() if r is not None]
            unavailable = ratios["availability"]
            rows.append(
                Measured(
                    slo=slo,
                    availability=None if unavailable is None else 1.0 - unavailable,
                    p99_seconds=_scalar(client, latency_p99(slo, window)),
                    error_ratio=ratios["errors"],
                    budget_left=min(left) if left else None,
                )
            )
    return rows


def _pct(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value * 100:.{digits}f}%"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 1000:.0f} ms"


def format_table(rows: list[Measured], window: str) -> str:
    """The table as text: objective next to measurement for each column."""
    header = f"{'service':<13}{'availability':>22}{'p99':>22}{'error rate':>20}{'budget left':>13}"
    lines = [f"SLOs over the last {window} (objective / measured)", header]
    for row in rows:
        slo = row.slo
        lines.append(
            f"{slo.service:<13}"
            f"{_pct(slo.availability, 2) + ' / ' + _pct(row.availability):>22}"
            f"{_ms(slo.p99_seconds) + ' / ' + _ms(row.p99_seconds):>22}"
            f"{'<' + _pct(slo.max_error_ratio, 1) + ' / ' + _pct(row.error_ratio):>20}"
            f"{_pct(row.budget_left, 1):>13}"
        )
    return "\n".join(lines)


def add_parser(sub: Any) -> None:
    slo_p = sub.add_parser("slo", help="the seed's SLO table as Prometheus measures it")
    slo_p.add_argument("--prometheus", default=DEFAULT_PROMETHEUS, help="Prometheus base URL")
    slo_p.add_argument("--window", default="1h", help="PromQL duration (default 1h)")


def main(args: argparse.Namespace) -> int:
    try:
        rows = measure(args.prometheus, args.window)
    except httpx.HTTPError as exc:
        print(f"emporium slo: cannot query {args.prometheus}: {exc}", file=sys.stderr)
        return 1
    print(format_table(rows, args.window))
    return 0
