"""The small interface both OLAP adapters implement, and the conversions they share.

The same ClickHouse SQL runs on both adapters (chDB *is* ClickHouse's engine): MergeTree
tables, `toStartOfHour`/`toStartOfDay`, `sum`/`count`. Values are bound server-side with
ClickHouse's `{name:Type}` placeholders, never pasted into SQL text. Conventions the
analytics code relies on:

- Times are UTC: declare columns `DateTime64(3, 'UTC')` and placeholders
  `{since:DateTime64(3, 'UTC')}`; Python datetimes given as parameters or row values are
  converted to UTC (naive ones are taken as UTC) and returned as aware UTC datetimes.
- Consumers must be idempotent, and the OLAP store makes that cheap: key fact tables by event
  id with `ReplacingMergeTree` and read them with `FINAL` (or aggregate with
  `uniqExact(event_id)` / `argMax`), so an event inserted twice after a redelivery counts
  once. Plain `MergeTree` reads without `FINAL` would count it twice until a merge.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

Row = dict[str, Any]

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


class OlapError(Exception):
    """A statement failed (bad SQL, unknown table, a value the column type rejects...)."""


class OlapStore(ABC):
    """A connection to a ClickHouse-compatible engine."""

    @abstractmethod
    async def ping(self) -> None:
        """Raise if the engine is unreachable (used by health checks)."""

    @abstractmethod
    async def execute(self, sql: str, parameters: Mapping[str, Any] | None = None) -> None:
        """Run a statement returning nothing (DDL, `OPTIMIZE`, `INSERT ... SELECT`)."""

    @abstractmethod
    async def insert(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> None:
        """Append `rows` (values in `columns` order) to `table` as one batch."""

    @abstractmethod
    async def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> list[Row]:
        """Rows of a SELECT as dicts of Python values (int, float, Decimal, str, date,
        aware UTC datetime, lists...)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release the engine or connections; the store is unusable afterwards."""


def check_identifier(name: str) -> str:
    """`name` if it is a plain (optionally `db.`-qualified) identifier, else OlapError.

    Table and column names cannot be bound as parameters, so they are checked instead.
    """
    if not _IDENTIFIER.match(name):
        raise OlapError(f"not a plain identifier: {name!r}")
    return name


def to_utc(value: datetime) -> datetime:
    """Aware UTC datetime; naive values are taken as UTC (the platform's convention)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def param_text(value: Any) -> Any:
    """A parameter value in the text form ClickHouse parses for `{name:Type}` placeholders.

    Datetimes become `YYYY-MM-DD hh:mm:ss[.ffffff]` in UTC, so a placeholder typed
    `DateTime64(3, 'UTC')` (or `DateTime('UTC')` for whole seconds) reads the same instant on
    both adapters; other values are left for the driver to format.
    """
    if isinstance(value, datetime):
        utc = to_utc(value)
        return utc.strftime("%Y-%m-%d %H:%M:%S.%f" if utc.microsecond else "%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def normalize_value(value: Any) -> Any:
    """Result values made uniform across adapters (datetimes to aware UTC)."""
    if isinstance(value, datetime):
        return to_utc(value)
    if isinstance(value, list | tuple):
        return [normalize_value(v) for v in value]
    return value
