"""The document port on MongoDB through PyMongo's native async API: the production store.

URL: `mongodb://[user:password@]host:port[,host:port...]/<database>?replicaSet=...` or
`mongodb+srv://...`; the database is the URL's path and is required. PyMongo's URI options
apply as given (`serverSelectionTimeoutMS` defaults to 5 s here so a missing server fails a
request quickly instead of hanging for 30 s). The client is created on first use and closed
by `close()`. Tested against FerretDB (the MongoDB wire protocol on SQLite), see
`.ci/mongodb.sh`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from emporium.chassis.documents.base import (
    Document,
    DocumentStore,
    DuplicateDocument,
    Filter,
    check_collection,
    check_document,
    check_field,
    check_filter,
    check_page,
)

SERVER_SELECTION_TIMEOUT_MS = 5000


def database_name(url: str) -> str:
    """The database a `mongodb://` URL names in its path; ValueError when it names none."""
    name = urlsplit(url).path.strip("/")
    if not name:
        raise ValueError(f"MongoDB URL needs a database name in its path: {url!r}")
    return name


class MongoDocumentStore(DocumentStore):
    """A document store on one MongoDB database."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.database = database_name(url)
        self._client: AsyncMongoClient[Document] | None = None

    def _db(self) -> AsyncDatabase[Document]:
        if self._client is None:
            options: dict[str, Any] = {}
            if "serverselectiontimeoutms" not in self.url.lower():
                options["serverSelectionTimeoutMS"] = SERVER_SELECTION_TIMEOUT_MS
            self._client = AsyncMongoClient(self.url, **options)
        return self._client[self.database]

    def _collection(self, collection: str) -> Any:
        return self._db()[check_collection(collection)]

    async def ping(self) -> None:
        await self._db().command("ping")

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()

    async def insert(self, collection: str, doc: Mapping[str, Any]) -> None:
        clean = check_document(doc)
        try:
            await self._collection(collection).insert_one(clean)
        except DuplicateKeyError:
            raise DuplicateDocument(collection, clean["_id"]) from None

    async def upsert(self, collection: str, doc: Mapping[str, Any]) -> bool:
        clean = check_document(doc)
        result = await self._collection(collection).replace_one(
            {"_id": clean["_id"]}, clean, upsert=True
        )
        return result.upserted_id is not None

    async def get(self, collection: str, doc_id: str) -> Document | None:
        found: Document | None = await self._collection(collection).find_one({"_id": doc_id})
        return found

    async def delete(self, collection: str, doc_id: str) -> bool:
        result = await self._collection(collection).delete_one({"_id": doc_id})
        return bool(result.deleted_count == 1)

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
        query = check_filter(where)
        direction = DESCENDING if descending else ASCENDING
        order = [("_id", direction)]
        if sort is not None and check_field(sort) != "_id":
            order.insert(0, (sort, direction))
        if limit == 0:  # MongoDB reads a limit of 0 as "no limit"
            return []
        cursor = self._collection(collection).find(query, sort=order, skip=skip)
        if limit is not None:
            cursor = cursor.limit(limit)
        return [doc async for doc in cursor]

    async def count(self, collection: str, where: Filter | None = None) -> int:
        return int(await self._collection(collection).count_documents(check_filter(where)))

    async def create_index(self, collection: str, field: str) -> None:
        if check_field(field) == "_id":
            return  # always indexed
        await self._collection(collection).create_index([(field, ASCENDING)])
