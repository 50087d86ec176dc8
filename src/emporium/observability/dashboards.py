"""Grafana dashboards as code: one per service plus a platform overview, built with
grafana-foundation-sdk and committed as JSON under deploy/observability/grafana/ (the drift
check in `generate` covers them like the rules).

Every query uses the metric names chassis.metrics registers and the recording rules
`rules` generates; tests/observability/test_dashboards.py runs each panel's query against a
real Prometheus scraping a running platform and requires series back. So that an idle
error panel still shows a flat zero (and the test can tell a wrong name from no errors),
error and dead-letter queries add `or <the traffic> * 0`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from grafana_foundation_sdk.builders import dashboard, prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef, GridPos

from emporium.chassis.catalog import SERVICES
from emporium.observability.rules import BUDGET_LEFT, ERROR_RATIO, P99
from emporium.observability.slo import (
    GRPC_SERVER_FAULTS,
    OWNERS,
    SLOS,
    UNTRACKED_GRPC_METHODS,
    UNTRACKED_HTTP_ROUTES,
)

# Grafana's own interval variable; the test substitutes a fixed window for it.
RATE: Final = "$__rate_interval"
DATASOURCE: Final = DataSourceRef(type_val="prometheus", uid="${datasource}")
QUANTILES: Final = (0.5, 0.95, 0.99)

# What each service keeps and does (DESIGN.md's table): which panels apply to it.
RELATIONAL: Final = frozenset({"user", "order", "product", "payment", "inventory", "auth"})
PRODUCERS: Final = frozenset({"user", "order", "product", "payment", "inventory"})
CONSUMERS: Final = frozenset(
    {"order", "inventory", "notification", "search", "recommendation", "analytics", "cdn"}
)
# Services whose outgoing calls go through a circuit breaker (chassis.rpc.breaker).
CALLERS: Final = frozenset({"order"})


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class Panel:
    title: str
    unit: str
    queries: tuple[Query, ...]
    kind: str = "timeseries"  # or "stat"
    description: str = ""


def _red(service: str) -> tuple[str, str, str, str]:
    """(requests metric, histogram, selector, the label a request is split by)."""
    if service == "api_gateway":
        sel = f'service="{service}",route!~"{UNTRACKED_HTTP_ROUTES}|/livez"'
        return (
            "emporium_http_requests_total",
            "emporium_http_request_duration_seconds",
            sel,
            "route",
        )
    sel = f'service="{service}",method!~"{UNTRACKED_GRPC_METHODS}"'
    return "emporium_rpc_requests_total", "emporium_rpc_duration_seconds", sel, "method"


def _faults(service: str) -> str:
    return (
        'status=~"5.."' if service == "api_gateway" else f'code=~"{"|".join(GRPC_SERVER_FAULTS)}"'
    )


def red_panels(service: str) -> list[Panel]:
    requests, histogram, sel, by = _red(service)
    traffic = f"sum by ({by}) (rate({requests}{{{sel}}}[{RATE}]))"
    bad = f"sum by ({by}) (rate({requests}{{{sel},{_faults(service)}}}[{RATE}]))"
    latency = tuple(
        Query(
            f"histogram_quantile({q}, sum by (le, {by}) "
            f"(rate({histogram}_bucket{{{sel}}}[{RATE}])))",
            f"p{int(q * 100)} {{{{{by}}}}}",
        )
        for q in QUANTILES
    )
    return [
        Panel("Requests per second", "reqps", (Query(traffic, f"{{{{{by}}}}}"),)),
        Panel(
            "Server errors per second",
            "reqps",
            (Query(f"{bad} or {traffic} * 0", f"{{{{{by}}}}}"),),
            description="gRPC UNKNOWN/INTERNAL/UNAVAILABLE/DEADLINE_EXCEEDED/DATA_LOSS, HTTP 5xx",
        ),
        Panel("Latency p50 / p95 / p99", "s", latency),
    ]


def process_panels(service: str) -> list[Panel]:
    sel = f'service="{service}"'
    panels = [
        Panel("Instances up", "short", (Query(f"sum(up{{{sel}}})", "up"),), kind="stat"),
        Panel(
            "Event-loop lag p99",
            "s",
            (
                Query(
                    "histogram_quantile(0.99, sum by (le) "
                    f"(rate(emporium_event_loop_lag_seconds_bucket{{{sel}}}[{RATE}])))",
                    "p99",
                ),
            ),
            description="How long a request waits behind blocking or CPU-bound code",
        ),
    ]
    if service in RELATIONAL:
        panels.append(
            Panel(
                "Database pool",
                "short",
                (
                    Query(f"sum(emporium_db_pool_connections_in_use{{{sel}}})", "in use"),
                    Query(f"sum(emporium_db_pool_size{{{sel}}})", "size"),
                    Query(f"sum(rate(emporium_db_commits_total{{{sel}}}[{RATE}]))", "commits/s"),
                ),
            )
        )
    if service in PRODUCERS:
        panels.append(
            Panel(
                "Outbox",
                "short",
                (
                    Query(f"max(emporium_outbox_backlog{{{sel}}})", "backlog"),
                    Query(
                        f"sum by (topic) (rate(emporium_outbox_published_total{{{sel}}}[{RATE}]))",
                        "published/s {{topic}}",
                    ),
                ),
            )
        )
    if service in CONSUMERS:
        consumed = f"sum by (topic) (rate(emporium_events_consumed_total{{{sel}}}[{RATE}]))"
        dead = (
            "sum by (topic) (rate(emporium_events_consumed_total"
            f'{{{sel},outcome="dead_lettered"}}[{RATE}]))'
        )
        panels += [
            Panel(
                "Consumer lag",
                "short",
                (Query(f"max by (topic) (emporium_consumer_lag{{{sel}}})", "{{topic}}"),),
            ),
            Panel(
                "Events handled",
                "ops",
                (
                    Query(consumed, "{{topic}}"),
                    Query(f"{dead} or {consumed} * 0", "dead-lettered {{topic}}"),
                ),
            ),
        ]
    if service in CALLERS:
        panels.append(
            Panel(
                "Circuit breakers open",
                "short",
                (Query(f"max by (target) (emporium_circuit_open{{{sel}}})", "{{target}}"),),
            )
        )
    if service == "order":
        panels.append(
            Panel(
                "Unfinished sagas by state",
                "short",
                (Query(f"sum by (state) (emporium_saga_instances{{{sel}}})", "{{state}}"),),
                description="PARKED waits for an operator (docs/runbooks.md)",
            )
        )
    return panels


def slo_panels(service: str) -> list[Panel]:
    slo = next((s for s in SLOS if s.service == service), None)
    if slo is None:
        return []
    sel = f'service="{service}"'
    return [
        Panel(
            "Error budget left (30 days)",
            "percentunit",
            (Query(f"{BUDGET_LEFT}{{{sel}}}", "{{sli}}"),),
            kind="stat",
        ),
        Panel(
            "SLI error ratio, 5 m and 1 h",
            "percentunit",
            (
                Query(f"{ERROR_RATIO}5m{{{sel}}}", "{{sli}} 5m"),
                Query(f"{ERROR_RATIO}1h{{{sel}}}", "{{sli}} 1h"),
            ),
        ),
        Panel(
            f"p99 against the objective ({slo.p99_seconds:g} s)",
            "s",
            (
                Query(f"{P99}5m{{{sel}}}", "p99 5m"),
                Query(f"vector({slo.p99_seconds:g})", "objective"),
            ),
        ),
    ]


def service_panels(service: str) -> list[Panel]:
    return [*slo_panels(service), *red_panels(service), *process_panels(service)]


def overview_panels() -> list[Panel]:
    grpc_sel = f'method!~"{UNTRACKED_GRPC_METHODS}"'
    rpc = f"sum by (service) (rate(emporium_rpc_requests_total{{{grpc_sel}}}[{RATE}]))"
    http = (
        "sum by (service) (rate(emporium_http_requests_total"
        f'{{service="api_gateway",route!~"{UNTRACKED_HTTP_ROUTES}|/livez"}}[{RATE}]))'
    )
    http_bad = (
        "sum by (service) (rate(emporium_http_requests_total"
        f'{{service="api_gateway",route!~"{UNTRACKED_HTTP_ROUTES}|/livez",status=~"5.."}}[{RATE}]))'
    )
    rpc_bad = (
        "sum by (service) (rate(emporium_rpc_requests_total"
        f'{{{grpc_sel},code=~"{"|".join(GRPC_SERVER_FAULTS)}"}}[{RATE}]))'
    )
    return [
        Panel("Services up", "short", (Query("sum by (service) (up)", "{{service}}"),)),
        Panel(
            "Error budget left",
            "percentunit",
            (Query(BUDGET_LEFT, "{{service}} {{sli}}"),),
            kind="stat",
        ),
        Panel("Requests per second", "reqps", (Query(f"{http} or {rpc}", "{{service}}"),)),
        Panel(
            "Server errors per second",
            "reqps",
            (Query(f"{http_bad} or {rpc_bad} or ({http} or {rpc}) * 0", "{{service}}"),),
        ),
        Panel(
            "p99 latency",
            "s",
            (
                Query(
                    "histogram_quantile(0.99, sum by (service, le) "
                    f"(rate(emporium_rpc_duration_seconds_bucket{{{grpc_sel}}}[{RATE}])))",
                    "{{service}}",
                ),
            ),
        ),
        Panel(
            "Outbox backlog",
            "short",
            (Query("max by (service) (emporium_outbox_backlog)", "{{service}}"),),
        ),
        Panel(
            "Consumer lag",
            "short",
            (Query("max by (service) (emporium_consumer_lag)", "{{service}}"),),
        ),
        Panel(
            "Event-loop lag p99",
            "s",
            (
                Query(
                    "histogram_quantile(0.99, sum by (service, le) "
                    f"(rate(emporium_event_loop_lag_seconds_bucket[{RATE}])))",
                    "{{service}}",
                ),
            ),
        ),
    ]


def build(uid: str, title: str, panels: list[Panel], tags: list[str]) -> dict[str, Any]:
    board = (
        dashboard.Dashboard(title)
        .uid(uid)
        .tags(["emporium", *tags])
        .refresh("30s")
        .time("now-1h", "now")
        .timezone("browser")
        .with_variable(dashboard.DatasourceVariable("datasource").type("prometheus"))
    )
    for i, p in enumerate(panels):
        pos = GridPos(h=8, w=12, x=(i % 2) * 12, y=(i // 2) * 8)
        builder: Any = stat.Panel() if p.kind == "stat" else timeseries.Panel()
        builder = builder.title(p.title).unit(p.unit).datasource(DATASOURCE).grid_pos(pos)
        if p.description:
            builder = builder.description(p.description)
        for ref, q in zip("ABCDEFGH", p.queries, strict=False):
            builder = builder.with_target(
                prometheus.Dataquery().expr(q.expr).legend_format(q.legend).ref_id(ref)
            )
        board = board.with_panel(builder)
    document: dict[str, Any] = json.loads(JSONEncoder(sort_keys=True).encode(board.build()))
    return document


def dashboards() -> dict[str, dict[str, Any]]:
    """File name -> dashboard JSON: `overview.json` and `<service>.json` for each service."""
    out = {"overview.json": build("emporium-overview", "Emporium: platform", overview_panels(), [])}
    for s in SERVICES:
        title = f"Emporium: {s.name.replace('_', '-')} (team {OWNERS[s.name]})"
        out[f"{s.name}.json"] = build(
            f"emporium-{s.name.replace('_', '-')}", title, service_panels(s.name), [s.name]
        )
    return out


def files() -> dict[str, str]:
    """Path relative to deploy/observability -> content, for `generate`."""
    return {
        f"grafana/{name}": json.dumps(doc, indent=2, sort_keys=True) + "\n"
        for name, doc in dashboards().items()
    }


def queries(document: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target of a dashboard."""
    return [(p["title"], t["expr"]) for p in document["panels"] for t in p.get("targets", [])]
