"""The environment that points every service at the production adapters CI provides.

Each relational service gets its own fresh PostgreSQL database (dropped afterwards), the kv
port a dedicated Redis database (flushed first), the bus the Kafka broker; MongoDB and S3
are used too when their servers are there. The embedded profile needs nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import redis

from tests.backends import REAL_BACKENDS, backend_url

RELATIONAL = ("user", "order", "product", "payment", "inventory", "auth")
E2E_REDIS_DB = 7


def _dsn(url: str, database: str | None = None) -> str:
    parts = urlsplit(url.replace("postgresql+asyncpg://", "postgresql://"))
    path = f"/{database}" if database else parts.path
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


async def _admin(url: str, statements: list[str]) -> None:
    conn = await asyncpg.connect(_dsn(url))
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def _optional(name: str) -> str | None:
    return os.environ.get(REAL_BACKENDS[name]) or None


@contextlib.contextmanager
def production_env(profile: str) -> Iterator[dict[str, str]]:
    if profile == "embedded":
        yield {}
        return
    pg = backend_url("postgresql")
    kv = backend_url("redis")
    kafka = backend_url("kafka")
    names = {svc: f"e2e_{svc}_{uuid.uuid4().hex[:8]}" for svc in RELATIONAL}
    asyncio.run(_admin(pg, [f'CREATE DATABASE "{db}"' for db in names.values()]))
    kv_parts = urlsplit(kv)
    kv_url = urlunsplit((kv_parts.scheme, kv_parts.netloc, f"/{E2E_REDIS_DB}", "", ""))
    redis.Redis.from_url(kv_url).flushdb()
    env = {
        f"EMPORIUM_{svc.upper()}_DATABASE_URL": _dsn(pg, db).replace(
            "postgresql://", "postgresql+asyncpg://"
        )
        for svc, db in names.items()
    }
    env["EMPORIUM_KV_URL"] = kv_url
    env["EMPORIUM_BUS_URL"] = kafka
    mongo = _optional("mongodb")
    if mongo:
        env["EMPORIUM_DOCUMENTS_URL"] = mongo.rsplit("/", 1)[0] + f"/e2e_{uuid.uuid4().hex[:8]}"
    s3 = _optional("s3")
    if s3:
        env["EMPORIUM_BLOB_URL"] = s3 if "create_bucket" in s3 else f"{s3}&create_bucket=true"
        # moto's S3 accepts any credentials; boto3 insists on having some.
        env.setdefault("AWS_ACCESS_KEY_ID", os.environ.get("AWS_ACCESS_KEY_ID", "test"))
        env.setdefault("AWS_SECRET_ACCESS_KEY", os.environ.get("AWS_SECRET_ACCESS_KEY", "test"))
    try:
        yield env
    finally:
        asyncio.run(
            _admin(pg, [f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)' for db in names.values()])
        )
