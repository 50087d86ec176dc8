"""A real Alertmanager (Debian's 0.25) with the generated configuration: while ServiceDown
fires for a service, that service's SLO alerts are inhibited, another service's are not."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from emporium.observability import alertmanager
from tests.observability.tools import ROOT, tool


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def am_url(tmp_path: Path) -> Iterator[str]:
    """Alertmanager on a free port; the secret files are dummies under tmp_path."""
    (tmp_path / "key").write_text("dummy-routing-key")
    (tmp_path / "url").write_text("http://127.0.0.1:9/slack")
    config = (ROOT / "alertmanager" / "alertmanager.yml").read_text()
    config = config.replace(alertmanager.PAGERDUTY_KEY_FILE, str(tmp_path / "key"))
    config = config.replace(alertmanager.SLACK_URL_FILE, str(tmp_path / "url"))
    (tmp_path / "am.yml").write_text(config)
    port = _free_port()
    proc = subprocess.Popen(
        [
            tool("prometheus-alertmanager"),  # Debian names the server so
            f"--config.file={tmp_path / 'am.yml'}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "am.log").open("w"),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, (tmp_path / "am.log").read_text()
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


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
