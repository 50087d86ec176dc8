"""Each relational service's migrations bring a fresh database to head, on SQLite and on a
real PostgreSQL, and the result is exactly what the service's `store.metadata` describes.

Why: `emporium up` and a Kubernetes rollout run `migrate` on whatever database they are
given; a revision that only works on one engine, or a MetaData that drifted from the
migrations, shows up here rather than as a failing query in production.
"""

from __future__ import annotations

import importlib
import sqlite3
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect
from sqlalchemy.engine import make_url

from emporium.chassis.db import create_engine
from emporium.chassis.migrations import alembic_config, migrate, migrate_sync, migrations_dir
from tests.backends import backend_url

EVENT_TABLES = {"outbox", "inbox", "event_lease"}
# The tables each service's migrations must create: the event plumbing for producers and
# consumers, plus what the service owns.
EXPECTED_TABLES: dict[str, set[str]] = {
    "user": EVENT_TABLES | {"users", "addresses"},
    "order": EVENT_TABLES,
    "product": EVENT_TABLES,
    "payment": EVENT_TABLES,
    "inventory": EVENT_TABLES,
    "auth": {"credentials"},
}
NON_RELATIONAL = ["notification", "search", "recommendation", "analytics", "cdn"]


@pytest.fixture(params=["sqlite", "postgresql"], ids=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database: a SQLite file, or a new PostgreSQL database dropped after."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/nested/dir/service.sqlite3"
        return
    admin = make_url(backend_url("postgresql"))
    name = f"emporium_mig_{uuid.uuid4().hex}"
    dsn = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


async def inspect_db(url: str, fn: Any) -> Any:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(fn)
    finally:
        await engine.dispose()


def tables(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names())


def head_revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def script_head(service: str) -> str:
    """The newest revision in the service's migrations folder."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory(str(migrations_dir(service))).get_current_head()
    assert head is not None
    return head


@pytest.mark.parametrize("service", list(EXPECTED_TABLES))
async def test_migrate_to_head_creates_the_tables(service: str, database_url: str) -> None:
    await migrate(service, database_url)

    assert await inspect_db(database_url, tables) >= EXPECTED_TABLES[service] | {"alembic_version"}
    assert await inspect_db(database_url, head_revision) == script_head(service)


@pytest.mark.parametrize("service", list(EXPECTED_TABLES))
async def test_migrated_schema_matches_store_metadata(service: str, database_url: str) -> None:
    metadata = importlib.import_module(f"emporium.services.{service}.store").metadata
    await migrate(service, database_url)

    def diff(conn: Connection) -> list[Any]:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    assert await inspect_db(database_url, diff) == []


@pytest.mark.parametrize("service", ["order", "auth"])
async def test_migrate_twice_is_a_no_op(service: str, database_url: str) -> None:
    await migrate(service, database_url)
    await migrate(service, database_url)

    assert await inspect_db(database_url, head_revision) == script_head(service)


@pytest.mark.parametrize("service", NON_RELATIONAL)
async def test_services_without_a_relational_database_have_nothing_to_migrate(
    service: str, tmp_path: Path
) -> None:
    assert migrations_dir(service) is None
    target = tmp_path / "untouched.sqlite3"
    await migrate(service, f"sqlite+aiosqlite:///{target}")
    assert not target.exists()


def test_migrate_sync_is_what_the_cli_calls(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/cli/product.sqlite3"
    migrate_sync("product", url)

    conn = sqlite3.connect(tmp_path / "cli" / "product.sqlite3")
    try:
        (revision,) = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    finally:
        conn.close()
    assert revision == script_head("product")


def test_alembic_command_line_path_opens_its_own_engine(tmp_path: Path) -> None:
    """`alembic upgrade head` with no connection handed over (an operator's shell)."""
    from alembic import command

    script_location = migrations_dir("user")
    assert script_location is not None
    url = f"sqlite:///{tmp_path}/100%/user.sqlite3"  # a `%` survives ConfigParser
    command.upgrade(alembic_config("user", url, script_location), "head")

    conn = sqlite3.connect(tmp_path / "100%" / "user.sqlite3")
    try:
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    finally:
        conn.close()
    assert names >= EVENT_TABLES
