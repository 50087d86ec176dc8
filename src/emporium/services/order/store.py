"""order-service's tables and queries: every SQL statement of the service lives here.

`metadata` is what Alembic compares the migrations against (`migrations/env.py`).

The checkout saga is saved with `WHERE version = <loaded version>` (optimistic locking, see
saga.py) after being loaded `FOR UPDATE` (PostgreSQL; SQLite's BEGIN IMMEDIATE serializes
writers anyway), so two processes driving one saga never both apply a step.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    and_,
    event,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from emporium.chassis.db import Database, Reader, UnitOfWork, insert_unless_taken
from emporium.chassis.events.tables import inbox_table, lease_table, outbox_table
from emporium.chassis.migrations import service_metadata
from emporium.services.order.domain import (
    IdempotencyRecord,
    Order,
    OrderLine,
    OrderStatus,
    ShippingAddress,
)
from emporium.services.order.saga import (
    FINAL_STATES,
    CheckoutSaga,
    PaymentKnowledge,
    SagaState,
    StockKnowledge,
)

metadata = service_metadata()

# The event plumbing, in this service's own database (created by migration 0001).
outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
event_lease = lease_table(metadata)

orders = Table(
    "orders",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("user_id", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("total_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("shipping_address", Text, nullable=False),  # JSON
    Column("idempotency_key", String(255), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("payment_status", String(16), nullable=False),
    Column("payment_reason", String(64), nullable=True),
    Column("cancel_reason", String(64), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_orders_user_id_created_at", "user_id", "created_at"),
)

order_items = Table(
    "order_items",
    metadata,
    Column("order_id", String(64), ForeignKey("orders.id"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("product_id", String(64), nullable=False),
    Column("sku", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("unit_price_minor", BigInteger, nullable=False),
)

checkout_sagas = Table(
    "checkout_sagas",
    metadata,
    Column("order_id", String(64), primary_key=True),
    Column("user_id", String(64), nullable=False),
    Column("state", String(32), nullable=False),
    Column("version", Integer, nullable=False),
    Column("awaiting", String(160), nullable=True),  # the step id a reply must quote
    Column("step_seq", Integer, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("payment", String(16), nullable=False),
    Column("stock", String(16), nullable=False),
    Column("order_recorded", Boolean, nullable=False),
    Column("cancel_requested", Boolean, nullable=False),
    Column("cancel_reason", String(64), nullable=True),
    Column("parked_reason", String(200), nullable=True),  # why compensation was parked
    Column("payment_token", String(255), nullable=False),
    Column("order_snapshot", Text, nullable=False),  # JSON of the Order as the saga sees it
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_checkout_sagas_state_updated_at", "state", "updated_at"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("user_id", String(64), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("order_id", String(64), nullable=False),
    # JSON of the first answer once it is decided: a refusal (the error), or {"order": id}
    # when the order itself was answered (201/202), so that a replay never turns it into 409.
    Column("answer", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)


async def ping(db: Database) -> bool:
    """Readiness: the database answers a trivial query."""
    async with db.session() as session:
        await session.execute(text("SELECT 1"))
    return True


def on_commit(uow: UnitOfWork, callback: Callable[[], None]) -> None:
    """Run `callback` once the unit of work's transaction has committed (never on rollback):
    remote saga steps must only be sent after the state that awaits them is durable."""
    event.listen(uow.session.sync_session, "after_commit", lambda _s: callback(), once=True)


def _utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# -- the order snapshot ----------------------------------------------------------------------


def _order_to_json(order: Order) -> str:
    return json.dumps(
        {
            "id": order.id,
            "user_id": order.user_id,
            "lines": [
                [li.product_id, li.sku, li.name, li.quantity, li.unit_price_minor]
                for li in order.lines
            ],
            "total_minor": order.total_minor,
            "currency": order.currency,
            "shipping_address": order.shipping_address.as_dict(),
            "idempotency_key": order.idempotency_key,
            "fingerprint": order.fingerprint,
            "created_at": order.created_at.isoformat(),
            "updated_at": order.updated_at.isoformat(),
            "status": order.status.value,
            "payment_status": order.payment_status,
            "payment_reason": order.payment_reason,
            "cancel_reason": order.cancel_reason,
        }
    )


def _order_from_json(raw: str) -> Order:
    data = json.loads(raw)
    return Order(
        id=data["id"],
        user_id=data["user_id"],
        lines=tuple(OrderLine(*line) for line in data["lines"]),
        total_minor=data["total_minor"],
        currency=data["currency"],
        shipping_address=ShippingAddress(**data["shipping_address"]),
        idempotency_key=data["idempotency_key"],
        fingerprint=data["fingerprint"],
        created_at=datetime.fromisoformat(data["created_at"]),
        updated_at=datetime.fromisoformat(data["updated_at"]),
        status=OrderStatus(data["status"]),
        payment_status=data["payment_status"],
        payment_reason=data["payment_reason"],
        cancel_reason=data["cancel_reason"],
    )


# -- sagas -----------------------------------------------------------------------------------


def _saga_values(saga: CheckoutSaga) -> dict[str, Any]:
    return {
        "state": saga.state.value,
        "version": saga.version,
        "awaiting": saga.awaiting,
        "step_seq": saga.step_seq,
        "attempts": saga.attempts,
        "payment": saga.payment.value,
        "stock": saga.stock.value,
        "order_recorded": saga.order_recorded,
        "cancel_requested": saga.cancel_requested,
        "cancel_reason": saga.cancel_reason,
        "parked_reason": saga.parked_reason,
        "order_snapshot": _order_to_json(saga.order),
        "updated_at": saga.updated_at or saga.order.updated_at,
    }


def _saga(row: Any) -> CheckoutSaga:
    return CheckoutSaga(
        order=_order_from_json(row.order_snapshot),
        payment_token=row.payment_token,
        state=SagaState(row.state),
        version=row.version,
        awaiting=row.awaiting,
        step_seq=row.step_seq,
        attempts=row.attempts,
        payment=PaymentKnowledge(row.payment),
        stock=StockKnowledge(row.stock),
        order_recorded=bool(row.order_recorded),
        cancel_requested=bool(row.cancel_requested),
        cancel_reason=row.cancel_reason,
        parked_reason=row.parked_reason,
        updated_at=_utc(row.updated_at),
    )


async def insert_saga(session: AsyncSession, saga: CheckoutSaga, now: datetime) -> None:
    await session.execute(
        checkout_sagas.insert().values(
            order_id=saga.order_id,
            user_id=saga.order.user_id,
            payment_token=saga.payment_token,
            created_at=now,
            **_saga_values(saga),
        )
    )


async def load_saga(session: AsyncSession, order_id: str) -> CheckoutSaga | None:
    """The saga, locked for the rest of the unit of work (PostgreSQL)."""
    query = select(checkout_sagas).where(checkout_sagas.c.order_id == order_id).with_for_update()
    row = (await session.execute(query)).first()
    return _saga(row) if row else None


async def read_saga(session: Reader, order_id: str) -> CheckoutSaga | None:
    row = (
        await session.execute(select(checkout_sagas).where(checkout_sagas.c.order_id == order_id))
    ).first()
    return _saga(row) if row else None


async def save_saga(session: AsyncSession, saga: CheckoutSaga, loaded_version: int) -> bool:
    """Save if nobody moved the saga since it was loaded; False otherwise (stale)."""
    result = await session.execute(
        update(checkout_sagas)
        .where(
            checkout_sagas.c.order_id == saga.order_id,
            checkout_sagas.c.version == loaded_version,
        )
        .values(**_saga_values(saga))
    )
    return bool(getattr(result, "rowcount", 0))


async def unfinished_sagas(session: AsyncSession, idle_since: datetime, limit: int) -> list[str]:
    """Sagas waiting on a step and untouched since `idle_since` (their driver is gone)."""
    done = [s.value for s in FINAL_STATES] + [SagaState.PARKED.value]
    query = (
        select(checkout_sagas.c.order_id)
        .where(
            checkout_sagas.c.state.not_in(done),
            checkout_sagas.c.awaiting.is_not(None),
            checkout_sagas.c.updated_at <= idle_since,
        )
        .order_by(checkout_sagas.c.updated_at)
        .limit(limit)
    )
    return [str(r) for r in (await session.scalars(query)).all()]


async def list_sagas(
    session: AsyncSession, states: list[SagaState], limit: int, after: str | None
) -> list[CheckoutSaga]:
    """Sagas in `states` (all unfinished ones when empty), oldest change first, for the
    operator's `emporium sagas list`; `after` is the last order id of the previous page."""
    chosen = [s.value for s in states] or [s.value for s in SagaState if s not in FINAL_STATES]
    query = select(checkout_sagas).where(checkout_sagas.c.state.in_(chosen))
    if after:
        query = query.where(checkout_sagas.c.order_id > after)
    query = query.order_by(checkout_sagas.c.order_id).limit(limit)
    return [_saga(row) for row in (await session.execute(query)).all()]


