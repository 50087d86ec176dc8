"""The Alertmanager configuration passes `amtool check-config`, routes pages to PagerDuty and
everything else to the owning team's Slack channel (`amtool config routes test`), and holds no
secret."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from emporium.observability.alertmanager import slack_channel
from emporium.observability.slo import OWNERS, TEAMS
from tests.observability.tools import ROOT, tool

CONFIG = ROOT / "alertmanager" / "alertmanager.yml"


def _amtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("amtool"), *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def test_amtool_check_config() -> None:
    result = _amtool("check-config", str(CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def _route(*labels: str) -> str:
    result = _amtool("config", "routes", "test", f"--config.file={CONFIG}", *labels)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["alertname=SLOBurnRateFast", "severity=page", "service=order"], "pagerduty"),
        (["alertname=ServiceDown", "severity=page", "service=cdn"], "pagerduty"),
        (["alertname=SLOBurnRateSlow", "severity=ticket", "service=order"], "slack-commerce"),
        (["alertname=SagasParked", "severity=ticket", "service=order"], "slack-commerce"),
        (["alertname=ConsumerLagHigh", "severity=ticket", "service=search"], "slack-search"),
        (["alertname=DeadLetteredMessages", "severity=ticket", "service=auth"], "slack-identity"),
        (
            ["alertname=OutboxBacklogGrowing", "severity=ticket", "service=inventory"],
            "slack-supply",
        ),
        (
            ["alertname=SLOLatencyP99High", "severity=ticket", "service=api_gateway"],
            "slack-platform",
        ),
        (["alertname=Watchdog", "severity=ticket"], "slack-platform"),
    ],
)
def test_routes(labels: list[str], receiver: str) -> None:
    assert _route(*labels) == receiver


def test_verify_receivers_catches_a_wrong_route() -> None:
    """The amtool check can fail: a ticket of order's does not reach the ML team."""
    result = _amtool(
        "config",
        "routes",
        "test",
        f"--config.file={CONFIG}",
        "--verify.receivers=slack-ml",
        "severity=ticket",
        "service=order",
    )
    assert result.returncode != 0


def test_every_service_reaches_its_teams_channel() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    channels = {
        r["name"]: r["slack_configs"][0]["channel"]
        for r in config["receivers"]
        if "slack_configs" in r
    }
    assert set(channels.values()) == {slack_channel(team) for team in TEAMS}
    for service, team in OWNERS.items():
        assert channels[_route("severity=ticket", f"service={service}")] == slack_channel(team)


def test_no_secret_in_the_config() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    pagerduty = next(r for r in config["receivers"] if r["name"] == "pagerduty")
    assert set(pagerduty["pagerduty_configs"][0]) >= {"routing_key_file"}
    text = CONFIG.read_text()
    for key in ("routing_key:", "service_key:", "api_url:", "hooks.slack.com"):
        assert key not in text


def test_a_down_service_inhibits_its_slo_alerts() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    rule = next(
        r for r in config["inhibit_rules"] if r["source_matchers"] == ['alertname="ServiceDown"']
    )
    assert rule["target_matchers"] == ['alertname=~"SLO.+"']
    assert rule["equal"] == ["service"]
