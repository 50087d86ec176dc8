"""A real Alertmanager (Debian's 0.25) with the generated configuration: while ServiceDown
fires for a service, that service's SLO alerts are inhibited, another service's are not."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from emporium.observability import alertmanager
from tests.observability.tools import free_port, running_alertmanager


@pytest.fixture
def am_url(tmp_path: Path) -> Iterator[str]:
    """Alertmanager on a free port; the secret files are dummies under tmp_path."""
    (tmp_path / Path(alertmanager.PAGERDUTY_KEY_FILE).name).write_text("dummy-routing-key")
    (tmp_path / Path(alertmanager.SLACK_URL_FILE).name).write_text("http://127.0.0.1:9/slack")
    config = alertmanager.config(secrets=str(tmp_path))
    with running_alertmanager(tmp_path / "am", config, free_port()) as url:
        yield url


def _alert(name: str, service: str, severity: str) -> dict[str, object]:
    return {
        "labels": {"alertname": name, "service": service, "severity": severity, "sli": "errors"}
    }


def test_service_down_inhibits_that_services_slo_alerts(am_url: str) -> None:
    alerts = [
        _alert("ServiceDown", "order", "page"),
        _alert("SLOBurnRateFast", "order", "page"),
        _alert("SLOBurnRateFast", "payment", "page"),
    ]
    assert httpx.post(f"{am_url}/api/v2/alerts", json=alerts, timeout=5).status_code == 200
    state: dict[tuple[str, str], str] = {}
    for _ in range(100):  # inhibition is computed when alerts are listed; wait for all three
        listed = httpx.get(f"{am_url}/api/v2/alerts", timeout=5).json()
        state = {
            (a["labels"]["alertname"], a["labels"]["service"]): a["status"]["state"] for a in listed
        }
        if len(state) == 3 and state[("SLOBurnRateFast", "order")] == "suppressed":
            break
        time.sleep(0.1)
    assert state == {
        ("ServiceDown", "order"): "active",
        ("SLOBurnRateFast", "order"): "suppressed",
        ("SLOBurnRateFast", "payment"): "active",
    }
