"""product-service's tables and queries: every SQL statement of the service lives here.

`metadata` is what Alembic compares the migrations against (`migrations/env.py`).

A product row is the `domain.Product` plus `version` (bumped by every change, so a reader can
tell two states apart and a writer can detect a concurrent one). Rows are never removed:
a delete sets `deleted`, so the sku stays taken and old orders still resolve the id.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    String,
    Table,
    Text,
    and_,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from emporium.chassis.db import Database, Reader, insert_unless_taken
from emporium.chassis.events.tables import inbox_table, lease_table, outbox_table
from emporium.chassis.migrations import service_metadata
from emporium.services.product.domain import Money, Product

metadata = service_metadata()

# The event plumbing, in this service's own database (created by migration 0001).
outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
event_lease = lease_table(metadata)

products = Table(
    "products",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("sku", String(64), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("description", Text, nullable=False),
    Column("category", String(100), nullable=False),
    Column("price_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("attributes", JSON, nullable=False),
    Column("image_urls", JSON, nullable=False),
    Column("deleted", Boolean, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("version", Integer, nullable=False),
    # The listing order (see `list_products`), with and without a category filter.
    Index("ix_products_listing", "created_at", "id"),
    Index("ix_products_category_listing", "category", "created_at", "id"),
)


async def ping(db: Database) -> bool:
    """Readiness: the database answers a trivial query."""
    async with db.session() as session:
        await session.execute(text("SELECT 1"))
    return True


def _utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass(frozen=True)
class StoredProduct:
    product: Product
    version: int


def _product(row: Any) -> StoredProduct:
    product = Product(
        id=row.id,
        sku=row.sku,
        name=row.name,
        description=row.description,
        category=row.category,
        price=Money(int(row.price_minor), row.currency),
        attributes=dict(row.attributes or {}),
        image_urls=tuple(row.image_urls or ()),
        created_at=_utc(row.created_at),
        updated_at=_utc(row.updated_at),
        deleted=bool(row.deleted),
    )
    return StoredProduct(product, int(row.version))


def _columns(product: Product) -> dict[str, Any]:
    return {
        "sku": product.sku,
        "name": product.name,
        "description": product.description,
        "category": product.category,
        "price_minor": product.price_minor,
        "currency": product.currency,
        "attributes": dict(product.attributes),
        "image_urls": list(product.image_urls),
        "deleted": product.deleted,
        "updated_at": product.updated_at,
    }


async def get_product(
    session: Reader, product_id: str, *, for_update: bool = False
) -> StoredProduct | None:
    """One product, deleted or not. `for_update` locks the row until the unit of work ends
    (PostgreSQL; SQLite's unit of work already holds the database write lock)."""
    query = select(products).where(products.c.id == product_id)
    if for_update:
        query = query.with_for_update()
    row = (await session.execute(query)).first()
    return None if row is None else _product(row)


async def get_products(session: Reader, ids: list[str]) -> dict[str, StoredProduct]:
    """The products of `ids` that exist (deleted ones included), by id."""
    if not ids:
        return {}
    rows = (await session.execute(select(products).where(products.c.id.in_(ids)))).all()
    return {row.id: _product(row) for row in rows}


async def sku_owner(session: AsyncSession, sku: str) -> str | None:
    """The id of the product holding `sku` (deleted products keep theirs)."""
    return (
        await session.execute(select(products.c.id).where(products.c.sku == sku))
    ).scalar_one_or_none()


async def insert_product(session: AsyncSession, product: Product) -> bool:
    """Insert version 1; False when the sku (or id) is taken, e.g. by a concurrent create."""
    return await insert_unless_taken(
        session,
        products,
        id=product.id,
        created_at=product.created_at,
        version=1,
        **_columns(product),
    )


async def update_product(session: AsyncSession, product: Product, version: int) -> bool:
    """Save `product` if the row is still at `version` (optimistic check on top of the row
    lock); False on a lost race or a sku taken meanwhile (unique violation)."""
    try:
        async with session.begin_nested():
            result = await session.execute(
                update(products)
                .where(products.c.id == product.id, products.c.version == version)
                .values(version=version + 1, **_columns(product))
            )
    except IntegrityError:
        return False
    return bool(getattr(result, "rowcount", 0) == 1)


# -- listing ------------------------------------------------------------------------------


class BadCursor(ValueError):
    """A cursor this service did not issue."""


def encode_cursor(product: Product) -> str:
    """Opaque position after `product` in the listing order (created_at, id)."""
    raw = json.dumps([product.created_at.isoformat(), product.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, product_id = json.loads(raw)
        return _utc(datetime.fromisoformat(created)), str(product_id)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise BadCursor(cursor) from None


async def list_products(
    session: Reader, category: str, limit: int, after: tuple[datetime, str] | None
) -> list[StoredProduct]:
    """Live products in a stable order (oldest first, ties by id), `limit` of them, strictly
    after the cursor position: products created meanwhile land at the end, so paging never
    skips or repeats one."""
    query = select(products).where(products.c.deleted.is_(False))
    if category:
        query = query.where(products.c.category == category)
    if after is not None:
        created, product_id = after
        query = query.where(
            or_(
                products.c.created_at > created,
                and_(products.c.created_at == created, products.c.id > product_id),
            )
        )
    query = query.order_by(products.c.created_at, products.c.id).limit(limit)
    return [_product(row) for row in (await session.execute(query)).all()]
