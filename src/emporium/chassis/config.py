"""Settings of one service process, from `EMPORIUM_`-prefixed environment variables only.

Every backend is a URL, per service: `EMPORIUM_<SERVICE>_DATABASE_URL`, `..._KV_URL`,
`..._BUS_URL`, `..._DOCUMENTS_URL`, `..._SEARCH_URL`, `..._OLAP_URL`, `..._BLOB_URL`. A value
not set for the service falls back to the platform-wide `EMPORIUM_<KIND>_URL` (handy for the
bus, which all services share), and then to the embedded default under `EMPORIUM_DATA_DIR`.
A URL with an unknown scheme stops the service at start with one line naming the variable.

Only `EMPORIUM_*` variables are read, and only by `load_settings`: `ServiceSettings` is a
plain pydantic model, not a pydantic-settings `BaseSettings`, which would also pick up bare
names (`DATABASE_URL`, `HOST`, `NAME`, `LOG_LEVEL`...) that other software on the host sets
for its own use, and point every service at them.

`EMPORIUM_<SERVICE>_OUTBOX_RELAY` (else `EMPORIUM_OUTBOX_RELAY`): `builtin` (default) runs the
outbox relay in the service process; `off` leaves the outbox to log-tailing CDC (Debezium's
outbox event router, docs/cdc.md), which publishes the same messages from the WAL.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from emporium.chassis.catalog import ServiceInfo, service

# Accepted URL schemes per port; the first one of each list is the embedded default's.
SCHEMES: dict[str, tuple[str, ...]] = {
    "database_url": ("sqlite+aiosqlite", "sqlite", "postgresql+asyncpg", "postgresql", "postgres"),
    "kv_url": ("memory", "redis", "rediss"),
    "bus_url": ("embedded", "kafka"),
    "documents_url": ("sqlite", "mongodb", "mongodb+srv"),
    "search_url": ("tantivy", "http", "https", "elasticsearch", "opensearch", "opensearchs"),
    "olap_url": ("chdb", "clickhouse", "clickhouses"),
    "blob_url": ("file", "s3"),
}
# Settings that, like the URLs, fall back to a platform-wide `EMPORIUM_<NAME>`.
PLATFORM_WIDE = (*SCHEMES, "outbox_relay", "event_retention_hours", "event_loop")


class ConfigError(Exception):
    """Bad configuration; the message is one line that names the variable to fix."""


class ServiceSettings(BaseModel):
    """What a service process needs to know; see the module docstring for the variables.
    Built by `load_settings` from the environment, or directly (tests): never from the
    environment by itself."""

    model_config = ConfigDict(extra="ignore")

    name: str = ""
    host: str = "127.0.0.1"
    grpc_port: int | None = Field(default=None, ge=1, le=65535)
    http_port: int = Field(default=0, ge=0, le=65535)
    data_dir: Path = Path("var")
    database_url: str = ""
    kv_url: str = ""
    bus_url: str = ""
    documents_url: str = ""
    search_url: str = ""
    olap_url: str = ""
    blob_url: str = ""
    # Who publishes the outbox: the built-in relay, or (`off`) CDC tailing the database's log.
    outbox_relay: Literal["builtin", "off"] = "builtin"
    rpc_timeout_seconds: float = Field(default=5.0, gt=0)
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)
    # How long published outbox rows and inbox rows are kept (events.housekeeping); at
    # least the bus's retention. `EMPORIUM_EVENT_RETENTION_HOURS` for every service.
    event_retention_hours: float = Field(default=168.0, gt=0)
    log_level: str = "INFO"
    # The event loop the process runs on: uvloop (libuv, in C) or the standard library's
    # (`EMPORIUM_EVENT_LOOP=asyncio`, kept to measure one against the other: bench/RESULTS.md).
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"

    def embedded_defaults(self) -> dict[str, str]:
        d = self.data_dir.resolve()
        return {
            "database_url": f"sqlite+aiosqlite:///{d}/{self.name}.sqlite3",
            "kv_url": f"memory://{d}/{self.name}-kv.aof",
            "bus_url": f"embedded://{d}/bus.sqlite3",
            "documents_url": f"sqlite://{d}/{self.name}-documents.sqlite3",
            "search_url": f"tantivy://{d}/{self.name}-index",
            "olap_url": f"chdb://{d}/{self.name}-olap",
            "blob_url": f"file://{d}/{self.name}-blobs",
        }


def _check_url(var: str, field_name: str, url: str) -> str:
    scheme = urlsplit(url).scheme
    allowed = SCHEMES[field_name]
    if not scheme or scheme not in allowed:
        shown = scheme or "(none)"
        raise ConfigError(
            f"{var}: unknown scheme {shown!r} in {url!r}; expected one of {', '.join(allowed)}"
        )
    return normalize_database_url(url) if field_name == "database_url" else url


def normalize_database_url(url: str) -> str:
    """`postgresql://` -> `postgresql+asyncpg://`, `sqlite://` -> `sqlite+aiosqlite://`."""
    scheme, sep, rest = url.partition("://")
    driver = {
        "postgresql": "postgresql+asyncpg",
        "postgres": "postgresql+asyncpg",
        "sqlite": "sqlite+aiosqlite",
    }.get(scheme, scheme)
    return f"{driver}{sep}{rest}"


def url_path(url: str) -> Path:
    """The filesystem path of a file-like URL (`embedded:///var/bus.sqlite3`, `file:///x`).

    Relative paths are written with a host part (`tantivy://var/index`) and are taken
    relative to the working directory.
    """
    parts = urlsplit(url)
    return Path(unquote(parts.netloc + parts.path))


def load_settings(name: str, environ: dict[str, str] | None = None) -> ServiceSettings:
    """Settings of service `name` from `environ` (default: the process environment).

    Raises ConfigError, with one line naming the variable, on any invalid value.
    """
    env = dict(os.environ if environ is None else environ)
    info: ServiceInfo = service(name)
    prefix = info.env_prefix
    scoped = {k[len(prefix) :].lower(): v for k, v in env.items() if k.startswith(prefix)}
    values: dict[str, object] = {
        "name": info.name,
        "grpc_port": info.grpc_port,
        "http_port": info.http_port,
    }
    if info.grpc_port is None and "EMPORIUM_GATEWAY_PORT" in env:
        values["http_port"] = env["EMPORIUM_GATEWAY_PORT"]
    if "EMPORIUM_DATA_DIR" in env:
        values["data_dir"] = env["EMPORIUM_DATA_DIR"]
    if "EMPORIUM_LOG_LEVEL" in env:
        values["log_level"] = env["EMPORIUM_LOG_LEVEL"]
    for field_name in ServiceSettings.model_fields:
        if field_name in PLATFORM_WIDE and f"EMPORIUM_{field_name.upper()}" in env:
            values[field_name] = env[f"EMPORIUM_{field_name.upper()}"]
        if field_name in scoped and field_name != "name":
            values[field_name] = scoped[field_name]
    try:
        settings = ServiceSettings.model_validate(values)
    except ValidationError as exc:
        err = exc.errors()[0]
        field_name = str(err["loc"][0]) if err["loc"] else "?"
        own = field_name in scoped or field_name not in PLATFORM_WIDE
        var = f"{prefix if own else 'EMPORIUM_'}{field_name.upper()}"
        raise ConfigError(f"{var}: {err['msg']}") from None
    for field_name, default in settings.embedded_defaults().items():
        url = getattr(settings, field_name) or default
        var = (
            f"{prefix}{field_name.upper()}"
            if field_name in scoped
            else f"EMPORIUM_{field_name.upper()}"
        )
        setattr(settings, field_name, _check_url(var, field_name, url))
    return settings


def grpc_target(name: str, environ: dict[str, str] | None = None) -> str:
    """Where to reach backend `name` over gRPC: `EMPORIUM_<NAME>_GRPC_TARGET` (e.g. a
    Kubernetes service `order:50052`), else loopback on its well-known port."""
    env = os.environ if environ is None else environ
    info = service(name)
    return env.get(f"{info.env_prefix}GRPC_TARGET") or f"127.0.0.1:{info.grpc_port}"
