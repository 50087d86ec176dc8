"""The committed files under deploy/observability/ are what the code generates (drift check),
and the generated rules use only metric names the code really exports."""

from __future__ import annotations

import re
from pathlib import Path

import prometheus_client
import yaml

from emporium.observability import generate, rules
from emporium.observability.slo import OWNERS, SLOS, TEAMS

ROOT = Path(__file__).resolve().parents[2] / "deploy" / "observability"


def test_committed_files_equal_the_generated_ones() -> None:
    assert generate.stale(ROOT) == [], "run `emporium observability generate` and commit"


def test_the_check_sees_a_hand_edit(tmp_path: Path) -> None:
    generate.write(tmp_path)
    assert generate.stale(tmp_path) == []
    edited = tmp_path / "prometheus/rules/platform.yml"
    edited.write_text(edited.read_text().replace("up == 0", "up == 1"))
    assert generate.stale(tmp_path) == ["prometheus/rules/platform.yml"]


def _exported_names() -> set[str]:
    """Every sample name the process's registry exposes once the modules defining metrics
    are imported (chassis' RED and event metrics, order-service's saga metrics)."""
    import emporium.chassis.metrics
    import emporium.services.order.metrics  # noqa: F401  (the saga metrics)

    names = {"up"}
    for metric in prometheus_client.REGISTRY.collect():
        names.add(metric.name)
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"]}
        for suffix in suffixes.get(metric.type, []):
            names.add(metric.name + suffix)
    return names


def test_every_expression_names_only_exported_metrics_or_recorded_series() -> None:
    documents = [yaml.safe_load(text) for text in generate.files().values() if "groups" in text]
    all_rules = [r for doc in documents for g in doc["groups"] for r in g["rules"]]
    recorded = {r["record"] for r in all_rules if "record" in r}
    exported = _exported_names()
    functions = {"sum", "rate", "avg", "avg_over_time", "histogram_quantile", "increase"}
    functions |= {"min_over_time", "deriv", "by", "and", "or", "unless", "offset", "service"}
    functions |= {"le"}
    used: set[str] = set()
    for rule in all_rules:
        expr = re.sub(r'"[^"]*"', "", rule["expr"])  # drop label values
        expr = re.sub(r"\{[^}]*\}", "", expr)  # and label matchers
        expr = re.sub(r"\[[^\]]*\]", "", expr)  # and ranges
        used |= set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr)) - functions
    unknown = {n for n in used if not re.fullmatch(r"\d.*|[smhd]", n)} - exported - recorded
    assert unknown == set()
    assert "emporium_sagas_parked_total" in used  # issue 8's alert rule
    assert {"emporium_outbox_backlog", "emporium_consumer_lag"} <= used


def test_every_slo_service_and_owner_is_in_the_catalog() -> None:
    from emporium.chassis.catalog import SERVICES

    assert set(OWNERS) == {s.name for s in SERVICES}
    assert set(OWNERS.values()) == set(TEAMS)
    assert {slo.service for slo in SLOS} <= set(OWNERS)


def test_alert_names_are_listed_once_each() -> None:
    names = rules.alert_names()
    assert len(names) == len(set(names))
    assert {"ServiceDown", "SLOBurnRateFast", "SLOBurnRateSlow", "SagasParked"} <= set(names)
