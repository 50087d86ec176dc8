"""Prometheus recording and alerting rules, generated from the SLO table (`slo`).

Every expression uses the names chassis.metrics (and order-service's saga metrics) really
export, with their labels: `service` on every series, `code` (a gRPC status name) on
`emporium_rpc_requests_total`, `status` and `route` on `emporium_http_requests_total`,
`outcome` on `emporium_events_consumed_total`, `state` on `emporium_saga_instances`. `up`
carries the `service` label the scrape configuration gives each target (observability.md).
"""

from __future__ import annotations

import re
from typing import Any

from emporium.observability.slo import (
    BUDGET_LEFT_WARNING,
    BUDGET_PERIOD,
    GRPC_SERVER_FAULTS,
    PAGE_BURN,
    SLIS,
    SLO,
    SLOS,
    TICKET_BURN,
    UNTRACKED_GRPC_METHODS,
    UNTRACKED_HTTP_ROUTES,
    WINDOWS,
    BurnRateAlert,
)

Rule = dict[str, Any]
RUNBOOK = "docs/runbooks.md"
ERROR_RATIO = "slo:sli_error:ratio_rate"
BUDGET_LEFT = "slo:error_budget_remaining:ratio"
P99 = "slo:latency_p99:seconds_rate"

# Each SLO rule also carries its `service` as a static label: promtool rejects rules of one
# name whose static labels are equal (its duplicate-rule lint).

# Platform thresholds: tuned for the embedded profile's volumes; see docs/runbooks.md.
CONSUMER_LAG_LIMIT = 1000


def runbook_url(alert: str) -> str:
    """The runbook entry of an alert: docs/runbooks.md has a `## <alert>` heading each."""
    return f"{RUNBOOK}#{alert.lower()}"


def num(value: float) -> str:
    """A threshold as PromQL reads it, without float noise (14.4 * 0.005 = 0.072)."""
    return f"{value:.10g}"


def _selector(slo: SLO, *extra: str) -> str:
    if slo.protocol == "http":
        base = [f'service="{slo.service}"', f'route!~"{UNTRACKED_HTTP_ROUTES}"']
    else:
        base = [f'service="{slo.service}"', f'method!~"{UNTRACKED_GRPC_METHODS}"']
    return "{" + ",".join([*base, *extra]) + "}"


def _rate(metric: str, selector: str, window: str) -> str:
    return f"sum by (service) (rate({metric}{selector}[{window}]))"


def sli_error_ratio(slo: SLO, sli: str, window: str) -> str:
    """The share of bad events of one SLI over `window`."""
    if sli == "availability":
        return f'1 - avg by (service) (avg_over_time(up{{service="{slo.service}"}}[{window}]))'
    if slo.protocol == "http":
        requests, histogram, bad = (
            "emporium_http_requests_total",
            "emporium_http_request_duration_seconds",
            'status=~"5.."',
        )
    else:
        requests, histogram, bad = (
            "emporium_rpc_requests_total",
            "emporium_rpc_duration_seconds",
            f'code=~"{"|".join(GRPC_SERVER_FAULTS)}"',
        )
    if sli == "errors":
        # A labelled counter is born at its first increment: until a service has failed once
        # there is no bad series, and the ratio would be absent instead of 0 (no budget left
        # recorded, `emporium slo` blank); `or 0 * all` makes it 0 wherever requests flow.
        everything = _rate(requests, _selector(slo), window)
        return (
            f"(\n  {_rate(requests, _selector(slo, bad), window)}\n  or\n  0 * {everything}\n)"
            f"\n/\n{everything}"
        )
    fast = _selector(slo, f'le="{slo.p99_seconds}"')
    return (
        f"1 - (\n  {_rate(histogram + '_bucket', fast, window)}\n"
        f"  /\n  {_rate(histogram + '_count', _selector(slo), window)}\n)"
    )


