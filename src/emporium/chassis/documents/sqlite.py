"""JSON documents in one SQLite file (JSON1 functions): the embedded profile's document store.

Each collection is a table `docs_<collection>(id TEXT PRIMARY KEY, doc TEXT)` holding the
document as JSON text; filters and sorts compile to `json_extract(doc, '$.a.b')`, and
`create_index` builds an expression index on exactly that expression, so SQLite uses it.
Field paths are validated (`check_field`) before they become part of the SQL text; values are
always bound parameters.

One connection per store, in WAL mode. Statements of one store run one at a time under an
asyncio lock, because a transaction on a shared connection would otherwise take in the
statements of whichever coroutine runs next.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiosqlite

from emporium.chassis.documents.base import (
    Document,
    DocumentStore,
    DuplicateDocument,
    Filter,
    Scalar,
    check_collection,
    check_document,
    check_field,
    check_filter,
    check_page,
)


def _table(collection: str) -> str:
    return f'"docs_{check_collection(collection)}"'


def _path(field: str) -> str:
    return f"'$.{check_field(field)}'"


def _value_of(field: str) -> str:
    """The SQL expression of a field's value (the `id` column for `_id`)."""
    return "id" if field == "_id" else f"json_extract(doc, {_path(field)})"


def _condition(field: str, value: Scalar) -> tuple[str, list[Any]]:
    """One equality as SQL, with MongoDB's meaning: None also matches a missing field, a
    boolean never equals a number, a string never equals an object's JSON text."""
    if field == "_id":
        return ("id = ?", [value]) if isinstance(value, str) else ("0", [])
    kind = f"json_type(doc, {_path(field)})"
    if value is None:
        return f"{_value_of(field)} IS NULL", []
    if isinstance(value, bool):
        return f"{kind} = '{'true' if value else 'false'}'", []
    if isinstance(value, int | float):
        return f"{kind} IN ('integer', 'real') AND {_value_of(field)} = ?", [value]
    return f"{kind} = 'text' AND {_value_of(field)} = ?", [value]


def _where(where: Filter | None) -> tuple[str, list[Any]]:
    parts: list[str] = []
    params: list[Any] = []
    for field, value in check_filter(where).items():
        sql, args = _condition(field, value)
        parts.append(sql)
        params.extend(args)
    return (" WHERE " + " AND ".join(parts) if parts else ""), params


class SqliteDocumentStore(DocumentStore):
    """A document store in the SQLite file `path` (created, with its folder, on first use)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()
        self._tables: set[str] = set()

    async def _conn(self) -> aiosqlite.Connection:
        """The connection (lock held by the caller), opened on first use."""
        if self._db is None:
            await asyncio.to_thread(self.path.parent.mkdir, parents=True, exist_ok=True)
            db = await aiosqlite.connect(self.path, isolation_level=None)
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA busy_timeout=5000")
            self._db = db
        return self._db

    async def _collection(self, collection: str) -> tuple[aiosqlite.Connection, str]:
        """The connection and the collection's table, created if needed (lock held)."""
        db = await self._conn()
        table = _table(collection)
        if table not in self._tables:
            await db.execute(
                f"CREATE TABLE IF NOT EXISTS {table} (id TEXT PRIMARY KEY, doc TEXT NOT NULL)"
            )
            self._tables.add(table)
        return db, table

    async def ping(self) -> None:
        async with self._lock:
            db = await self._conn()
            await db.execute("SELECT 1")

    async def close(self) -> None:
        async with self._lock:
            if self._db is not None:
                db, self._db = self._db, None
                self._tables.clear()
                await db.close()

    async def insert(self, collection: str, doc: Mapping[str, Any]) -> None:
        clean = check_document(doc)
        async with self._lock:
            db, table = await self._collection(collection)
            try:
                await db.execute(
                    f"INSERT INTO {table} (id, doc) VALUES (?, ?)", (clean["_id"], _dump(clean))
                )
            except sqlite3.IntegrityError:
                raise DuplicateDocument(collection, clean["_id"]) from None

    async def upsert(self, collection: str, doc: Mapping[str, Any]) -> bool:
        clean = check_document(doc)
        row = (clean["_id"], _dump(clean))
        async with self._lock:
            db, table = await self._collection(collection)
            await db.execute("BEGIN IMMEDIATE")
            try:
                cursor = await db.execute(
                    f"INSERT INTO {table} (id, doc) VALUES (?, ?) ON CONFLICT(id) DO NOTHING", row
                )
                created = cursor.rowcount == 1
                if not created:
                    await db.execute(f"UPDATE {table} SET doc = ? WHERE id = ?", row[::-1])
                await db.execute("COMMIT")
            except BaseException:
                await db.execute("ROLLBACK")
                raise
        return created

    async def get(self, collection: str, doc_id: str) -> Document | None:
        async with self._lock:
            db, table = await self._collection(collection)
            async with db.execute(f"SELECT doc FROM {table} WHERE id = ?", (doc_id,)) as cursor:
                row = await cursor.fetchone()
        return None if row is None else _load(row[0])

    async def delete(self, collection: str, doc_id: str) -> bool:
        async with self._lock:
            db, table = await self._collection(collection)
            cursor = await db.execute(f"DELETE FROM {table} WHERE id = ?", (doc_id,))
            return cursor.rowcount == 1

    async def find(
        self,
        collection: str,
        where: Filter | None = None,
        *,
        sort: str | None = None,
        descending: bool = False,
        limit: int | None = None,
        skip: int = 0,
    ) -> list[Document]:
        check_page(limit, skip)
        clause, params = _where(where)
        direction = "DESC" if descending else "ASC"
        order = f"id {direction}"
        if sort is not None and sort != "_id":
            order = f"{_value_of(sort)} {direction}, {order}"
        table = _table(collection)
        sql = f"SELECT doc FROM {table}{clause} ORDER BY {order} LIMIT ? OFFSET ?"
        params += [-1 if limit is None else limit, skip]
        async with self._lock:
            db, _ = await self._collection(collection)
            async with db.execute(sql, params) as cursor:
                rows = await cursor.fetchall()
        return [_load(row[0]) for row in rows]

    async def count(self, collection: str, where: Filter | None = None) -> int:
        clause, params = _where(where)
        async with self._lock:
            db, table = await self._collection(collection)
            async with db.execute(f"SELECT count(*) FROM {table}{clause}", params) as cursor:
                row = await cursor.fetchone()
        return int(row[0]) if row is not None else 0

    async def create_index(self, collection: str, field: str) -> None:
        if field == "_id":
            return  # the primary key
        expression = _value_of(field)
        async with self._lock:
            db, table = await self._collection(collection)
            name = f'"ix_{table.strip(chr(34))}_{field}"'
            await db.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({expression})")


def _dump(doc: Document) -> str:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


def _load(text: str) -> Document:
    doc: Document = json.loads(text)
    return doc
