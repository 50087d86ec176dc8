"""A Tantivy index on disk (tantivy-py): the embedded profile's search index.

Tantivy allows one writer per index directory (it holds a lock file), so the adapter keeps a
single `IndexWriter`, serializes writes with a lock, commits after every `upsert`/`delete`
batch and reloads the searcher, so a write is searchable once the call returns (`refresh()`
has nothing left to do). A directory therefore belongs to one process: the search service.
Reads run concurrently in worker threads; Tantivy searchers are snapshots.

The whole document is kept as JSON in a stored bytes field (`source`) and returned as is;
the other fields exist only to be searched, filtered, sorted or counted.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import tantivy

from emporium.chassis.search.base import (
    DESCRIPTION_BOOST,
    FUZZY_PENALTY,
    NAME_BOOST,
    Document,
    SearchIndex,
    SearchQuery,
    SearchResult,
    check_document,
    fuzziness,
    is_tombstone,
    to_datetime,
    unique_ids,
    words,
)

WRITER_HEAP_BYTES = 50_000_000
MAX_FACET_VALUES = 1000
TOMBSTONE_FIELD = "tombstone"


def _schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("id", tokenizer_name="raw", index_option="basic")
    builder.add_text_field("name", tokenizer_name="default")
    builder.add_text_field("description", tokenizer_name="default")
    builder.add_text_field("category", tokenizer_name="raw", fast=True, index_option="basic")
    builder.add_integer_field("price_minor", indexed=True, fast=True)
    builder.add_integer_field("created_at_ms", indexed=True, fast=True)
    builder.add_integer_field(TOMBSTONE_FIELD, indexed=True)  # 1 on tombstones only
    builder.add_bytes_field("source", stored=True)
    return builder.build()


def _open_index(path: Path) -> tantivy.Index:
    """The index in `path` (created if empty). An index written with another schema is not
    migrated in place: it is a read model, rebuilt by replaying `product.updated` into an
    empty directory, so the error says which directory to move away."""
    path.mkdir(parents=True, exist_ok=True)
    try:
        return tantivy.Index(_schema(), path=str(path), reuse=True)
    except ValueError as exc:
        if "schema does not match" not in str(exc):
            raise
        raise RuntimeError(
            f"search index {path} was written with an older schema; move it away and "
            "let search-service rebuild it from product.updated"
        ) from exc


class TantivyIndex(SearchIndex):
    """A product index in directory `path` (created on first use)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._index: tantivy.Index | None = None
        self._writer: tantivy.IndexWriter | None = None
        self._lock = threading.Lock()

    # -- opening ---------------------------------------------------------------------------

    def _opened(self) -> tantivy.Index:
        with self._lock:
            if self._index is None:
                self._index = _open_index(self.path)
            return self._index

    def _writable(self) -> tuple[tantivy.Index, tantivy.IndexWriter]:
        """Index and its single writer (call with the lock held)."""
        if self._index is None:
            self._index = _open_index(self.path)
        if self._writer is None:
            self._writer = self._index.writer(heap_size=WRITER_HEAP_BYTES, num_threads=1)
        return self._index, self._writer

    # -- writes ----------------------------------------------------------------------------

    async def ping(self) -> None:
        await asyncio.to_thread(self._opened)

    async def upsert(self, docs: Sequence[Mapping[str, Any]]) -> None:
        checked = [check_document(d) for d in docs]
        if checked:
            await asyncio.to_thread(self._upsert, checked)

    def _upsert(self, docs: list[Document]) -> None:
        latest = {d["id"]: d for d in docs}  # the last version of an id in a batch wins
        with self._lock:
            index, writer = self._writable()
            for doc_id, doc in latest.items():
                writer.delete_documents_by_term("id", doc_id)
                writer.add_document(_to_tantivy(doc))
            writer.commit()
            index.reload()

    async def delete(self, ids: Sequence[str]) -> None:
        if ids:
            await asyncio.to_thread(self._delete, unique_ids(ids))

    def _delete(self, ids: list[str]) -> None:
        with self._lock:
            index, writer = self._writable()
            for doc_id in ids:
                writer.delete_documents_by_term("id", doc_id)
            writer.commit()
            index.reload()

    async def refresh(self) -> None:
        """Writes are committed and the searcher reloaded by each write call already."""
        await asyncio.to_thread(lambda: self._opened().reload())

    async def close(self) -> None:
        def close_writer() -> None:
            with self._lock:
                if self._writer is not None:
                    self._writer.wait_merging_threads()  # also releases the directory lock
                self._writer, self._index = None, None

        await asyncio.to_thread(close_writer)

    # -- reads -----------------------------------------------------------------------------

    async def get(self, doc_id: str) -> Document | None:
        return await asyncio.to_thread(self._get, doc_id)

    def _get(self, doc_id: str) -> Document | None:
        index = self._opened()
        searcher = index.searcher()
        found = searcher.search(tantivy.Query.term_query(index.schema, "id", doc_id), limit=1)
        if not found.hits:
            return None
        return _from_tantivy(searcher.doc(found.hits[0][1]))

    async def search(self, query: SearchQuery) -> SearchResult:
        return await asyncio.to_thread(self._search, query)

    def _search(self, q: SearchQuery) -> SearchResult:
        index = self._opened()
        schema = index.schema
        searcher = index.searcher()
        unfiltered = _matching(schema, q)  # text + price: what the facets count
        category = [tantivy.Query.term_query(schema, "category", q.category)] if q.category else []
        full = _all_of([unfiltered, *category])
        order: dict[str, Any] = {}
        if q.sort in ("price_asc", "price_desc"):
            order = {
                "order_by_field": "price_minor",
                "order": tantivy.Order.Asc if q.sort == "price_asc" else tantivy.Order.Desc,
            }
        elif q.sort == "newest":
            order = {"order_by_field": "created_at_ms", "order": tantivy.Order.Desc}
        # tantivy needs limit >= 1; a zero-size page still reports the total and facets
        found = searcher.search(full, limit=max(q.limit, 1), count=True, offset=q.offset, **order)
        hits = []
        for key, address in found.hits[: q.limit]:
            doc = _from_tantivy(searcher.doc(address))
            doc["score"] = None if order else float(key)
            hits.append(doc)
        return SearchResult(hits=hits, total=_count(found), facets=_facets(searcher, unfiltered))


