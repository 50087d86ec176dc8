"""A real OpenTelemetry Collector for the trace tests: Emporium's own build
(deploy/observability/otelcol/builder.yaml, `.ci/otelcol.sh`), receiving OTLP and writing every
span to a JSON-lines file (the file exporter), which the tests read back as traces.

Not built, the tests skip on a laptop (`.ci/otelcol.sh build`, a few minutes) and, under
EMPORIUM_REQUIRE_REAL_BACKENDS=1 (CI), wait for the build CI started in the background (or run
it): a collector that cannot be had fails them, like every real-backend test (tests/backends.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from emporium.observability import traces
from tests.backends import require_real_backends
from tests.observability.tools import free_port, wait_ready

REPO = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT_S = 1500


def collector_binary() -> str:
    """The collector's path: in CI the cached build, waited for (or built); elsewhere
    `EMPORIUM_OTELCOL`, the cached build or PATH, and a skip when there is none."""
    if require_real_backends() and not os.environ.get("EMPORIUM_OTELCOL"):
        out = subprocess.run(
            [str(REPO / traces.SCRIPT), "path"],
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_S,
            check=False,
        )
        if out.returncode == 0:
            return out.stdout.strip().splitlines()[-1]
        pytest.fail(
            "EMPORIUM_REQUIRE_REAL_BACKENDS=1 but the OpenTelemetry Collector could not be "
            f"built (.ci/otelcol.sh):\n{out.stderr[-3000:]}"
        )
    found = traces.collector_binary(REPO)
    if found:
        return found
    reason = "the OpenTelemetry Collector is not built (`.ci/otelcol.sh build`, minutes)"
    if require_real_backends():
        pytest.fail(f"EMPORIUM_REQUIRE_REAL_BACKENDS=1 but {reason}")
    pytest.skip(reason)


@dataclass
class Span:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    kind: int
    links: list[tuple[str, str]] = field(default_factory=list)
    attributes: dict[str, Any] = field(default_factory=dict)


def _value(v: dict[str, Any]) -> Any:
    for key in ("stringValue", "boolValue", "doubleValue"):
        if key in v:
            return v[key]
    if "intValue" in v:
        return int(v["intValue"])
    return v


def _attributes(pairs: list[dict[str, Any]]) -> dict[str, Any]:
    return {a["key"]: _value(a.get("value", {})) for a in pairs}


def read_spans(path: Path) -> list[Span]:
    """Every span of the file exporter's JSON lines (OTLP JSON, ids in hex)."""
    spans: list[Span] = []
    if not path.exists():
        return spans
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        for resource_spans in json.loads(line).get("resourceSpans", []):
            resource = _attributes(resource_spans.get("resource", {}).get("attributes", []))
            service = str(resource.get("service.name", ""))
            for scope in resource_spans.get("scopeSpans", []):
                for s in scope.get("spans", []):
                    spans.append(
                        Span(
                            service=service,
                            name=s["name"],
                            trace_id=s["traceId"],
                            span_id=s["spanId"],
                            parent_id=s.get("parentSpanId", ""),
                            kind=int(s.get("kind", 0)),
                            links=[(k["traceId"], k["spanId"]) for k in s.get("links", [])],
                            attributes=_attributes(s.get("attributes", [])),
                        )
                    )
    return spans


@dataclass
class Collector:
    otlp_grpc: str  # http://127.0.0.1:<port>, what OTEL_EXPORTER_OTLP_ENDPOINT takes
    otlp_http: str
    spans_file: Path
    log: Path

    def spans(self) -> list[Span]:
        return read_spans(self.spans_file)


@contextlib.contextmanager
def running_collector(run_dir: Path, logs: tuple[str, str] | None = None) -> Iterator[Collector]:
    """A real collector on free ports writing spans to `run_dir/spans.jsonl`, ready; with
    `logs` (a glob of JSON log files, an OTLP/HTTP logs endpoint) it ships those lines too."""
    binary = collector_binary()
    run_dir.mkdir(parents=True, exist_ok=True)
    grpc_port, http_port, health_port = free_port(), free_port(), free_port()
    spans_file = run_dir / "spans.jsonl"
    (run_dir / "otelcol.yaml").write_text(
        json.dumps(traces.collector_config(grpc_port, http_port, health_port, spans_file, logs))
    )
    log = run_dir / "otelcol.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [binary, f"--config={run_dir / 'otelcol.yaml'}"], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        wait_ready(f"http://127.0.0.1:{health_port}/", proc, log)
        yield Collector(
            f"http://127.0.0.1:{grpc_port}", f"http://127.0.0.1:{http_port}", spans_file, log
        )
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def wait_for(predicate: Any, timeout: float = 60.0, interval: float = 0.5) -> Any:
    """Poll `predicate()` until it returns something truthy (returned) or `timeout` passes
    (the last falsy answer is returned)."""
    deadline = time.monotonic() + timeout
    while True:
        answer = predicate()
        if answer or time.monotonic() > deadline:
            return answer
        time.sleep(interval)
