"""ClickHouse's engine in-process (chDB): the embedded profile's OLAP store.

chDB is synchronous and its engine is global to the process: one data path per process at a
time (opening a second path while one is open fails). So every call runs in a worker thread
(`asyncio.to_thread`) under one process-wide lock, and a service opens one store. Queries
return ClickHouse's JSON format (with its column types), converted to Python values the way
clickhouse-connect returns them; parameters use ClickHouse's own `{name:Type}` binding, which
chDB supports (`Session.query(..., params=...)`), so no value is ever pasted into SQL.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from emporium.chassis.olap.base import (
    OlapError,
    OlapStore,
    Row,
    check_identifier,
    param_text,
    to_utc,
)

# The engine is per process, so is the lock that serializes calls into it.
_ENGINE_LOCK = threading.Lock()
_WRAPPERS = re.compile(r"^(?:Nullable|LowCardinality)\((.*)\)$")
_TZ_ARG = re.compile(r"'([^']+)'")


class ChdbStore(OlapStore):
    """An OLAP store on chDB with its data under `path` (created on first use)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._session: Any = None

    def _open(self) -> Any:
        """The chDB session (call with the engine lock held)."""
        if self._session is None:
            from chdb import session as chs  # deferred: loads the whole engine

            self.path.mkdir(parents=True, exist_ok=True)
            try:
                session = chs.Session(str(self.path))  # type: ignore[no-untyped-call]
                session.query("SET session_timezone = 'UTC'")  # type: ignore[no-untyped-call]
            except RuntimeError as exc:
                raise OlapError(f"cannot open chDB at {self.path}: {exc}") from exc
            self._session = session
        return self._session

    def _run(self, sql: str, fmt: str, parameters: Mapping[str, Any] | None) -> Any:
        params = {k: param_text(v) for k, v in (parameters or {}).items()} or None
        with _ENGINE_LOCK:
            session = self._open()
            try:
                return session.query(sql, fmt, params=params)
            except RuntimeError as exc:  # chdb's ChdbError derives from RuntimeError
                raise OlapError(str(exc)) from exc

    async def ping(self) -> None:
        await asyncio.to_thread(self._run, "SELECT 1", "CSV", None)

    async def execute(self, sql: str, parameters: Mapping[str, Any] | None = None) -> None:
        await asyncio.to_thread(self._run, sql, "CSV", parameters)

    async def insert(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> None:
        """Rows go in as JSONEachRow data after the statement: data, not SQL, so values
        need no quoting; `best_effort` reads the ISO-8601 UTC timestamps written here."""
        if not rows:
            return
        names = [check_identifier(c) for c in columns]
        body = "\n".join(
            json.dumps(dict(zip(names, row, strict=True)), default=_json_value) for row in rows
        )
        cols = ", ".join(f"`{c}`" for c in names)
        sql = (
            f"INSERT INTO {check_identifier(table)} ({cols}) "
            f"SETTINGS date_time_input_format = 'best_effort' FORMAT JSONEachRow\n{body}"
        )
        await asyncio.to_thread(self._run, sql, "CSV", None)

    async def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> list[Row]:
        result = await asyncio.to_thread(self._run, sql, "JSON", parameters)
        raw = result.bytes()
        if not raw.strip():
            return []
        doc = json.loads(raw, parse_float=Decimal)
        types = {col["name"]: col["type"] for col in doc.get("meta", [])}
        return [{k: _from_json(types.get(k, ""), v) for k, v in row.items()} for row in doc["data"]]

    async def close(self) -> None:
        def close_session() -> None:
            with _ENGINE_LOCK:
                if self._session is not None:
                    self._session.close()
                    self._session = None

        await asyncio.to_thread(close_session)


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return to_utc(value).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot insert a {type(value).__name__}")


def _from_json(ch_type: str, value: Any) -> Any:
    """A value of ClickHouse type `ch_type` from its JSON form to what clickhouse-connect
    would return for it."""
    while match := _WRAPPERS.match(ch_type):
        ch_type = match.group(1)
    if value is None:
        return None
    if ch_type.startswith(("Int", "UInt")):
        return int(value)
    if ch_type.startswith("Float"):
        return float(value)
    if ch_type.startswith("Decimal"):
        return Decimal(str(value))
    if ch_type.startswith("DateTime"):
        tz = _TZ_ARG.search(ch_type)
        parsed = datetime.fromisoformat(str(value))
        return to_utc(parsed.replace(tzinfo=ZoneInfo(tz.group(1) if tz else "UTC")))
    if ch_type.startswith("Date"):
        return date.fromisoformat(str(value))
    if ch_type.startswith("Array(") and isinstance(value, list):
        return [_from_json(ch_type[6:-1], v) for v in value]
    return _plain(value)


def _plain(value: Any) -> Any:
    """Decimals the JSON parser made for types not handled above become floats."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
