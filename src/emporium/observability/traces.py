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
    grpc_port: int,
    http_port: int,
    health_port: int,
    spans_file: Path,
    logs: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """OTLP on 127.0.0.1 -> batch -> the file exporter; health on `health_port` (`/`).

    With `logs` = (glob of the services' JSON log files, OTLP/HTTP logs endpoint) it also tails
    those files and exports their lines there (`logsink`, into OpenSearch)."""
    config = {
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
    if logs is not None:
        add_log_shipping(config, *logs)
    return config


def add_log_shipping(config: dict[str, Any], include: str, endpoint: str) -> None:
    """filelog (the chassis' JSON lines: trace/span ids, level and service lifted into the
    record) -> batch -> otlphttp (JSON) to `endpoint`, retried while it refuses."""
    lifted = {"on_error": "send_quiet"}  # a line without the field (startup) goes as it is
    config["receivers"]["filelog"] = {
        "include": [include],
        "start_at": "beginning",
        "poll_interval": "200ms",
        "operators": [
            {"type": "json_parser", "severity": {"parse_from": "attributes.level"}, **lifted},
            {
                "type": "trace_parser",
                "trace_id": {"parse_from": "attributes.trace_id"},
                "span_id": {"parse_from": "attributes.span_id"},
                **lifted,
            },
            {
                "type": "move",
                "from": "attributes.service",
                "to": 'resource["service.name"]',
                **lifted,
            },
        ],
    }
    config["exporters"]["otlphttp/logs"] = {
        "logs_endpoint": endpoint,
        "encoding": "json",
        "compression": "none",
        "retry_on_failure": {"enabled": True, "initial_interval": "200ms", "max_interval": "2s"},
    }
    config["service"]["pipelines"]["logs"] = {
        "receivers": ["filelog"],
        "processors": ["batch"],
        "exporters": ["otlphttp/logs"],
    }
