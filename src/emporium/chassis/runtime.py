"""One service process: what `app.py` hands over, and the loop that serves it.

A service's `app.py` exposes `async def build(settings) -> ServiceApp`; `run_service(name)`
loads settings (exiting with one clear line on bad configuration), sets up JSON logs,
metrics and tracing, builds the app, serves gRPC (with the standard health service) and HTTP
(`/metrics`, `/healthz`, plus the service's own ASGI routes if any), runs the background tasks
(outbox relay, consumers), and on SIGTERM/SIGINT shuts down gracefully: health goes
NOT_SERVING, no new calls are taken, in-flight calls finish (within the grace period),
background tasks are stopped, then the `on_stop` callbacks close pools.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import uvicorn

from emporium.chassis.backoff import Backoff
from emporium.chassis.catalog import service
from emporium.chassis.config import ConfigError, ServiceSettings, load_settings
from emporium.chassis.metrics import EVENT_LOOP_LAG
from emporium.chassis.rpc import service_auth
from emporium.chassis.rpc.acl import CallerTable
from emporium.chassis.rpc.service_auth import load_identity

log = logging.getLogger("emporium.runtime")
_TASK_RESTART = Backoff(initial=0.5, maximum=15.0, jitter=0.5)

# A background task runs until `stop` is set, then returns (relays, consumers, sweepers).
BackgroundTask = Callable[["StopSignal"], Awaitable[None]]


class StopSignal:
    """Set once when the process starts shutting down; background loops wait on it."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    async def wait(self, timeout: float | None = None) -> bool:
        """Wait up to `timeout` seconds; True when stopping (handy as an interruptible sleep)."""
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except TimeoutError:
            return False
        return True


@dataclass
class GrpcRegistration:
    """A servicer and the generated `add_XServicer_to_server` function that registers it;
    `service_name` is the full proto name (`emporium.order.v1.OrderService`) used by health."""

    add_to_server: Callable[[Any, grpc.aio.Server], None]
    servicer: Any
    service_name: str


@dataclass
class ServiceApp:
    """Everything a service process runs, built by the service's `app.py`."""

    name: str
    settings: ServiceSettings
    grpc_services: list[GrpcRegistration] = field(default_factory=list)
    http_app: Any | None = None  # an ASGI app mounted at / next to /metrics and /healthz
    background: list[BackgroundTask] = field(default_factory=list)
    on_stop: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    # Readiness checks run by /healthz and folded into gRPC health: name -> async check.
    checks: dict[str, Callable[[], Awaitable[bool]]] = field(default_factory=dict)
    # Verifies bearer tokens arriving in gRPC metadata (chassis.rpc.identity.TokenVerifier).
    verifier: Any | None = None
    # Extra gRPC server options, e.g. cdn's larger `grpc.max_receive_message_length`.
    grpc_options: list[tuple[str, Any]] = field(default_factory=list)
    # Which services may call each method (chassis.rpc.acl); None: the service's
    # declaration, `CALLERS` in `emporium.services.<name>.callers`.
    callers: list[CallerTable] | None = None


BuildFn = Callable[[ServiceSettings], Awaitable[ServiceApp]]


def ping_check(ping: Callable[[], Awaitable[object]]) -> Callable[[], Awaitable[bool]]:
    """A readiness check from a port's `ping` (which raises when its backend is down)."""

    async def check() -> bool:
        await ping()
        return True

    return check


CHECK_TIMEOUT_SECONDS = 1.0
HEALTH_REFRESH_SECONDS = 2.0


def run_service(name: str) -> int:
    """Entry point of one service process (`emporium run <name>`); returns the exit code.

    Bad configuration exits with code 2 and a single line on stderr naming the variable;
    the supervisor does not restart a service that fails that way.
    """
    from emporium.chassis.logging import configure_logging
    from emporium.chassis.tracing import configure_tracing

    info = service(name)
    try:
        settings = load_settings(info.name)
    except ConfigError as exc:
        print(f"emporium {info.name}: configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(info.name, settings.log_level)
    configure_tracing(info.name)
    module = importlib.import_module(f"{info.package}.app")
    try:
        service_auth.install(load_identity(info.name, settings.data_dir))
        run_on_loop(serve(module.build, settings), settings.event_loop)
    except ConfigError as exc:
        print(f"emporium {info.name}: configuration error: {exc}", file=sys.stderr)
        return 2
    return 0


def run_on_loop(main: Coroutine[Any, Any, None], kind: str) -> None:
    """Run `main` to completion on a new event loop of `kind`. uvloop's loop (libuv) costs
    less per wake-up, timer and socket operation than the standard one, and every service is
    an event loop that wakes for each RPC, query result and event."""
    import uvloop

    factory = uvloop.new_event_loop if kind == "uvloop" else None
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main)