def recording_rules(slo: SLO) -> list[Rule]:
    rules: list[Rule] = []
    for sli in SLIS:
        for window in (*WINDOWS, BUDGET_PERIOD):
            rules.append(
                {
                    "record": f"{ERROR_RATIO}{window}",
                    "expr": sli_error_ratio(slo, sli, window),
                    "labels": {"service": slo.service, "sli": sli},
                }
            )
        rules.append(
            {
                "record": BUDGET_LEFT,
                "expr": (
                    f'1 - {ERROR_RATIO}{BUDGET_PERIOD}{{service="{slo.service}",sli="{sli}"}}'
                    f" / {num(slo.budget(sli))}"
                ),
                "labels": {"service": slo.service, "sli": sli},
            }
        )
    for window in ("5m", "1h"):
        rules.append(
            {
                "record": f"{P99}{window}",
                "expr": latency_p99(slo, window),
                "labels": {"service": slo.service},
            }
        )
    return rules


def latency_p99(slo: SLO, window: str) -> str:
    """The SLO's p99 latency in seconds over `window`, from its RED histogram."""
    histogram = (
        "emporium_http_request_duration_seconds"
        if slo.protocol == "http"
        else "emporium_rpc_duration_seconds"
    )
    return (
        "histogram_quantile(0.99, sum by (service, le) "
        f"(rate({histogram}_bucket{_selector(slo)}[{window}])))"
    )


def _burn(slo: SLO, sli: str, pair: BurnRateAlert) -> str:
    limit = num(pair.factor * slo.budget(sli))
    ratio = f'{{service="{slo.service}",sli="{sli}"}}'
    return (
        f"(\n  {ERROR_RATIO}{pair.long}{ratio} > {limit}\n"
        f"  and\n  {ERROR_RATIO}{pair.short}{ratio} > {limit}\n)"
    )


def _alert(
    name: str, expr: str, duration: str, severity: str, labels: dict[str, str], summary: str
) -> Rule:
    return {
        "alert": name,
        "expr": expr,
        "for": duration,
        "labels": {"severity": severity, **labels},
        "annotations": {
            "summary": summary,
            "runbook_url": runbook_url(name),
        },
    }


def alerting_rules(slo: SLO) -> list[Rule]:
    rules: list[Rule] = []
    for sli in SLIS:
        budget = slo.budget(sli)
        labels = {"service": slo.service, "sli": sli}
        for name, severity, pairs, duration in (
            ("SLOBurnRateFast", "page", PAGE_BURN, "2m"),
            ("SLOBurnRateSlow", "ticket", TICKET_BURN, "15m"),
        ):
            rules.append(
                _alert(
                    name,
                    "\nor\n".join(_burn(slo, sli, pair) for pair in pairs),
                    duration,
                    severity,
                    labels,
                    f"{slo.service} burns its {sli} error budget ({num(budget * 100)} % of "
                    f"events) {' or '.join(f'{p.factor:g}x' for p in pairs)} too fast",
                )
            )
        rules.append(
            _alert(
                "SLOErrorBudgetNearlySpent",
                f'{BUDGET_LEFT}{{service="{slo.service}",sli="{sli}"}}'
                f" < {num(BUDGET_LEFT_WARNING)}",
                "1h",
                "ticket",
                labels,
                f"{slo.service} has less than {num(BUDGET_LEFT_WARNING * 100)} % of its "
                f"{BUDGET_PERIOD} {sli} error budget left",
            )
        )
    rules.append(
        _alert(
            "SLOLatencyP99High",
            f'{P99}5m{{service="{slo.service}"}} > {num(slo.p99_seconds)}',
            "15m",
            "ticket",
            {"service": slo.service, "sli": "latency"},
            f"{slo.service} p99 latency is over {num(slo.p99_seconds * 1000)} ms",
        )
    )
    return rules


def _since(metric: str, window: str) -> str:
    """`metric` grew during `window`, counting a series that appeared meanwhile (a labelled
    counter is born at its first increment, which `increase` alone never sees)."""
    return f"increase({metric}[{window}]) > 0\nor\n({metric} > 0 unless {metric} offset {window})"


