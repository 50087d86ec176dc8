"""Start the platform the way `make up` does (`emporium up`), for end-to-end tests."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from emporium.chassis.catalog import PAYMENT_SANDBOX, SERVICES

GATEWAY = "http://127.0.0.1:8080"
START_TIMEOUT_SECONDS = 180.0


@dataclass
class Platform:
    process: subprocess.Popen[bytes]
    data_dir: Path
    output: Path

    def pid_of(self, service: str) -> int:
        return int((self.data_dir / "run" / f"{service}.pid").read_text())

    def log(self) -> str:
        return self.output.read_text(errors="replace")

    def service_logs(self, lines: int = 40) -> str:
        """The last `lines` of every service's own log (`var/log/<service>.log`): what a
        failed end-to-end assertion needs beside the launcher's output."""
        parts = []
        for path in sorted((self.data_dir / "log").glob("*.log")):
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {path.name} (last {len(tail)} lines)\n" + "\n".join(tail))
        return "\n".join(parts)


def ports() -> list[int]:
    found: list[int] = [PAYMENT_SANDBOX.http_port]
    for s in SERVICES:
        found.append(s.http_port)
        if s.grpc_port:
            found.append(s.grpc_port)
    return found


def port_is_free(port: int) -> bool:
    """Nothing listens on the port. (Not a bind test: the service ports lie in Linux's
    ephemeral range, so a client socket of some other program lingering in TIME_WAIT on one
    of them would make a bind fail although no server holds it.)"""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) != 0


def wait_healthy(timeout: float = START_TIMEOUT_SECONDS) -> httpx.Response:
    deadline = time.monotonic() + timeout
    last: httpx.Response | None = None
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            last = httpx.get(f"{GATEWAY}/api/v1/health", timeout=3)
            if last.status_code == 200:
                return last
        time.sleep(0.5)
    raise AssertionError(
        f"platform not healthy in {timeout}s; last answer: "
        f"{last.text if last is not None else 'none'}"
    )


@contextlib.contextmanager
def running_platform(
    tmp: Path, extra_env: dict[str, str] | None = None, demo: bool = False
) -> Iterator[Platform]:
    busy = [p for p in ports() if not port_is_free(p)]
    assert not busy, f"ports already in use (is `make up` running?): {busy}"
    env = {**os.environ, "EMPORIUM_DATA_DIR": str(tmp / "var"), **(extra_env or {})}
    output = tmp / "up.log"
    with output.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "emporium",
                "up",
                "--data-dir",
                str(tmp / "var"),
                *([] if demo else ["--no-demo"]),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    platform = Platform(proc, tmp / "var", output)
    try:
        yield platform
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