async def serve(build: BuildFn, settings: ServiceSettings, stop: StopSignal | None = None) -> None:
    """Build the app, serve it until `stop` (or SIGTERM/SIGINT), then shut down gracefully."""
    stop = stop or StopSignal()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    app = await build(settings)
    runner = _Runner(app, stop)
    try:
        await runner.start()
        log.info(
            "service started",
            extra={"grpc_port": settings.grpc_port, "http_port": settings.http_port},
        )
        await stop.wait()
        log.info("service stopping")
    finally:
        await runner.shutdown()
        log.info("service stopped")


class _QuietUvicorn(uvicorn.Server):
    """uvicorn without its own signal handling: the runtime owns SIGTERM/SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class _Runner:
    """The moving parts of one running service, started and stopped in a safe order."""

    def __init__(self, app: ServiceApp, stop: StopSignal) -> None:
        self.app = app
        self.stop = stop
        self.grpc_server: grpc.aio.Server | None = None
        self.health: Any = None
        self.http_server: _QuietUvicorn | None = None
        self.tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        settings = self.app.settings
        if self.app.grpc_services:
            await self._start_grpc(settings)
        self.http_server = _QuietUvicorn(
            uvicorn.Config(
                http_app(self.app),
                host=settings.host,
                port=settings.http_port,
                log_config=None,
                access_log=False,
                lifespan="off",
                # uvicorn would believe X-Forwarded-For from 127.0.0.1 (its default
                # `forwarded_allow_ips`, or the FORWARDED_ALLOW_IPS variable): anyone on
                # the host could pick a client address. The gateway decides instead,
                # from EMPORIUM_GATEWAY_TRUSTED_PROXIES (api_gateway/forwarded.py).
                proxy_headers=False,
                forwarded_allow_ips="",
            )
        )
        self.tasks.append(asyncio.create_task(self.http_server.serve(), name="http"))
        for task in self.app.background:
            self.tasks.append(
                asyncio.create_task(
                    _supervised(task, self.stop), name=getattr(task, "__qualname__", "task")
                )
            )
        if self.health is not None:
            self.tasks.append(asyncio.create_task(self._watch_health(), name="health"))
        self.tasks.append(
            asyncio.create_task(watch_loop_lag(self.app.name, self.stop), name="loop-lag")
        )
        while self.http_server is not None and not self.http_server.started:
            if self.tasks[0].done():  # the port could not be bound
                self.tasks[0].result()
                raise SystemExit(f"HTTP server on port {settings.http_port} did not start")
            await asyncio.sleep(0.02)

    async def _start_grpc(self, settings: ServiceSettings) -> None:
        from emporium.chassis.rpc.health import add_health
        from emporium.chassis.rpc.server import create_server

        tables = declared_callers(self.app)
        server = create_server(
            self.app.name, self.app.verifier, callers=tables, options=self.app.grpc_options
        )
        for reg in self.app.grpc_services:
            reg.add_to_server(reg.servicer, server)
        self.health = add_health(server, [r.service_name for r in self.app.grpc_services])
        if server.add_insecure_port(f"{settings.host}:{settings.grpc_port}") == 0:
            raise SystemExit(f"gRPC port {settings.grpc_port} is not free")
        await server.start()
        self.grpc_server = server
        await self._refresh_health()

    async def _refresh_health(self) -> None:
        ok, _ = await run_checks(self.app)
        if self.stop.is_set():
            return
        if ok:
            await _maybe_await(self.health.set_serving())
        else:
            await _maybe_await(self.health.set_not_serving())

    async def _watch_health(self) -> None:
        while not await self.stop.wait(HEALTH_REFRESH_SECONDS):
            await self._refresh_health()

    async def shutdown(self) -> None:
        """Health NOT_SERVING -> finish in-flight calls -> stop loops -> close pools."""
        self.stop.set()
        grace = self.app.settings.shutdown_grace_seconds
        if self.health is not None:
            await _maybe_await(self.health.set_not_serving())
        if self.grpc_server is not None:
            await self.grpc_server.stop(grace)
        if self.http_server is not None:
            self.http_server.should_exit = True
        if self.tasks:
            _, pending = await asyncio.wait(self.tasks, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        for close in reversed(self.app.on_stop):
            try:
                await close()
            except Exception:
                log.exception("error while closing")


def declared_callers(app: ServiceApp) -> list[CallerTable]:
    """The callers tables of the app's gRPC services: `app.callers`, else `CALLERS` of the
    service's `callers` module. A service without a table for each of its gRPC services
    does not start (nobody could call it, and that would be found out only in use)."""
    tables = app.callers
    if tables is None:
        module_name = f"{service(app.name).package}.callers"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:
            raise SystemExit(f"{app.name}: no {module_name} declares who may call it") from None
        tables = list(module.CALLERS)
    covered = {table.service for table in tables}
    missing = [r.service_name for r in app.grpc_services if r.service_name not in covered]
    if missing:
        raise SystemExit(f"{app.name}: no callers table for {', '.join(missing)}")
    return tables


async def _maybe_await(value: Any) -> None:
    if asyncio.iscoroutine(value):
        await value


# How often the event-loop lag probe runs (4 timers a second cost nothing measurable).
LOOP_LAG_INTERVAL_S = 0.25


async def watch_loop_lag(
    service: str, stop: StopSignal, interval: float = LOOP_LAG_INTERVAL_S
) -> None:
    """Observe how late the loop runs a timer: the time a request would have waited behind
    blocking or CPU-bound code in this process (the dashboards' event-loop lag panel)."""
    lag = EVENT_LOOP_LAG.labels(service)
    loop = asyncio.get_running_loop()
    while True:
        started = loop.time()
        if await stop.wait(interval):
            return
        lag.observe(max(0.0, loop.time() - started - interval))


async def _supervised(task: BackgroundTask, stop: StopSignal) -> None:
    """Run a background loop; if it crashes, log and restart it with jittered backoff, so a
    broker hiccup does not silently end a relay or a consumer for the life of the process."""
    crashes = 0
    while not stop.is_set():
        try:
            await task(stop)
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            crashes += 1
            delay = _TASK_RESTART.delay(crashes)
            log.exception("background task crashed; restarting", extra={"retry_in_s": delay})
            if await stop.wait(delay):
                return


async def run_checks(app: ServiceApp) -> tuple[bool, dict[str, str]]:
    """Run every readiness check with a timeout; a check that raises or hangs is `fail`."""

    async def one(name: str, check: Callable[[], Awaitable[bool]]) -> str:
        try:
            if await asyncio.wait_for(check(), CHECK_TIMEOUT_SECONDS):
                return "ok"
            log.warning("readiness check failed", extra={"check": name})
        except Exception as exc:
            log.warning(
                "readiness check failed",
                extra={"check": name, "error": f"{type(exc).__name__}: {exc}"},
            )
        return "fail"

    names = list(app.checks)
    results = await asyncio.gather(*(one(n, app.checks[n]) for n in names))
    status = dict(zip(names, results, strict=True))
    return all(r == "ok" for r in results), status


def http_app(app: ServiceApp) -> Any:
    """The process's ASGI app: `/metrics`, `/healthz` and `/livez` first, then the service's
    own routes, wrapped in request-id/tracing and HTTP metrics middleware.

    `/healthz` is readiness (its dependencies answer: take the pod out of the load balancer
    while they do not); `/livez` only says the event loop serves requests, so a database
    outage never makes Kubernetes restart every replica at once."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from emporium.chassis.metrics import HttpMetricsMiddleware, render_metrics
    from emporium.chassis.tracing import TracingMiddleware

    async def metrics(_: Request) -> Response:
        payload, content_type = render_metrics()
        return Response(payload, media_type=content_type)

    async def healthz(_: Request) -> Response:
        ok, checks = await run_checks(app)
        body = {"status": "ok" if ok else "fail", "service": app.name, "checks": checks}
        return JSONResponse(body, status_code=200 if ok else 503)

    async def livez(_: Request) -> Response:
        return JSONResponse({"status": "ok", "service": app.name})

    inner: Any = Starlette(
        routes=[
            Route("/metrics", metrics),
            Route("/healthz", healthz),
            Route("/livez", livez),
        ]
    )
    if app.http_app is not None:
        inner = RuntimePathsFirst(inner, app.http_app)
    return TracingMiddleware(HttpMetricsMiddleware(inner, app.name), app.name)


RUNTIME_PATHS = frozenset({"/metrics", "/healthz", "/livez"})


class RuntimePathsFirst:
    """`/metrics`, `/healthz` and `/livez` go to the runtime's routes, every other request to the
    service's own app, whatever its path. (Not a `Mount("/")`: its `.*` does not match a
    percent-encoded newline, so such a path got a bare `text/plain` 404 that never reached
    the service's own error handling.)"""

    def __init__(self, runtime: Any, service_app: Any) -> None:
        self.runtime = runtime
        self.service_app = service_app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        own = scope["type"] == "lifespan" or scope.get("path") in RUNTIME_PATHS
        await (self.runtime if own else self.service_app)(scope, receive, send)
