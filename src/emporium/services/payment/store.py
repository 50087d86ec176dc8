"""payment-service's tables and queries: every SQL statement of the service lives here.

`metadata` is what Alembic compares the migrations against (`migrations/env.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    String,
    Table,
    UniqueConstraint,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from emporium.chassis.db import Database, insert_unless_taken
from emporium.chassis.events.tables import inbox_table, lease_table, outbox_table
from emporium.chassis.migrations import service_metadata
from emporium.services.payment.domain import Payment, PaymentStatus

metadata = service_metadata()

# The event plumbing, in this service's own database (created by migration 0001).
outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
event_lease = lease_table(metadata)

payments = Table(
    "payments",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("order_id", String(64), nullable=False),  # unique: one payment per order
    Column("user_id", String(64), nullable=False, index=True),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("token_kind", String(255), nullable=False),  # the provider token, never card data
    Column("status", String(16), nullable=False),
    Column("reason", String(64), nullable=True),
    Column("announced", Boolean, nullable=False),  # an order.completed "captured" went out
    Column("attempts", Integer, nullable=False),  # provider calls without a usable answer
    Column("next_attempt_at", DateTime(timezone=True), nullable=True),
    Column("last_error", String(200), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("order_id"),
    Index("ix_payments_open_intents", "status", "next_attempt_at"),
)

# Intents the reconciler works on (see domain.py): a charge of unknown outcome, a void or a
# refund the provider has not confirmed yet.
OPEN_STATES = (PaymentStatus.PENDING, PaymentStatus.VOIDING, PaymentStatus.REFUNDING)


async def ping(db: Database) -> bool:
    """Readiness: the database answers a trivial query."""
    async with db.session() as session:
        await session.execute(text("SELECT 1"))
    return True


def _utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass
class StoredPayment:
    """A payment and whose order it pays (the domain object does not need the user)."""

    payment: Payment
    user_id: str


def _stored(row: Any) -> StoredPayment:
    payment = Payment(
        id=row.id,
        order_id=row.order_id,
        amount_minor=int(row.amount_minor),
        currency=row.currency,
        token=row.token_kind,
        created_at=_utc(row.created_at),
        updated_at=_utc(row.updated_at),
        status=PaymentStatus(row.status),
        reason=row.reason,
        announced=bool(row.announced),
        attempts=int(row.attempts),
        next_attempt_at=_utc(row.next_attempt_at) if row.next_attempt_at else None,
        last_error=row.last_error,
    )
    return StoredPayment(payment, row.user_id)


async def payment_for_order(
    session: AsyncSession, order_id: str, *, for_update: bool = False
) -> StoredPayment | None:
    query = select(payments).where(payments.c.order_id == order_id)
    if for_update:
        query = query.with_for_update()
    row = (await session.execute(query)).first()
    return _stored(row) if row else None


def _mutable(payment: Payment) -> dict[str, Any]:
    return {
        "status": payment.status.value,
        "reason": payment.reason,
        "announced": payment.announced,
        "attempts": payment.attempts,
        "next_attempt_at": payment.next_attempt_at,
        "last_error": payment.last_error,
        "updated_at": payment.updated_at,
    }


async def insert_payment(session: AsyncSession, payment: Payment, user_id: str) -> bool:
    """Insert; False when the order already has a payment (a concurrent Charge or Void won)."""
    return await insert_unless_taken(
        session,
        payments,
        id=payment.id,
        order_id=payment.order_id,
        user_id=user_id,
        amount_minor=payment.amount_minor,
        currency=payment.currency,
        token_kind=payment.token,
        created_at=payment.created_at,
        **_mutable(payment),
    )


async def update_payment(session: AsyncSession, payment: Payment) -> None:
    await session.execute(
        update(payments).where(payments.c.id == payment.id).values(**_mutable(payment))
    )


async def due_intents(
    session: AsyncSession, now: datetime, pending_since: datetime, limit: int
) -> list[str]:
    """Order ids of open intents whose next attempt is due: voids and refunds at once, a
    PENDING charge only once it is older than `pending_since` (its own Charge call may still
    be waiting for the provider)."""
    due = or_(payments.c.next_attempt_at.is_(None), payments.c.next_attempt_at <= now)
    giving_back = payments.c.status.in_(
        [PaymentStatus.VOIDING.value, PaymentStatus.REFUNDING.value]
    )
    stale_charge = (payments.c.status == PaymentStatus.PENDING.value) & (
        payments.c.updated_at <= pending_since
    )
    query = (
        select(payments.c.order_id)
        .where(due & (giving_back | stale_charge))
        .order_by(payments.c.updated_at)
        .limit(limit)
    )
    return [row[0] for row in (await session.execute(query)).all()]


async def open_intent_counts(session: AsyncSession) -> dict[str, int]:
    """How many payments wait for the provider, per state (for the metrics)."""
    query = (
        select(payments.c.status, func.count())
        .where(payments.c.status.in_([s.value for s in OPEN_STATES]))
        .group_by(payments.c.status)
    )
    counts = {s.value: 0 for s in OPEN_STATES}
    counts.update({row[0]: int(row[1]) for row in (await session.execute(query)).all()})
    return counts
