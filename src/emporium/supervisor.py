"""`emporium up`: every service as its own process on loopback, supervised.

Each service runs as `python -m emporium run <name>` in its own session (so a terminal's
Ctrl-C reaches only the supervisor, which then stops the children in order). A child that
dies is restarted with exponential backoff (reset after it has stayed up a while); a child
that exits with code 2 (bad configuration) is not restarted: the platform stops and the
child's one-line reason is shown. On Ctrl-C/SIGTERM every child gets SIGTERM, then SIGKILL
after the grace period, so every port is released when `up` returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from emporium.chassis.catalog import GATEWAY, PAYMENT_SANDBOX, SERVICES, ServiceInfo
from emporium.chassis.config import ConfigError
from emporium.chassis.rpc.service_keys import OPERATOR, ensure_local_keys

CONFIG_ERROR_EXIT = 2
STABLE_AFTER_SECONDS = 30.0
MAX_BACKOFF_SECONDS = 10.0
STOP_GRACE_SECONDS = 15.0
ADMIN_EMAIL = "admin@emporium.local"


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM the child if the supervisor itself is killed (-9)."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Child:
    """One supervised service process and its restart bookkeeping."""

    info: ServiceInfo
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    backoff: float = 0.5
    died_at: float | None = None

    def start(self, env: dict[str, str]) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "emporium", "run", self.info.name],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        log.close()
        self.started_at = time.monotonic()
        pid_file = self.log_path.parent.parent / "run" / f"{self.info.name}.pid"
        pid_file.parent.mkdir(parents=True, exist_ok=True)
        pid_file.write_text(f"{self.process.pid}\n")

    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def last_log_line(self) -> str:
        with contextlib.suppress(OSError):
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
            return lines[-1] if lines else ""
        return ""


class Supervisor:
    """Starts, watches and stops the children; see the module docstring."""

    def __init__(
        self,
        services: list[ServiceInfo],
        log_dir: Path,
        echo: bool = True,
        after_ready: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.children = [Child(s, log_dir / f"{s.name}.log") for s in services]
        self.stopping = asyncio.Event()
        self.echo = echo
        self.env = dict(os.environ)
        self.after_ready = after_ready

    def say(self, text: str) -> None:
        if self.echo:
            print(f"[emporium] {text}", flush=True)

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stopping.set)
        for child in self.children:
            child.start(self.env)
        ready = asyncio.create_task(self._announce_when_ready())
        code = 0
        try:
            while not self.stopping.is_set():
                failed = self._restart_dead()
                if failed is not None:
                    self.say(f"{failed.info.name} cannot start: {failed.last_log_line()}")
                    code = CONFIG_ERROR_EXIT
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), 0.25)
        finally:
            ready.cancel()
            self.say("stopping every service ...")
            await asyncio.to_thread(self.stop_all)
            self.say("all services stopped; ports released")
        return code

    def _restart_dead(self) -> Child | None:
        now = time.monotonic()
        for child in self.children:
            code = child.exit_code()
            if code is None:
                if now - child.started_at > STABLE_AFTER_SECONDS:
                    child.backoff = 0.5
                continue
            if code == CONFIG_ERROR_EXIT:
                return child
            if child.died_at is None:
                child.died_at = now
                self.say(
                    f"{child.info.name} exited with {code}; restarting in {child.backoff:.1f}s"
                )
            if now - child.died_at < child.backoff:
                continue
            child.restarts += 1
            child.backoff = min(child.backoff * 2, MAX_BACKOFF_SECONDS)
            child.died_at = None
            child.start(self.env)
            self.say(f"{child.info.name} restarted (restart #{child.restarts})")
        return None

    def stop_all(self) -> None:
        alive = [c.process for c in self.children if c.process and c.process.poll() is None]
        for proc in alive:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for proc in alive:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    async def _announce_when_ready(self) -> None:
        async with httpx.AsyncClient(timeout=1.0) as client:
            pending = {c.info.name: c.info for c in self.children}
            started = time.monotonic()
            while pending:
                for name, info in list(pending.items()):
                    with contextlib.suppress(httpx.HTTPError):
                        r = await client.get(f"http://127.0.0.1:{http_port(info)}/healthz")
                        if r.status_code == 200:
                            del pending[name]
                await asyncio.sleep(0.3)
        self.say(f"all {len(self.children)} processes ready in {time.monotonic() - started:.1f}s")
        self.say(where_table(self.children))
        if self.after_ready is not None:
            await self.after_ready()


def where_table(children: list[Child]) -> str:
    rows = [f"{'service':<16}{'gRPC':<18}{'HTTP (metrics, healthz)':<34}log"]
    for c in children:
        grpc_addr = f"127.0.0.1:{c.info.grpc_port}" if c.info.grpc_port else "-"
        rows.append(
            f"{c.info.name:<16}{grpc_addr:<18}"
            f"{'http://127.0.0.1:' + str(http_port(c.info)):<34}{c.log_path}"
        )
    rows.append(f"Shop: http://127.0.0.1:{http_port(GATEWAY)}/  (open it in a browser)")
    rows.append(
        f"REST API: http://127.0.0.1:{http_port(GATEWAY)}/api/v1/health  "
        f"(OpenAPI: /openapi.json)  — Ctrl-C stops everything"
    )
    return "\n".join(rows)


def http_port(info: ServiceInfo) -> int:
    """The HTTP port a service really listens on (the gateway's is configurable)."""
    if info is GATEWAY and os.environ.get("EMPORIUM_GATEWAY_PORT", "").isdigit():
        return int(os.environ["EMPORIUM_GATEWAY_PORT"])
    return info.http_port


def wants_payment_sandbox(only: list[str] | None) -> bool:
    """The built-in provider runs unless payment-service is pointed at another provider (or
    neither payment nor the sandbox is among `only`)."""
    if os.environ.get("EMPORIUM_PAYMENT_PROVIDER_URL"):
        return False
    return not only or bool({"payment", PAYMENT_SANDBOX.name, "payment-sandbox"} & set(only))


def ensure_admin_password(data_dir: Path) -> str | None:
    """Make sure auth-service gets an administrator password: EMPORIUM_ADMIN_PASSWORD if set,
    else the one generated on the first start (kept, owner-readable only, in
    `<data_dir>/admin-password` so the demo loader and the next start agree). Returns the
    password when it was generated just now, so it is printed exactly once."""
    if os.environ.get("EMPORIUM_ADMIN_PASSWORD"):
        return None
    path = data_dir / "admin-password"
    created = None
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        created = secrets.token_urlsafe(15)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(created + "\n")
    os.environ["EMPORIUM_ADMIN_PASSWORD"] = path.read_text().strip()
    return created


def demo_loader(supervisor: Supervisor, data_dir: Path) -> Callable[[], Awaitable[None]]:
    """Load the demo catalog once, after everything is ready (see emporium.demo)."""
    from emporium.demo import load_demo_catalog, marker_path

    async def load() -> None:
        marker = marker_path(data_dir)
        if marker.exists():
            return
        supervisor.say("loading the demo catalog (first start) ...")
        started = time.monotonic()
        try:
            count = await load_demo_catalog(
                f"http://127.0.0.1:{http_port(GATEWAY)}",
                ADMIN_EMAIL,
                os.environ["EMPORIUM_ADMIN_PASSWORD"],
            )
        except Exception as exc:  # the shop still runs; say why and try again next start
            supervisor.say(f"demo catalog not loaded: {type(exc).__name__}: {exc}")
            return
        marker.write_text(f"{count}\n")
        supervisor.say(f"demo catalog: {count} products in {time.monotonic() - started:.1f}s")

    return load


def up(data_dir: Path, only: list[str] | None = None, demo: bool = True) -> int:
    """Run every service (or `only` these) until Ctrl-C; load the demo catalog once."""
    os.environ.setdefault("EMPORIUM_DATA_DIR", str(data_dir))
    try:  # every identity's key pair, created here once, so nobody waits for another's
        ensure_local_keys(data_dir, [*(s.name for s in SERVICES), OPERATOR], os.environ)
    except (ConfigError, OSError) as exc:
        print(f"[emporium] configuration error: {exc}", file=sys.stderr)
        return 2
    generated = ensure_admin_password(data_dir)
    if generated:
        print(
            f"[emporium] administrator {ADMIN_EMAIL} password: {generated}  "
            f"(generated once, kept in {data_dir / 'admin-password'})",
            flush=True,
        )
    services = [s for s in SERVICES if not only or s.name in only]
    if wants_payment_sandbox(only):
        services.append(PAYMENT_SANDBOX)
    supervisor = Supervisor(services, data_dir / "log")
    if demo and not only:
        supervisor.after_ready = demo_loader(supervisor, data_dir)
    return asyncio.run(supervisor.run())
