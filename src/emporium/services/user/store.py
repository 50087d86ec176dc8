"""user-service's tables and queries: every SQL statement of the service lives here.

`metadata` is what Alembic compares the migrations against (`migrations/env.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Table,
    UniqueConstraint,
    delete,
    func,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from emporium.chassis.db import Database, insert_unless_taken
from emporium.chassis.events.tables import inbox_table, lease_table, outbox_table
from emporium.chassis.migrations import service_metadata
from emporium.services.user.domain import Address, AddressBook, Profile

metadata = service_metadata()

# The event plumbing, in this service's own database (created by migration 0001).
outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
event_lease = lease_table(metadata)

users = Table(
    "users",
    metadata,
    Column("id", String(64), primary_key=True),  # the id auth-service gave the account
    Column("email", String(254), nullable=False),
    Column("name", String(100), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

addresses = Table(
    "addresses",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("user_id", String(64), ForeignKey("users.id"), nullable=False, index=True),
    Column("position", Integer, nullable=False),  # order of addition within the book
    Column("line1", String(200), nullable=False),
    Column("line2", String(200), nullable=True),
    Column("city", String(100), nullable=False),
    Column("postal_code", String(16), nullable=False),
    Column("country", String(2), nullable=False),
    Column("phone", String(16), nullable=True),
    Column("is_default", Boolean, nullable=False),
    Column("request_id", String(64), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("user_id", "request_id"),
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
class StoredProfile:
    profile: Profile
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class StoredAddress:
    address: Address
    user_id: str
    created_at: datetime
    request_id: str | None = None


# -- profiles ------------------------------------------------------------------------------


async def get_profile(session: AsyncSession, user_id: str) -> StoredProfile | None:
    row = (await session.execute(select(users).where(users.c.id == user_id))).first()
    if row is None:
        return None
    profile = Profile(id=row.id, email=row.email, name=row.name)
    return StoredProfile(profile, _utc(row.created_at), _utc(row.updated_at))


async def insert_profile(session: AsyncSession, profile: Profile, now: datetime) -> bool:
    """Insert; False when the id exists (a concurrent CreateUser won)."""
    return await insert_unless_taken(
        session,
        users,
        id=profile.id,
        email=profile.email,
        name=profile.name,
        created_at=now,
        updated_at=now,
    )


async def update_profile(session: AsyncSession, profile: Profile, now: datetime) -> None:
    await session.execute(
        update(users).where(users.c.id == profile.id).values(name=profile.name, updated_at=now)
    )


# -- addresses -----------------------------------------------------------------------------


def _stored_address(row: Any) -> StoredAddress:
    address = Address(
        id=row.id,
        line1=row.line1,
        city=row.city,
        postal_code=row.postal_code,
        country=row.country,
        line2=row.line2,
        phone=row.phone,
        is_default=bool(row.is_default),
    )
    return StoredAddress(address, row.user_id, _utc(row.created_at), row.request_id)


async def list_addresses(session: AsyncSession, user_id: str) -> list[StoredAddress]:
    query = (
        select(addresses)
        .where(addresses.c.user_id == user_id)
        .order_by(addresses.c.position, addresses.c.id)
    )
    return [_stored_address(row) for row in (await session.execute(query)).all()]


async def address_book(session: AsyncSession, user_id: str) -> AddressBook:
    stored = await list_addresses(session, user_id)
    return AddressBook(user_id, tuple(s.address for s in stored))


async def address_by_request_id(
    session: AsyncSession, user_id: str, request_id: str
) -> StoredAddress | None:
    query = select(addresses).where(
        addresses.c.user_id == user_id, addresses.c.request_id == request_id
    )
    row = (await session.execute(query)).first()
    return _stored_address(row) if row else None


async def save_address_book(
    session: AsyncSession,
    book: AddressBook,
    *,
    added: Address | None = None,
    request_id: str | None = None,
    now: datetime,
) -> None:
    """Persist the book's default flags, inserting `added` at the end of the book."""
    if added is not None:
        position = await session.scalar(
            select(func.coalesce(func.max(addresses.c.position), 0)).where(
                addresses.c.user_id == book.user_id
            )
        )
        stored = book.get(added.id)
        await session.execute(
            addresses.insert().values(
                id=stored.id,
                user_id=book.user_id,
                position=int(position or 0) + 1,
                line1=stored.line1,
                line2=stored.line2,
                city=stored.city,
                postal_code=stored.postal_code,
                country=stored.country,
                phone=stored.phone,
                is_default=stored.is_default,
                request_id=request_id,
                created_at=now,
            )
        )
    for address in book.addresses:
        await session.execute(
            update(addresses)
            .where(addresses.c.id == address.id, addresses.c.user_id == book.user_id)
            .values(is_default=address.is_default)
        )


async def delete_address(session: AsyncSession, user_id: str, address_id: str) -> None:
    await session.execute(
        delete(addresses).where(addresses.c.id == address_id, addresses.c.user_id == user_id)
    )