async def unfinished_saga_counts(session: AsyncSession) -> dict[SagaState, int]:
    """How many sagas are in each state that is not final (parked ones included)."""
    final = [s.value for s in FINAL_STATES]
    query = (
        select(checkout_sagas.c.state, func.count())
        .where(checkout_sagas.c.state.not_in(final))
        .group_by(checkout_sagas.c.state)
    )
    return {SagaState(state): int(n) for state, n in (await session.execute(query)).all()}


# -- orders ----------------------------------------------------------------------------------


def order_values(order: Order) -> dict[str, Any]:
    """The order's columns that change after it is placed (status, payment, cancel reason)."""
    return {
        "status": order.status.value,
        "payment_status": order.payment_status,
        "payment_reason": order.payment_reason,
        "cancel_reason": order.cancel_reason,
        "updated_at": order.updated_at,
    }


async def insert_order(session: AsyncSession, order: Order) -> None:
    await session.execute(
        orders.insert().values(
            id=order.id,
            user_id=order.user_id,
            total_minor=order.total_minor,
            currency=order.currency,
            shipping_address=json.dumps(order.shipping_address.as_dict()),
            idempotency_key=order.idempotency_key,
            fingerprint=order.fingerprint,
            created_at=order.created_at,
            **order_values(order),
        )
    )
    for position, line in enumerate(order.lines):
        await session.execute(
            order_items.insert().values(
                order_id=order.id,
                position=position,
                product_id=line.product_id,
                sku=line.sku,
                name=line.name,
                quantity=line.quantity,
                unit_price_minor=line.unit_price_minor,
            )
        )


