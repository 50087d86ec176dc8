"""The Alertmanager configuration passes `amtool check-config`, routes pages to PagerDuty and
everything else to the owning team's Slack channel (`amtool config routes test`), and holds no
secret."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from emporium.observability import alertmanager, generate
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


def test_a_test_rendering_changes_only_waits_secret_paths_and_the_events_url(
    tmp_path: Path,
) -> None:
    """`config(timing, secrets, pagerduty_url)` (the delivery test's) is the same routing with
    other waits, the secret files elsewhere and another Events API endpoint; amtool takes it."""
    fast = alertmanager.Timing("1s", "1s", "1h", "1s", "1h", "30s")
    url = "http://127.0.0.1:9/v2/enqueue"
    config = alertmanager.config(fast, secrets=str(tmp_path), pagerduty_url=url)
    assert config["global"] == {"resolve_timeout": "30s"}
    assert (config["route"]["group_wait"], config["route"]["group_interval"]) == ("1s", "1s")
    assert config["route"]["routes"][0]["group_wait"] == "1s"
    pagerduty = config["receivers"][0]["pagerduty_configs"][0]
    assert pagerduty["url"] == url
    assert pagerduty["routing_key_file"] == str(tmp_path / "pagerduty-routing-key")
    slack_files = {r["slack_configs"][0]["api_url_file"] for r in config["receivers"][1:]}
    assert slack_files == {str(tmp_path / "slack-webhook-url")}
    production = alertmanager.config()
    assert config["inhibit_rules"] == production["inhibit_rules"]
    assert [r.get("matchers") for r in config["route"]["routes"]] == [
        r.get("matchers") for r in production["route"]["routes"]
    ]
    assert "url" not in production["receivers"][0]["pagerduty_configs"][0]
    (tmp_path / "am.yml").write_text(generate.render(config))
    result = _amtool("check-config", str(tmp_path / "am.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
