"""`make observe` (python -m emporium.observability.local) starts a real Prometheus and
Alertmanager: Prometheus has a target per process of `make up`, the generated rules and the
Alertmanager; both answer on the URLs it prints, and Ctrl-C stops them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from emporium.chassis.catalog import SERVICES
from tests.observability.tools import free_port, tool

REPO = Path(__file__).resolve().parents[2]


def test_make_observe_serves_prometheus_and_alertmanager(tmp_path: Path) -> None:
    tool("prometheus")
    tool("prometheus-alertmanager")
    prom, am = free_port(), free_port()
    env = {
        **os.environ,
        "EMPORIUM_DATA_DIR": str(tmp_path),
        "EMPORIUM_PROMETHEUS_PORT": str(prom),
        "EMPORIUM_ALERTMANAGER_PORT": str(am),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "emporium.observability.local"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "Ctrl-C stops both" in line:
                break
        assert f"http://127.0.0.1:{prom}" in "".join(lines)
        assert f"http://127.0.0.1:{am}" in "".join(lines)
        base = f"http://127.0.0.1:{prom}/api/v1"
        for _ in range(100):  # discovery runs shortly after start
            active = httpx.get(f"{base}/targets", timeout=5).json()["data"]["activeTargets"]
            if active:
                break
            time.sleep(0.1)
        assert {t["labels"]["service"] for t in active} == {s.name for s in SERVICES}
        groups = httpx.get(f"{base}/rules", timeout=5).json()["data"]["groups"]
        assert {"platform", "slo-order"} <= {g["name"] for g in groups}
        for _ in range(100):  # and so is the Alertmanager found
            ams = httpx.get(f"{base}/alertmanagers", timeout=5).json()["data"]
            if ams["activeAlertmanagers"]:
                break
            time.sleep(0.1)
        assert ams["activeAlertmanagers"][0]["url"].startswith(f"http://127.0.0.1:{am}/")
        status = httpx.get(f"http://127.0.0.1:{am}/api/v2/status", timeout=5).json()
        assert "pagerduty" in status["config"]["original"]
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