def _matching(schema: tantivy.Schema, q: SearchQuery) -> tantivy.Query:
    """Text and price filters (everything except the category), never a tombstone."""
    parts = [_word_query(schema, w) for w in words(q.text)]
    if q.min_price is not None or q.max_price is not None:
        parts.append(
            tantivy.Query.range_query(
                schema, "price_minor", tantivy.FieldType.Integer, q.min_price, q.max_price
            )
        )
    live = _all_of(parts)
    tombstones = tantivy.Query.term_query(schema, TOMBSTONE_FIELD, 1)
    return tantivy.Query.boolean_query(
        [(tantivy.Occur.Must, live), (tantivy.Occur.MustNot, tombstones)]
    )


def _word_query(schema: tantivy.Schema, word: str) -> tantivy.Query:
    """One query word: exact in name or description, or within its typo distance."""
    q = tantivy.Query
    fields = (("name", NAME_BOOST), ("description", DESCRIPTION_BOOST))
    options = [q.boost_query(q.term_query(schema, f, word), boost) for f, boost in fields]
    distance = fuzziness(word)
    if distance:
        options += [
            q.boost_query(q.fuzzy_term_query(schema, f, word, distance), boost * FUZZY_PENALTY)
            for f, boost in fields
        ]
    return q.boolean_query([(tantivy.Occur.Should, o) for o in options])


def _all_of(parts: list[tantivy.Query]) -> tantivy.Query:
    if not parts:
        return tantivy.Query.all_query()
    if len(parts) == 1:
        return parts[0]
    return tantivy.Query.boolean_query([(tantivy.Occur.Must, p) for p in parts])


def _facets(searcher: tantivy.Searcher, query: tantivy.Query) -> dict[str, dict[str, int]]:
    agg = {"category": {"terms": {"field": "category", "size": MAX_FACET_VALUES}}}
    result = searcher.aggregate(query, agg)
    buckets = result.get("category", {}).get("buckets", [])
    return {"category": {str(b["key"]): int(b["doc_count"]) for b in buckets}}


def _to_tantivy(doc: Document) -> tantivy.Document:
    created: datetime = doc["created_at"]
    out = tantivy.Document()
    out.add_text("id", doc["id"])
    out.add_text("name", doc["name"])
    out.add_text("description", doc["description"])
    if doc["category"]:
        out.add_text("category", doc["category"])
    out.add_integer("price_minor", doc["price_minor"])
    out.add_integer("created_at_ms", int(created.timestamp() * 1000))
    if is_tombstone(doc):
        out.add_integer(TOMBSTONE_FIELD, 1)
    source = {**doc, "created_at": created.isoformat()}
    out.add_bytes("source", json.dumps(source, default=str).encode())
    return out


def _count(found: tantivy.SearchResult) -> int:
    """Matches in total (the stub lacks `count`, which `search(count=True)` fills in)."""
    return int(getattr(found, "count", None) or 0)


def _from_tantivy(stored: tantivy.Document) -> Document:
    raw: bytes = stored.get_first("source") or b"{}"
    source: Document = json.loads(raw)
    source["created_at"] = to_datetime(source["created_at"])
    return source
