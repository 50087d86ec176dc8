"""`make observe` (python -m emporium.observability.local) starts a real Prometheus and
Alertmanager: Prometheus has a target per process of `make up`, the generated rules and the
Alertmanager; both answer on the URLs it prints, and Ctrl-C stops them. Where the OpenTelemetry
Collector is built it starts that too: a span sent to the OTLP URL it prints lands in its file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from emporium.chassis.catalog import SERVICES
from tests.observability.otelcol import collector_binary, read_spans, wait_for
from tests.observability.tools import free_port, tool

REPO = Path(__file__).resolve().parents[2]


def observe(tmp_path: Path, **settings: int | str) -> subprocess.Popen[str]:
    """`make observe` with its data under tmp_path and EMPORIUM_<name> = value for each
    setting (PROMETHEUS_PORT, OTLP_GRPC_PORT, OTELCOL, ...)."""
    env = {
        **os.environ,
        "EMPORIUM_DATA_DIR": str(tmp_path),
        **{f"EMPORIUM_{name}": str(value) for name, value in settings.items()},
    }
    return subprocess.Popen(
        [sys.executable, "-m", "emporium.observability.local"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )


def started(proc: subprocess.Popen[str]) -> str:
    """What `make observe` printed until it said that everything runs."""
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "Ctrl-C stops them all" in line:
            break
    return "".join(lines)


def collector_ports() -> dict[str, int]:
    return {
        "OTLP_GRPC_PORT": free_port(),
        "OTLP_HTTP_PORT": free_port(),
        "OTELCOL_HEALTH_PORT": free_port(),
    }


def test_make_observe_serves_prometheus_and_alertmanager(tmp_path: Path) -> None:
    tool("prometheus")
    tool("prometheus-alertmanager")
    prom, am = free_port(), free_port()
    proc = observe(tmp_path, PROMETHEUS_PORT=prom, ALERTMANAGER_PORT=am, **collector_ports())
    try:
        lines = [started(proc)]
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


@pytest.mark.waits_for_build
@pytest.mark.timeout(1800)
def test_make_observe_runs_the_collector_and_its_otlp_url_takes_spans(tmp_path: Path) -> None:
    tool("prometheus")
    tool("prometheus-alertmanager")
    binary = collector_binary()  # built (CI waits for its build), or skip on a laptop
    ports = collector_ports()
    proc = observe(
        tmp_path,
        PROMETHEUS_PORT=free_port(),
        ALERTMANAGER_PORT=free_port(),
        OTELCOL=binary,
        **ports,
    )
    try:
        printed = started(proc)
        grpc = f"http://127.0.0.1:{ports['OTLP_GRPC_PORT']}"
        assert grpc in printed
        assert f"http://127.0.0.1:{ports['OTLP_HTTP_PORT']}" in printed
        spans_file = tmp_path / "observe" / "traces" / "spans.jsonl"
        assert str(spans_file) in printed
        provider = TracerProvider(resource=Resource.create({"service.name": "observe-test"}))
        provider.add_span_processor(
            SimpleSpanProcessor(OTLPSpanExporter(endpoint=grpc, insecure=True))
        )
        with provider.get_tracer("test").start_as_current_span("make-observe-probe") as span:
            trace_id = f"{span.get_span_context().trace_id:032x}"
        provider.shutdown()
        found = wait_for(
            lambda: [s for s in read_spans(spans_file) if s.trace_id == trace_id], timeout=30
        )
        assert [(s.service, s.name) for s in found] == [("observe-test", "make-observe-probe")]
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
