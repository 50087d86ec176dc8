"""`promtool check rules` on the generated rules and `promtool test rules` on the unit tests in
deploy/observability/tests/, and a check that those tests show every alert both firing and
quiet."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from emporium.observability import rules
from tests.observability.tools import ROOT, tool

RULE_FILES = sorted((ROOT / "prometheus" / "rules").glob("*.yml"))
TEST_FILES = sorted((ROOT / "tests").glob("*.yml"))


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_the_rules_pass_promtool_check() -> None:
    result = _run(tool("promtool"), "check", "rules", *map(str, RULE_FILES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.timeout(600)
@pytest.mark.parametrize("test_file", TEST_FILES, ids=lambda p: p.name)
def test_promtool_unit_tests_pass(test_file: object) -> None:
    result = _run(tool("promtool"), "test", "rules", str(test_file))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_reports_a_wrong_expectation() -> None:
    """The runner would see a failing unit test (the tests above can fail)."""
    source = (ROOT / "tests" / "platform.yml").read_text()
    broken = ROOT / "tests" / ".broken-platform.yml.tmp"
    broken.write_text(source.replace("service: order}", "service: payment}", 1))
    try:
        result = _run(tool("promtool"), "test", "rules", str(broken))
    finally:
        broken.unlink()
    assert result.returncode != 0
    assert "FAILED" in result.stdout + result.stderr


def test_every_alert_is_shown_firing_and_quiet() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in TEST_FILES:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = set(rules.alert_names())
    assert names - firing == set(), "alerts no unit test shows firing"
    assert names - quiet == set(), "alerts no unit test shows quiet"


def test_the_local_prometheus_config_passes_promtool_check() -> None:
    """It scrapes every process of `make up` and loads the generated rules."""
    config = ROOT / "prometheus" / "prometheus.yml"
    result = _run(tool("promtool"), "check", "config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(RULE_FILES)} rule files found" in result.stdout
    from emporium.chassis.catalog import SERVICES

    targets = yaml.safe_load(config.read_text())["scrape_configs"][0]["static_configs"]
    assert {t["labels"]["service"] for t in targets} == {s.name for s in SERVICES}
