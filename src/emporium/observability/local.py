"""`make observe`: Prometheus and Alertmanager (Debian's packages) for the running `make up`
platform, with the generated configuration, their data under `var/observe/`, until Ctrl-C.

The configuration is copied to `var/observe/` with local paths: Alertmanager's secret files
are `var/observe/secrets/{pagerduty-routing-key,slack-webhook-url}` (empty until you fill
them: notifications then fail, alerts still show in the UI). `EMPORIUM_PROMETHEUS_PORT` and
`EMPORIUM_ALERTMANAGER_PORT` move the two servers (default 9090 and 9093).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from emporium.observability import alertmanager, generate, prometheus

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
    commands = prepare(run_dir, prom_port, am_port)
    logs = [(run_dir / f"{name}.log").open("w") for name in ("prometheus", "alertmanager")]
    procs = [
        subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        for cmd, log in zip(commands, logs, strict=True)
    ]
    urls = {
        "Prometheus (targets, rules, alerts)": f"http://127.0.0.1:{prom_port}",
        "Alertmanager (alerts, silences)": f"http://127.0.0.1:{am_port}",
    }
    try:
        deadline = time.monotonic() + 60
        while not all(_ready(f"{u}/-/ready") for u in urls.values()):
            if any(p.poll() is not None for p in procs) or time.monotonic() > deadline:
                print(f"[observe] a server did not start; see {run_dir}/*.log", file=sys.stderr)
                return 1
            time.sleep(0.2)
        for what, url in urls.items():
            print(f"[observe] {what}: {url}")
        print(f"[observe] logs and data under {run_dir}; Ctrl-C stops both", flush=True)
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