async def save_order(session: AsyncSession, order: Order) -> None:
    """Write the order's changing fields (`order_values`); insert it if its row is missing
    (a saga started before orders were written at PlaceOrder)."""
    result = await session.execute(
        update(orders).where(orders.c.id == order.id).values(**order_values(order))
    )
    if not getattr(result, "rowcount", 0):
        await insert_order(session, order)


async def _with_lines(session: Reader, rows: list[Any]) -> list[Order]:
    if not rows:
        return []
    query = (
        select(order_items)
        .where(order_items.c.order_id.in_([r.id for r in rows]))
        .order_by(order_items.c.order_id, order_items.c.position)
    )
    lines: dict[str, list[OrderLine]] = {}
    for item in (await session.execute(query)).all():
        lines.setdefault(item.order_id, []).append(
            OrderLine(
                item.product_id, item.sku, item.name, item.quantity, int(item.unit_price_minor)
            )
        )
    return [
        Order(
            id=row.id,
            user_id=row.user_id,
            lines=tuple(lines.get(row.id, ())),
            total_minor=int(row.total_minor),
            currency=row.currency,
            shipping_address=ShippingAddress(**json.loads(row.shipping_address)),
            idempotency_key=row.idempotency_key,
            fingerprint=row.fingerprint,
            created_at=_utc(row.created_at),
            updated_at=_utc(row.updated_at),
            status=OrderStatus(row.status),
            payment_status=row.payment_status,
            payment_reason=row.payment_reason,
            cancel_reason=row.cancel_reason,
        )
        for row in rows
    ]


async def get_order(session: Reader, order_id: str) -> Order | None:
    rows = (await session.execute(select(orders).where(orders.c.id == order_id))).all()
    found = await _with_lines(session, list(rows))
    return found[0] if found else None


async def list_orders(
    session: Reader, user_id: str, limit: int, after: tuple[datetime, str] | None
) -> list[Order]:
    """The user's orders, newest first (ties by id), starting after the cursor position."""
    query = select(orders).where(orders.c.user_id == user_id)
    if after is not None:
        created, order_id = after
        query = query.where(
            or_(
                orders.c.created_at < created,
                and_(orders.c.created_at == created, orders.c.id < order_id),
            )
        )
    query = query.order_by(orders.c.created_at.desc(), orders.c.id.desc()).limit(limit)
    return await _with_lines(session, list((await session.execute(query)).all()))


# -- idempotency keys ------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredKey:
    record: IdempotencyRecord
    answer: dict[str, Any] | None


async def idempotency_record(session: Reader, user_id: str, key: str) -> StoredKey | None:
    query = select(idempotency_keys).where(
        idempotency_keys.c.user_id == user_id, idempotency_keys.c.key == key
    )
    row = (await session.execute(query)).first()
    if row is None:
        return None
    record = IdempotencyRecord(row.user_id, row.key, row.fingerprint, row.order_id)
    return StoredKey(record, json.loads(row.answer) if row.answer else None)


async def insert_idempotency_record(
    session: AsyncSession, record: IdempotencyRecord, now: datetime
) -> bool:
    """Insert; False when the key is taken (a concurrent first request won the race)."""
    return await insert_unless_taken(
        session,
        idempotency_keys,
        user_id=record.user_id,
        key=record.key,
        fingerprint=record.fingerprint,
        order_id=record.order_id,
        created_at=now,
    )


async def decide_idempotency_answer(
    session: AsyncSession, user_id: str, key: str, answer: dict[str, Any]
) -> bool:
    """Record the key's first answer unless one is recorded already; True if this one won."""
    result = await session.execute(
        update(idempotency_keys)
        .where(
            idempotency_keys.c.user_id == user_id,
            idempotency_keys.c.key == key,
            idempotency_keys.c.answer.is_(None),
        )
        .values(answer=json.dumps(answer))
    )
    return bool(getattr(result, "rowcount", 0))
