"""Every statement analytics-service runs on its OLAP store.

The fact tables come from `domain.Schema`; they are created on first use (`CREATE TABLE IF
NOT EXISTS`, safe on every start and from several processes), so neither a consumer nor a
report can run against a missing table, and `app.build` connects nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from emporium.chassis.olap.base import OlapStore, Row
from emporium.services.analytics.domain import FactBatch, Schema, Statement


class FactStore:
    """The fact tables of one `Schema` on one OLAP store."""

    def __init__(self, olap: OlapStore, schema: Schema | None = None) -> None:
        self.olap = olap
        self.schema = schema or Schema()
        self._ready = False
        self._lock = asyncio.Lock()

    async def ensure_schema(self) -> None:
        """Create the fact tables once per process (idempotent DDL)."""
        if self._ready:
            return
        async with self._lock:
            if not self._ready:
                for ddl in self.schema.ddl():
                    await self.olap.execute(ddl)
                self._ready = True

    async def append(self, batches: Iterable[FactBatch]) -> None:
        await self.ensure_schema()
        for batch in batches:
            if batch.rows:
                await self.olap.insert(batch.table, batch.columns, batch.rows)

    async def rows(self, statement: Statement) -> list[Row]:
        await self.ensure_schema()
        sql, parameters = statement
        return await self.olap.query(sql, parameters)
