"""`make observe`: Prometheus and Alertmanager (Debian's packages) for the running `make up`
platform, with the generated configuration, their data under `var/observe/`, until Ctrl-C; and,
where it is built (`.ci/otelcol.sh build`), the OpenTelemetry Collector (observability.traces),
receiving OTLP and writing every span to `var/observe/traces/spans.jsonl`: start the platform
with `OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317 make up` to send it the traces.

The configuration is copied to `var/observe/` with local paths: Alertmanager's secret files
are `var/observe/secrets/{pagerduty-routing-key,slack-webhook-url}` (empty until you fill
them: notifications then fail, alerts still show in the UI). `EMPORIUM_PROMETHEUS_PORT` and
`EMPORIUM_ALERTMANAGER_PORT` move the two servers (default 9090 and 9093);
`EMPORIUM_OTLP_GRPC_PORT`, `EMPORIUM_OTLP_HTTP_PORT` and `EMPORIUM_OTELCOL_HEALTH_PORT` the
collector (default 4317, 4318 and 13133). With `EMPORIUM_OBSERVE_OPENSEARCH_URL`
(e.g. `opensearch://127.0.0.1:59200`, the node `.ci/opensearch.sh start` runs) the collector
also tails the platform's `var/log/*.log` and the log sink (observability.logsink, on
`EMPORIUM_LOGSINK_PORT`, default 4319) indexes the lines there, searchable by trace id.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from emporium.observability import alertmanager, generate, prometheus, traces

DEPLOY = Path("deploy/observability")


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return int(response.status) == 200
    except OSError:
        return False


def prepare(run_dir: Path, prom_port: int, am_port: int) -> tuple[list[str], list[str]]:
    """Write the local configuration; the two command lines to run."""
    secrets = run_dir / "secrets"
    secrets.mkdir(parents=True, exist_ok=True)
    for name in (alertmanager.PAGERDUTY_KEY_FILE, alertmanager.SLACK_URL_FILE):
        (secrets / Path(name).name).touch()
    am_text = generate.render(alertmanager.config(secrets=str(secrets.resolve())))
    (run_dir / "alertmanager.yml").write_text(am_text)
    prom = prometheus.config()
    prom["rule_files"] = [str((DEPLOY / "prometheus" / "rules").resolve() / "*.yml")]
    prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] = [f"127.0.0.1:{am_port}"]
    (run_dir / "prometheus.yml").write_text(generate.render(prom))
    for tool in ("prometheus", "prometheus-alertmanager"):
        if shutil.which(tool) is None:
            raise SystemExit(
                f"{tool} is not installed: apt-get install -y --no-install-recommends "
                "prometheus prometheus-alertmanager"
            )
    prom_cmd = [
        "prometheus",
        f"--config.file={run_dir / 'prometheus.yml'}",
        f"--storage.tsdb.path={run_dir / 'prometheus-data'}",
        f"--web.listen-address=127.0.0.1:{prom_port}",
    ]
    am_cmd = [
        "prometheus-alertmanager",
        f"--config.file={run_dir / 'alertmanager.yml'}",
        f"--storage.path={run_dir / 'alertmanager-data'}",
        f"--web.listen-address=127.0.0.1:{am_port}",
        "--cluster.listen-address=",
    ]
    return prom_cmd, am_cmd


def prepare_collector(
    run_dir: Path, grpc: int, http: int, health: int, logs: tuple[str, str] | None = None
) -> list[str] | None:
    """The collector's command line and configuration, or None when it is not built; with
    `logs` (a glob of log files, an OTLP/HTTP logs endpoint) it ships those lines too."""
    binary = traces.collector_binary()
    if binary is None:
        return None
    out = run_dir / "traces"
    out.mkdir(parents=True, exist_ok=True)
    config = traces.collector_config(grpc, http, health, out / "spans.jsonl", logs)
    (out / "otelcol.yaml").write_text(json.dumps(config, indent=2))
    return [binary, f"--config={out / 'otelcol.yaml'}"]


def _stop(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    # Explicit handlers: a process started in the background by a non-interactive shell
    # inherits SIGINT as ignored, and Python then never raises KeyboardInterrupt (Ctrl-C or
    # a supervisor's SIGINT would leave both servers running).
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    data_dir = Path(os.environ.get("EMPORIUM_DATA_DIR") or "var")
    run_dir = data_dir / "observe"
    prom_port = int(os.environ.get("EMPORIUM_PROMETHEUS_PORT", "9090"))
    am_port = int(os.environ.get("EMPORIUM_ALERTMANAGER_PORT", "9093"))
    grpc_port = int(os.environ.get("EMPORIUM_OTLP_GRPC_PORT", "4317"))
    http_port = int(os.environ.get("EMPORIUM_OTLP_HTTP_PORT", "4318"))
    health_port = int(os.environ.get("EMPORIUM_OTELCOL_HEALTH_PORT", "13133"))
    commands = list(prepare(run_dir, prom_port, am_port))
    names = ["prometheus", "alertmanager"]
    # What each server answers 200 on once it is up.
    ready = [f"http://127.0.0.1:{prom_port}/-/ready", f"http://127.0.0.1:{am_port}/-/ready"]
    opensearch = os.environ.get("EMPORIUM_OBSERVE_OPENSEARCH_URL", "")
    sink_port = int(os.environ.get("EMPORIUM_LOGSINK_PORT", "4319"))
    shipping = (
        (str((data_dir / "log").resolve() / "*.log"), f"http://127.0.0.1:{sink_port}/v1/logs")
        if opensearch
        else None
    )
    collector = prepare_collector(run_dir, grpc_port, http_port, health_port, shipping)
    if collector is not None:
        commands.append(collector)
        names.append("traces/otelcol")
        ready.append(f"http://127.0.0.1:{health_port}/")
        if shipping is not None:
            commands.append(
                [sys.executable, "-m", "emporium.observability.logsink",
                 "--listen", f"127.0.0.1:{sink_port}", "--opensearch", opensearch]
            )  # fmt: skip
            names.append("logsink")
            ready.append(f"http://127.0.0.1:{sink_port}/healthz")
    logs = [(run_dir / f"{name}.log").open("w") for name in names]
    procs = [
        subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        for cmd, log in zip(commands, logs, strict=True)
    ]
    urls = {
        "Prometheus (targets, rules, alerts)": f"http://127.0.0.1:{prom_port}",
        "Alertmanager (alerts, silences)": f"http://127.0.0.1:{am_port}",
    }
    if collector is not None:
        urls |= {
            "OpenTelemetry Collector, OTLP/gRPC (OTEL_EXPORTER_OTLP_ENDPOINT)": (
                f"http://127.0.0.1:{grpc_port}"
            ),
            "OpenTelemetry Collector, OTLP/HTTP": f"http://127.0.0.1:{http_port}",
        }
    try:
        deadline = time.monotonic() + 60
        while not all(_ready(u) for u in ready):
            if any(p.poll() is not None for p in procs) or time.monotonic() > deadline:
                print(f"[observe] a server did not start; see {run_dir}/*.log", file=sys.stderr)
                return 1
            time.sleep(0.2)
        for what, url in urls.items():
            print(f"[observe] {what}: {url}")
        if collector is None:
            print("[observe] no OpenTelemetry Collector (not built: .ci/otelcol.sh build)")
        else:
            print(f"[observe] spans (OTLP JSON lines): {run_dir / 'traces' / 'spans.jsonl'}")
            if shipping is not None:
                print(f"[observe] logs -> {opensearch} (indexes emporium-logs-*, by trace_id)")
        print(f"[observe] logs and data under {run_dir}; Ctrl-C stops them all", flush=True)
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=10)
        for log in logs:
            log.close()


if __name__ == "__main__":
    sys.exit(main())
