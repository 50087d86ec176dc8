"""Alembic, driven from code: each relational service keeps its revisions in its own package
(`emporium/services/<name>/migrations/`), and `migrate(service, url)` upgrades that service's
database to head. No `alembic.ini`: the script location comes from the package, the URL from
the service's settings, so the same call works for `emporium migrate`, `emporium up`, tests
and a Kubernetes init container.

A service's `migrations/env.py` is two lines: import the service's MetaData and call
`run_env(metadata)`. It runs on SQLite (aiosqlite; batch mode, since SQLite cannot ALTER most
things) and PostgreSQL (asyncpg) alike, either on the connection `migrate` hands over or, when
the `alembic` command line runs it, on an engine of its own.
"""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, MetaData

from emporium.chassis.catalog import service as service_info
from emporium.chassis.config import normalize_database_url
from emporium.chassis.db import create_engine

# Constraint names that are stable across databases, so batch mode (SQLite) and later
# migrations can refer to constraints by name. Services build their MetaData with it.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def service_metadata() -> MetaData:
    """A fresh MetaData with the shared naming convention, for a service's `store.py`."""
    return MetaData(naming_convention=NAMING_CONVENTION)


def migrations_dir(service: str) -> Path | None:
    """The service's Alembic folder, or None when it has no relational database."""
    spec = importlib.util.find_spec(service_info(service).package)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "migrations"
        if (candidate / "env.py").is_file():
            return candidate
    return None


def alembic_config(service: str, url: str, script_location: Path) -> Any:
    """An Alembic Config built in code (no ini file)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.set_main_option("path_separator", "os")
    # ConfigParser interpolation: a `%` in a URL (an escaped password) must be doubled.
    config.set_main_option("sqlalchemy.url", normalize_database_url(url).replace("%", "%%"))
    config.attributes["service"] = service
    return config


async def migrate(service: str, url: str) -> None:
    """Upgrade `service`'s database at `url` to head; a no-op for non-relational services.

    Runs in one transaction where the database allows transactional DDL (PostgreSQL, SQLite),
    so a failed revision leaves the schema as it was.
    """
    script_location = migrations_dir(service)
    if script_location is None:
        return
    config = alembic_config(service, url, script_location)
    engine = create_engine(normalize_database_url(url))
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_upgrade_head, config)
    finally:
        await engine.dispose()


def migrate_sync(service: str, url: str) -> None:
    """`migrate` for synchronous callers (the CLI); must not run inside an event loop."""
    asyncio.run(migrate(service, url))


def _upgrade_head(connection: Connection, config: Any) -> None:
    from alembic import command

    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def run_env(target_metadata: MetaData) -> None:
    """The body of every service's `migrations/env.py`."""
    from alembic import context

    connection = context.config.attributes.get("connection")
    if context.is_offline_mode():
        url = context.config.get_main_option("sqlalchemy.url")
        context.configure(
            url=url,
            target_metadata=target_metadata,
            literal_binds=True,
            render_as_batch=str(url).startswith("sqlite"),
        )
        with context.begin_transaction():
            context.run_migrations()
    elif isinstance(connection, Connection):
        _run_on(connection, target_metadata)
    else:
        asyncio.run(_run_with_own_engine(target_metadata))


async def _run_with_own_engine(target_metadata: MetaData) -> None:
    """The `alembic` command line: no connection handed over, open one from the URL."""
    from alembic import context

    url = context.config.get_main_option("sqlalchemy.url") or ""
    engine = create_engine(normalize_database_url(url))
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_run_on, target_metadata)
    finally:
        await engine.dispose()


def _run_on(connection: Connection, target_metadata: MetaData) -> None:
    from alembic import context

    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
