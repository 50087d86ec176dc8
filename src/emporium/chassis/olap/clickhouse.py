"""ClickHouse over HTTP with clickhouse-connect's async client: the production OLAP store.

URL: `clickhouse://user:password@host:8123/database` (`clickhouses://` for TLS, default port
8443). Same SQL and `{name:Type}` parameters as the chDB adapter: clickhouse-connect sends
them for server-side binding. Queries run with `session_timezone = 'UTC'` so the functions
that depend on the time zone (`toStartOfDay`...) bucket the same way as in chDB.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import clickhouse_connect
from clickhouse_connect.driver.asyncclient import AsyncClient
from clickhouse_connect.driver.exceptions import ClickHouseError

from emporium.chassis.olap.base import (
    OlapError,
    OlapStore,
    Row,
    check_identifier,
    normalize_value,
    param_text,
    to_utc,
)


@dataclass(frozen=True)
class ClickHouseTarget:
    """Where the server is, as parsed from a `clickhouse://` or `clickhouses://` URL."""

    host: str
    port: int
    username: str
    password: str
    database: str
    secure: bool
    options: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_url(cls, url: str) -> ClickHouseTarget:
        parts = urlsplit(url)
        if parts.scheme not in ("clickhouse", "clickhouses") or not parts.hostname:
            raise ValueError(f"not a clickhouse[s]://host URL: {url!r}")
        secure = parts.scheme == "clickhouses"
        return cls(
            host=parts.hostname,
            port=parts.port or (8443 if secure else 8123),
            username=unquote(parts.username or "default"),
            password=unquote(parts.password or ""),
            database=parts.path.strip("/") or "default",
            secure=secure,
            options=tuple(parse_qsl(parts.query)),
        )


class ClickHouseStore(OlapStore):
    """An OLAP store on a ClickHouse server; the client is created on first use."""

    def __init__(self, target: ClickHouseTarget) -> None:
        self.target = target
        self._client: AsyncClient | None = None
        self._opening = asyncio.Lock()

    async def _ch(self) -> AsyncClient:
        if self._client is None:
            async with self._opening:
                if self._client is None:
                    t = self.target
                    extra: dict[str, Any] = dict(t.options)  # e.g. ?connect_timeout=5
                    self._client = await clickhouse_connect.get_async_client(
                        host=t.host,
                        port=t.port,
                        username=t.username,
                        password=t.password,
                        database=t.database,
                        secure=t.secure,
                        settings={"session_timezone": "UTC"},
                        **extra,
                    )
        return self._client

    async def ping(self) -> None:
        client = await self._ch()
        if not await client.ping():
            raise OlapError(f"ClickHouse at {self.target.host}:{self.target.port} is down")

    async def execute(self, sql: str, parameters: Mapping[str, Any] | None = None) -> None:
        client = await self._ch()
        try:
            await client.command(sql, parameters=_params(parameters))
        except ClickHouseError as exc:
            raise OlapError(str(exc)) from exc

    async def insert(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> None:
        if not rows:
            return
        client = await self._ch()
        data = [[to_utc(v) if isinstance(v, datetime) else v for v in row] for row in rows]
        try:
            await client.insert(
                check_identifier(table),
                data,
                column_names=[check_identifier(c) for c in columns],
            )
        except ClickHouseError as exc:
            raise OlapError(str(exc)) from exc

    async def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> list[Row]:
        client = await self._ch()
        try:
            result = await client.query(sql, parameters=_params(parameters))
        except ClickHouseError as exc:
            raise OlapError(str(exc)) from exc
        return [{k: normalize_value(v) for k, v in row.items()} for row in result.named_results()]

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()


def _params(parameters: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return {k: param_text(v) for k, v in parameters.items()} if parameters else None
