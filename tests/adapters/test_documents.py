"""Contract suite of the document port: every assertion runs on the SQLite store and on a real
MongoDB-wire server (FerretDB, started by `.ci/mongodb.sh`)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from emporium.chassis.documents import DocumentStore, DuplicateDocument, open_documents
from emporium.chassis.errors import DomainError, ErrorCode
from tests.backends import backend_url


@pytest.fixture(params=["sqlite", "mongodb"], ids=["sqlite", "mongodb"])
async def docs(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[DocumentStore]:
    if request.param == "sqlite":
        store = open_documents(f"sqlite://{tmp_path}/documents.sqlite3")
    else:
        store = open_documents(backend_url("mongodb"))
    await store.ping()
    yield store
    await store.close()


@pytest.fixture
def coll() -> str:
    """A fresh collection per test: the MongoDB server is shared and reused between runs."""
    return f"t{uuid.uuid4().hex[:16]}"


NOTIFICATION: dict[str, Any] = {
    "_id": "evt-1",
    "kind": "order_created",
    "recipient": {"user_id": "u1", "email": "ada@example.com"},
    "subject": "Commande reçue ✓",
    "attempts": 0,
    "amount": 12.5,
    "sent": False,
    "error": None,
    "channels": ["email", "push"],
    "lines": [{"sku": "A", "qty": 2}],
}


async def _insert_many(docs: DocumentStore, coll: str, rows: list[dict[str, Any]]) -> None:
    for row in rows:
        await docs.insert(coll, row)


async def test_insert_then_get_returns_an_equal_document(docs: DocumentStore, coll: str) -> None:
    await docs.insert(coll, NOTIFICATION)
    assert await docs.get(coll, "evt-1") == NOTIFICATION
    assert await docs.get(coll, "missing") is None
    assert await docs.get(f"{coll}x", "evt-1") is None  # collections are separate


async def test_duplicate_insert_is_a_conflict_and_keeps_the_first(
    docs: DocumentStore, coll: str
) -> None:
    await docs.insert(coll, {"_id": "evt-1", "n": 1})
    with pytest.raises(DuplicateDocument) as caught:
        await docs.insert(coll, {"_id": "evt-1", "n": 2})
    assert caught.value.code == ErrorCode.CONFLICT
    assert caught.value.reason == "duplicate_document"
    assert await docs.get(coll, "evt-1") == {"_id": "evt-1", "n": 1}


async def test_concurrent_inserts_of_one_id_let_exactly_one_through(
    docs: DocumentStore, coll: str
) -> None:
    results = await asyncio.gather(
        *(docs.insert(coll, {"_id": "evt-9", "by": i}) for i in range(8)),
        return_exceptions=True,
    )
    assert sum(1 for r in results if r is None) == 1
    assert all(isinstance(r, DuplicateDocument) for r in results if r is not None)
    assert await docs.count(coll) == 1


async def test_upsert_creates_then_replaces_the_whole_document(
    docs: DocumentStore, coll: str
) -> None:
    assert await docs.upsert(coll, {"_id": "n1", "status": "pending", "attempts": 0})
    assert not await docs.upsert(coll, {"_id": "n1", "status": "sent"})
    assert await docs.get(coll, "n1") == {"_id": "n1", "status": "sent"}
    assert await docs.count(coll) == 1


async def test_delete(docs: DocumentStore, coll: str) -> None:
    await docs.insert(coll, {"_id": "a"})
    assert await docs.delete(coll, "a")
    assert not await docs.delete(coll, "a")
    assert await docs.get(coll, "a") is None
    await docs.insert(coll, {"_id": "a", "again": True})  # the id is free again
    assert await docs.get(coll, "a") == {"_id": "a", "again": True}


ROWS: list[dict[str, Any]] = [
    {"_id": "n1", "user": "u1", "status": "sent", "at": 30, "to": {"email": "a@x.io"}},
    {"_id": "n2", "user": "u1", "status": "failed", "at": 10, "to": {"email": "b@x.io"}},
    {"_id": "n3", "user": "u2", "status": "sent", "at": 20, "to": {"email": "a@x.io"}},
    {"_id": "n4", "user": "u2", "status": "sent", "at": 20, "flag": True, "score": 1},
    {"_id": "n5", "user": "u3", "status": None, "at": 5.5, "flag": 1, "score": 2.0},
]


def _ids(found: list[dict[str, Any]]) -> list[str]:
    return [d["_id"] for d in found]


async def test_find_by_equality_on_top_level_and_dotted_fields(
    docs: DocumentStore, coll: str
) -> None:
    await _insert_many(docs, coll, ROWS)
    assert _ids(await docs.find(coll, {"user": "u1"})) == ["n1", "n2"]
    assert _ids(await docs.find(coll, {"user": "u2", "status": "sent"})) == ["n3", "n4"]
    assert _ids(await docs.find(coll, {"to.email": "a@x.io"})) == ["n1", "n3"]
    assert _ids(await docs.find(coll, {"_id": "n4"})) == ["n4"]
    assert await docs.find(coll, {"user": "nobody"}) == []
    assert _ids(await docs.find(coll)) == ["n1", "n2", "n3", "n4", "n5"]
    assert (await docs.find(coll, {"_id": "n1"}))[0] == ROWS[0]


async def test_find_matches_types_as_mongodb_does(docs: DocumentStore, coll: str) -> None:
    await _insert_many(docs, coll, ROWS)
    # None matches an explicit null and a missing field.
    assert _ids(await docs.find(coll, {"status": None})) == ["n5"]
    assert _ids(await docs.find(coll, {"flag": None})) == ["n1", "n2", "n3"]
    assert _ids(await docs.find(coll, {"to.email": None})) == ["n4", "n5"]
    # Booleans never equal numbers; ints equal floats of the same value.
    assert _ids(await docs.find(coll, {"flag": True})) == ["n4"]
    assert _ids(await docs.find(coll, {"flag": 1})) == ["n5"]
    assert _ids(await docs.find(coll, {"score": 2})) == ["n5"]
    assert _ids(await docs.find(coll, {"score": 1.0})) == ["n4"]
    assert _ids(await docs.find(coll, {"at": 5.5})) == ["n5"]
    # A string never equals a number.
    assert await docs.find(coll, {"at": "30"}) == []


async def test_find_sorts_by_one_field_with_id_breaking_ties(
    docs: DocumentStore, coll: str
) -> None:
    await _insert_many(docs, coll, ROWS)
    assert _ids(await docs.find(coll, sort="at")) == ["n5", "n2", "n3", "n4", "n1"]
    assert _ids(await docs.find(coll, sort="at", descending=True)) == [
        "n1",
        "n4",
        "n3",
        "n2",
        "n5",
    ]
    assert _ids(await docs.find(coll, sort="_id", descending=True)) == [
        "n5",
        "n4",
        "n3",
        "n2",
        "n1",
    ]
    assert _ids(await docs.find(coll, {"status": "sent"}, sort="to.email")) == ["n4", "n1", "n3"]


async def test_skip_and_limit_page_through_everything_once(docs: DocumentStore, coll: str) -> None:
    await _insert_many(docs, coll, [{"_id": f"d{i:02d}", "n": i % 4} for i in range(11)])
    seen: list[str] = []
    for page in range(4):
        found = await docs.find(coll, sort="n", descending=True, limit=3, skip=page * 3)
        assert len(found) == (3 if page < 3 else 2)
        seen += _ids(found)
    expected = sorted(
        (f"d{i:02d}" for i in range(11)), key=lambda d: (int(d[1:]) % 4, d), reverse=True
    )
    assert seen == expected
    assert await docs.find(coll, limit=0) == []
    assert _ids(await docs.find(coll, limit=2)) == ["d00", "d01"]
    assert await docs.find(coll, skip=20) == []


async def test_count(docs: DocumentStore, coll: str) -> None:
    assert await docs.count(coll) == 0
    await _insert_many(docs, coll, ROWS)
    assert await docs.count(coll) == 5
    assert await docs.count(coll, {"status": "sent"}) == 3
    assert await docs.count(coll, {"to.email": "a@x.io", "user": "u2"}) == 1


async def test_create_index_is_idempotent_and_queries_still_answer(
    docs: DocumentStore, coll: str
) -> None:
    await _insert_many(docs, coll, ROWS)
    for _ in range(2):
        await docs.create_index(coll, "user")
        await docs.create_index(coll, "to.email")
        await docs.create_index(coll, "_id")
    assert _ids(await docs.find(coll, {"user": "u2"}, sort="at")) == ["n3", "n4"]
    assert _ids(await docs.find(coll, {"to.email": "b@x.io"})) == ["n2"]
    await docs.create_index(f"{coll}new", "user")  # on a collection not used yet
    assert await docs.count(f"{coll}new") == 0


@pytest.mark.parametrize(
    "bad",
    [
        {"no_id": 1},
        {"_id": ""},
        {"_id": 7},
        {"_id": "x", "when": datetime(2024, 1, 1, tzinfo=UTC)},
        {"_id": "x", "blob": b"bytes"},
        {"_id": "x", "nan": float("nan")},
        {"_id": "x", "$set": 1},
        {"_id": "x", "a.b": 1},
        {"_id": "x", "nested": [{"$where": "1"}]},
    ],
    ids=["no-id", "empty-id", "int-id", "datetime", "bytes", "nan", "dollar", "dot", "nested"],
)
async def test_documents_that_json_cannot_carry_are_refused(
    docs: DocumentStore, coll: str, bad: dict[str, Any]
) -> None:
    for write in (docs.insert, docs.upsert):
        with pytest.raises(DomainError) as caught:
            await write(coll, bad)
        assert caught.value.code == ErrorCode.INVALID_ARGUMENT
    assert await docs.count(coll) == 0


async def test_invalid_names_filters_and_pages_are_refused(docs: DocumentStore, coll: str) -> None:
    calls = [
        docs.insert("bad name", {"_id": "x"}),
        docs.get("drop;--", "x"),
        docs.find(coll, {"a..b": 1}),
        docs.find(coll, {"$where": "1"}),
        docs.find(coll, {"a": {"$gt": 1}}),  # type: ignore[dict-item]
        docs.find(coll, {"a": [1]}),  # type: ignore[dict-item]
        docs.find(coll, sort="x'); DROP TABLE t; --"),
        docs.find(coll, limit=100_000),
        docs.find(coll, skip=-1),
        docs.create_index(coll, "$bad"),
    ]
    for call in calls:
        with pytest.raises(DomainError) as caught:
            await call
        assert caught.value.code == ErrorCode.INVALID_ARGUMENT


def test_open_documents_checks_urls(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="scheme"):
        open_documents("couchdb://localhost/db")
    with pytest.raises(ValueError, match="database name"):
        open_documents("mongodb://127.0.0.1:27017")
    store = open_documents(f"sqlite:///{tmp_path}/x.sqlite3")  # four slashes: SQLAlchemy style
    assert str(getattr(store, "path", "")) == f"{tmp_path}/x.sqlite3"