def platform_rules() -> list[Rule]:
    dead = 'emporium_events_consumed_total{outcome="dead_lettered"}'
    parked = "emporium_sagas_parked_total"
    return [
        _alert("ServiceDown", "up == 0", "1m", "page", {}, "{{ $labels.instance }} is down"),
        _alert(
            "OutboxBacklogGrowing",
            "min_over_time(emporium_outbox_backlog[15m]) > 0\n"
            "and\nderiv(emporium_outbox_backlog[15m]) >= 0",
            "5m",
            "ticket",
            {},
            "{{ $labels.service }}'s outbox has not drained for 15 minutes",
        ),
        _alert(
            "ConsumerLagHigh",
            f"min_over_time(emporium_consumer_lag[10m]) > {CONSUMER_LAG_LIMIT}",
            "5m",
            "ticket",
            {},
            "{{ $labels.service }}/{{ $labels.group }} is over "
            f"{CONSUMER_LAG_LIMIT} records behind on {{{{ $labels.topic }}}}",
        ),
        _alert(
            "DeadLetteredMessages",
            _since(dead, "1h"),
            "0m",
            "ticket",
            {},
            "{{ $labels.service }}/{{ $labels.group }} dead-lettered messages of "
            "{{ $labels.topic }} (to {{ $labels.topic }}.dlq)",
        ),
        _alert(
            "SagasParked",
            f'{_since(parked, "1h")}\nor\nemporium_saga_instances{{state="PARKED"}} > 0',
            "0m",
            "ticket",
            {},
            "checkout sagas are parked and wait for an operator (emporium sagas list)",
        ),
    ]


_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(\[|offset )(\d+)([smhd])\b")


def _shrink(duration: str, time_scale: float) -> str:
    match = re.fullmatch(r"(\d+)([smhd])", duration)
    if match is None:
        raise ValueError(f"not a simple duration: {duration}")
    seconds = int(match[1]) * _SECONDS[match[2]] / time_scale
    return f"{max(1, round(seconds)) if seconds else 0}s"


def _scaled(rule: Rule, time_scale: float) -> Rule:
    """The rule with every range, offset and `for:` divided by `time_scale` (rule names, as
    `slo:sli_error:ratio_rate1h`, keep their nominal window)."""
    out = dict(rule)
    out["expr"] = _DURATION.sub(
        lambda m: m[1] + _shrink(m[2] + m[3], time_scale), str(rule["expr"])
    )
    if "for" in rule:
        out["for"] = _shrink(str(rule["for"]), time_scale)
    return out


def rule_files(time_scale: float = 1.0) -> dict[str, dict[str, Any]]:
    """File name under prometheus/rules/ -> its rule groups. `time_scale` > 1 shrinks every
    window and `for:` by that factor (the end-to-end alert test: 3600 turns 1h into 1s)."""
    if time_scale != 1.0:
        return {
            name: {
                "groups": [
                    {**group, "rules": [_scaled(rule, time_scale) for rule in group["rules"]]}
                    for group in document["groups"]
                ]
            }
            for name, document in rule_files().items()
        }
    return {
        "slo.yml": {
            # One group per service, records first: a group evaluates its rules in order, so
            # an alert always reads the ratios recorded at the same evaluation (across groups
            # it may read the previous one, or none when the interval exceeds the lookback).
            "groups": [
                {"name": f"slo-{slo.service}", "rules": recording_rules(slo) + alerting_rules(slo)}
                for slo in SLOS
            ]
        },
        "platform.yml": {"groups": [{"name": "platform", "rules": platform_rules()}]},
    }


def alert_names() -> list[str]:
    """Every alert the rules define, once each."""
    names = [
        rule["alert"]
        for document in rule_files().values()
        for group in document["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]
    return list(dict.fromkeys(names))
