"""inventory-service's tables and queries: every SQL statement of the service lives here.

`metadata` is what Alembic compares the migrations against (`migrations/env.py`).

Locking (what keeps concurrent reservations from overselling): a use case that changes stock
loads the rows it needs with `SELECT ... FOR UPDATE`, always in the same order (the
reservation first, then the stock rows sorted by sku), so two writers of one sku queue
instead of both reading the old count, and no two writers can deadlock. On SQLite the
unit of work begins with `BEGIN IMMEDIATE` (chassis.db), which serializes writers for the
whole database and makes `FOR UPDATE` unnecessary (SQLAlchemy leaves it out there).
Every saved stock row also bumps `version` under a `WHERE version = :loaded` check, a second
guard that turns any lost update into a retry instead of a wrong count.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
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
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from emporium.chassis.db import Database, insert_unless_taken
from emporium.chassis.events.tables import inbox_table, lease_table, outbox_table
from emporium.chassis.migrations import service_metadata
from emporium.services.inventory.domain import (
    Reservation,
    ReservationLine,
    ReservationStatus,
    StockItem,
)

log = logging.getLogger(__name__)

metadata = service_metadata()

# The event plumbing, in this service's own database (created by migration 0001).
outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
event_lease = lease_table(metadata)

stock = Table(
    "stock",
    metadata,
    Column("sku", String(64), primary_key=True),
    Column("on_hand", BigInteger, nullable=False),
    Column("reserved", BigInteger, nullable=False),
    Column("low_stock_threshold", BigInteger, nullable=False),
    # True while the current dip below the threshold has been announced (`inventory.low`
    # is not armed again until available rises above the threshold).
    Column("low_alerted", Boolean, nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

reservations = Table(
    "reservations",
    metadata,
    Column("order_id", String(64), primary_key=True),
    Column("lines", JSON, nullable=False),  # [{"sku": ..., "quantity": ...}], sorted by sku
    Column("status", String(16), nullable=False),
    Column("restocked", Boolean, nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # When `order.created` for this order was consumed (None: not seen yet).
    Column("order_seen_at", DateTime(timezone=True), nullable=True),
    # What the expiry sweeper scans: held reservations by deadline.
    Index("ix_reservations_status_expires_at", "status", "expires_at"),
)


async def ping(db: Database) -> bool:
    """Readiness: the database answers a trivial query."""
    async with db.session() as session:
        await session.execute(text("SELECT 1"))
    return True


def _utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class LostRace(Exception):
    """A concurrent writer got there first (unique key or version check): retry the unit
    of work, which will then see the winner's row."""


# -- stock --------------------------------------------------------------------------------


@dataclass
class StoredStock:
    item: StockItem
    version: int  # 0: not stored yet
    updated_at: datetime


def _stock(row: Any) -> StoredStock:
    item = StockItem(
        sku=row.sku,
        on_hand=int(row.on_hand),
        reserved=int(row.reserved),
        low_stock_threshold=int(row.low_stock_threshold),
        low_alerted=bool(row.low_alerted),
    )
    return StoredStock(item, int(row.version), _utc(row.updated_at))


async def get_stock(session: AsyncSession, sku: str) -> StoredStock | None:
    row = (await session.execute(select(stock).where(stock.c.sku == sku))).first()
    return None if row is None else _stock(row)


async def lock_stock(session: AsyncSession, skus: Iterable[str]) -> dict[str, StoredStock]:
    """The stored rows of `skus`, locked until the unit of work ends, in sku order."""
    wanted = sorted(set(skus))
    if not wanted:
        return {}
    query = select(stock).where(stock.c.sku.in_(wanted)).order_by(stock.c.sku).with_for_update()
    return {row.sku: _stock(row) for row in (await session.execute(query)).all()}


async def save_stock(session: AsyncSession, stored: StoredStock, now: datetime) -> None:
    """Insert (version 0) or update under the version check; `LostRace` if someone else
    inserted or changed the row since it was loaded."""
    item = stored.item
    values = {
        "on_hand": item.on_hand,
        "reserved": item.reserved,
        "low_stock_threshold": item.low_stock_threshold,
        "low_alerted": item.low_alerted,
        "updated_at": now,
        "version": stored.version + 1,
    }
    if stored.version == 0:
        if not await insert_unless_taken(session, stock, sku=item.sku, **values):
            raise LostRace(item.sku)
    else:
        result = await session.execute(
            update(stock)
            .where(stock.c.sku == item.sku, stock.c.version == stored.version)
            .values(**values)
        )
        if getattr(result, "rowcount", 0) != 1:
            raise LostRace(item.sku)
    stored.version += 1
    stored.updated_at = now


# -- reservations -------------------------------------------------------------------------


def _reservation(row: Any) -> Reservation:
    lines = tuple(ReservationLine(str(x["sku"]), int(x["quantity"])) for x in row.lines)
    return Reservation(
        order_id=row.order_id,
        lines=lines,
        expires_at=_utc(row.expires_at),
        created_at=_utc(row.created_at),
        status=ReservationStatus(row.status),
        restocked=bool(row.restocked),
    )


async def lock_reservation(session: AsyncSession, order_id: str) -> Reservation | None:
    """The order's reservation, locked until the unit of work ends (None if there is none)."""
    query = select(reservations).where(reservations.c.order_id == order_id).with_for_update()
    row = (await session.execute(query)).first()
    return None if row is None else _reservation(row)


async def insert_reservation(
    session: AsyncSession, reservation: Reservation, now: datetime
) -> None:
    """`LostRace` when the order already has one (a concurrent call for the same order)."""
    inserted = await insert_unless_taken(
        session,
        reservations,
        order_id=reservation.order_id,
        lines=[{"sku": x.sku, "quantity": x.quantity} for x in reservation.lines],
        status=reservation.status.value,
        restocked=reservation.restocked,
        expires_at=reservation.expires_at,
        created_at=reservation.created_at,
        updated_at=now,
    )
    if not inserted:
        raise LostRace(reservation.order_id)


async def update_reservation(
    session: AsyncSession, reservation: Reservation, now: datetime
) -> None:
    await session.execute(
        update(reservations)
        .where(reservations.c.order_id == reservation.order_id)
        .values(status=reservation.status.value, restocked=reservation.restocked, updated_at=now)
    )


async def mark_order_seen(session: AsyncSession, order_id: str, now: datetime) -> bool:
    """Record that `order.created` arrived for the order; False if it was already recorded."""
    result = await session.execute(
        update(reservations)
        .where(reservations.c.order_id == order_id, reservations.c.order_seen_at.is_(None))
        .values(order_seen_at=now)
    )
    return bool(getattr(result, "rowcount", 0) == 1)


async def order_seen_at(session: AsyncSession, order_id: str) -> datetime | None:
    value = (
        await session.execute(
            select(reservations.c.order_seen_at).where(reservations.c.order_id == order_id)
        )
    ).scalar_one_or_none()
    return None if value is None else _utc(value)


async def due_reservations(session: AsyncSession, now: datetime, limit: int) -> list[str]:
    """Order ids of held reservations whose time is up, oldest deadline first."""
    query = (
        select(reservations.c.order_id)
        .where(
            reservations.c.status == ReservationStatus.HELD.value,
            reservations.c.expires_at <= now,
        )
        .order_by(reservations.c.expires_at)
        .limit(limit)
    )
    return [str(order_id) for order_id in (await session.execute(query)).scalars()]
