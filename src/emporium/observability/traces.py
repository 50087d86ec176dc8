"""The local OpenTelemetry Collector (Emporium's build, deploy/observability/otelcol/builder.yaml,
made by `.ci/otelcol.sh build`): where its binary is, and the configuration `make observe` and
the trace tests run it with: OTLP in (gRPC and HTTP), every span appended to a JSON-lines
file (the file exporter, OTLP JSON), a health check. The services send to it when started with
`OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:<grpc port>` (chassis/tracing.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

SCRIPT = Path(".ci/otelcol.sh")
BINARY = "otelcol-emporium"


def collector_binary(repo: Path = Path()) -> str | None:
    """`EMPORIUM_OTELCOL`, else the cached build of `repo`'s manifest (never building it), else
    `otelcol-emporium` on PATH; None when there is none."""
    explicit = os.environ.get("EMPORIUM_OTELCOL", "")
    if explicit:
        return explicit
    script = repo / SCRIPT
    if script.is_file():
        out = subprocess.run(
            [str(script), "built"], capture_output=True, text=True, timeout=30, check=False
        )
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip().splitlines()[-1]
    return shutil.which(BINARY)


def collector_config(
    grpc_port: int, http_port: int, health_port: int, spans_file: Path
) -> dict[str, Any]:
    """OTLP on 127.0.0.1 -> batch -> the file exporter; health on `health_port` (`/`)."""
    return {
        "receivers": {
            "otlp": {
                "protocols": {
                    "grpc": {"endpoint": f"127.0.0.1:{grpc_port}"},
                    "http": {"endpoint": f"127.0.0.1:{http_port}"},
                }
            }
        },
        "processors": {"batch": {"timeout": "200ms"}},
        "exporters": {"file": {"path": str(spans_file.resolve()), "flush_interval": "200ms"}},
        "extensions": {"health_check": {"endpoint": f"127.0.0.1:{health_port}"}},
        "service": {
            "extensions": ["health_check"],
            "telemetry": {"metrics": {"level": "none"}},
            "pipelines": {
                "traces": {"receivers": ["otlp"], "processors": ["batch"], "exporters": ["file"]}
            },
        },
    }
