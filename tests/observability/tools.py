"""The Prometheus and Alertmanager command-line tools the rule tests run.

Debian's `prometheus` (promtool 2.42) and `prometheus-alertmanager` (amtool 0.25) packages.
Missing, the tests skip on a laptop and fail under EMPORIUM_REQUIRE_REAL_BACKENDS=1 (CI),
like every real-backend test (tests/backends.py)."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.backends import require_real_backends

ROOT = Path(__file__).resolve().parents[2] / "deploy" / "observability"
INSTALL = "apt-get install -y --no-install-recommends prometheus prometheus-alertmanager"


def tool(name: str) -> str:
    """The path of `name`, or skip (fail in CI) when it is not installed."""
    path = shutil.which(name)
    if path:
        return path
    reason = f"{name} is not installed (`{INSTALL}`)"
    if require_real_backends():
        pytest.fail(f"EMPORIUM_REQUIRE_REAL_BACKENDS=1 but {reason}")
    pytest.skip(reason)


@contextlib.contextmanager
def running_prometheus(run_dir: Path, config: dict[str, Any], port: int) -> Iterator[str]:
    """A real Prometheus with `config` (observability.prometheus.config, edited by the test)
    on 127.0.0.1:`port`, ready; its base URL. Stopped (and its log kept in run_dir) after."""
    from emporium.observability.generate import render

    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "prometheus.yml").write_text(render(config))
    url = f"http://127.0.0.1:{port}"
    with (run_dir / "prometheus.log").open("w") as log:
        proc = subprocess.Popen(
            [
                tool("prometheus"),
                f"--config.file={run_dir / 'prometheus.yml'}",
                f"--storage.tsdb.path={run_dir / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_ready(f"{url}/-/ready", proc, run_dir / "prometheus.log")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def wait_ready(url: str, proc: subprocess.Popen[Any], log: Path, timeout: float = 60) -> None:
    """Poll `url` until it answers 200; fail with the server's log if it exits or never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{proc.args} exited {proc.returncode}:\n{log.read_text()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    pytest.fail(f"{url} not ready in {timeout}s:\n{log.read_text()}")
