"""order-service use cases: place an order (the checkout saga), read, list, cancel; and the
reaction to `order.completed`.

Who may do what: PlaceOrder for the signed-in user (for themselves; a system caller or an
admin may name the user); GetOrder and CancelOrder for the owner or an admin, anyone else
gets NOT_FOUND (API.md: ids cannot be probed); ListOrders for the owner or an admin.

PlaceOrder: validate (PlaceOrder.parse) -> replay if the Idempotency-Key is known -> check the
payment token with payment-service and price the items with product-service (both before
anything is held, so bad input is a 400 with no side effect) -> one unit of work saves the
idempotency record and the saga -> the saga runs detached and the call waits for it up to
`wait_budget` seconds (less if the caller's deadline is nearer): a finished saga answers
PAID/CANCELLED (REST 201), a slower one PENDING (REST 202). The order row is written in the
same unit of work as the saga, so an order that was answered can always be read and listed.
A checkout refused before it was placed (out of stock) answers 409 while the shopper waits,
and its row says CANCELLED with the reason; the first answer given for a key (the refusal,
or the order) is recorded with the key, so a replay answers the same.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from emporium.chassis.db import Database, UnitOfWork
from emporium.chassis.errors import (
    DomainError,
    ErrorCode,
    FieldError,
    invalid,
    not_found,
    permission_denied,
)
from emporium.chassis.events.envelope import Event
from emporium.chassis.rpc.identity import Caller, require_authenticated
from emporium.chassis.rpc.server import within_deadline
from emporium.contracts.events.order_completed import OrderCompletedV1, PaymentStatus
from emporium.services.order import store
from emporium.services.order.clients import RemoteServices
from emporium.services.order.domain import (
    IdempotencyRecord,
    Order,
    PlaceOrder,
    price_order,
    replay_of,
)
from emporium.services.order.handlers.checkout import CheckoutRunner, now_utc
from emporium.services.order.saga import CheckoutSaga, SagaState

DEFAULT_WAIT_BUDGET_SECONDS = 3.0
ANSWER_MARGIN_SECONDS = 0.3
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


@dataclass(frozen=True)
class Placed:
    order: Order
    replayed: bool


@dataclass(frozen=True)
class OrderPage:
    items: list[Order]
    next_cursor: str


def _privileged(caller: Caller) -> bool:
    return caller.is_admin or caller.is_system


def _subject(caller: Caller, user_id: str) -> str:
    """The user a request is about: the caller, unless an admin/system names someone."""
    if not user_id or user_id == caller.user_id:
        return caller.user_id
    if not _privileged(caller):
        raise permission_denied("you may only act on your own orders")
    return user_id


def _stored_error(answer: Mapping[str, Any]) -> DomainError:
    fields = answer.get("fields") or []
    return DomainError(
        str(answer.get("message", "checkout refused")),
        ErrorCode(str(answer.get("code", ErrorCode.CONFLICT.value))),
        str(answer.get("reason", "")),
        [FieldError(str(f["field"]), str(f["message"])) for f in fields],
    )


def _encode_cursor(order: Order) -> str:
    raw = f"{order.created_at.isoformat()}|{order.id}".encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, str] | None:
    if not cursor:
        return None
    try:
        created, _, order_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        return datetime.fromisoformat(created), order_id
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise invalid("invalid cursor", FieldError("cursor", "is not a cursor we issued")) from exc


class Orders:
    """The use cases; `runner` drives sagas, `remote` reaches product and payment."""

    def __init__(
        self,
        db: Database,
        remote: RemoteServices,
        runner: CheckoutRunner,
        *,
        wait_budget: float = DEFAULT_WAIT_BUDGET_SECONDS,
    ) -> None:
        self.db = db
        self.remote = remote
        self.runner = runner
        self.wait_budget = wait_budget

    def _budget(self) -> float:
        """How long to wait for a saga: `wait_budget`, but never so long that the caller's
        deadline passes first (answer PENDING with `ANSWER_MARGIN_SECONDS` to spare)."""
        return within_deadline(self.wait_budget, ANSWER_MARGIN_SECONDS)

    # --- PlaceOrder ---------------------------------------------------------------------

    async def place(self, user_id: str, key: object, body: Mapping[str, object]) -> Placed:
        caller = require_authenticated()
        command = PlaceOrder.parse(_subject(caller, user_id), key, body)
        async with self.db.read() as conn:
            known = await store.idempotency_record(conn, command.user_id, str(key))
        if known is not None:
            return await self._replay(known.record, command)
        await self.remote.check_token(command.payment_token)
        catalog = await self.remote.catalog([item.product_id for item in command.items])
        priced = price_order(command, catalog)
        now = now_utc()
        order = Order.place(f"ord_{uuid.uuid4().hex}", command, priced, now)
        saga, decision = CheckoutSaga.start(order, command.payment_token, now)
        record = IdempotencyRecord(
            command.user_id, command.idempotency_key, order.fingerprint, order.id
        )
        async with self.db.unit_of_work() as uow:
            if not await store.insert_idempotency_record(uow.session, record, now):
                await uow.rollback()
                return await self._replay_after_race(command)
            await store.insert_saga(uow.session, saga, now)
            await store.insert_order(uow.session, order)
            await uow.commit()
        self.runner.start(order.id, decision.remote, committed=saga)
        return Placed(await self._answer(order.id), replayed=False)

    async def _replay_after_race(self, command: PlaceOrder) -> Placed:
        async with self.db.read() as conn:
            known = await store.idempotency_record(conn, command.user_id, command.idempotency_key)
        if known is None:  # pragma: no cover - the winner's row is committed before we lose
            raise DomainError("idempotency race", ErrorCode.CONFLICT, "conflict")
        return await self._replay(known.record, command)

    async def _replay(self, record: IdempotencyRecord, command: PlaceOrder) -> Placed:
        order_id = replay_of(record, command)
        assert order_id is not None
        return Placed(await self._answer(order_id), replayed=True)

    async def _answer(self, order_id: str) -> Order:
        """The order as it stands once the saga finished or the budget ran out; the stored
        refusal for a checkout that was refused before it was placed."""
        await self.runner.wait(order_id, self._budget())
        async with self.db.read() as conn:  # the usual answer: the saga finished, one SELECT
            saga = await store.read_saga(conn, order_id)
        if saga is not None and saga.is_finished and saga.order_recorded:
            return saga.order
        async with self.db.unit_of_work() as uow:  # otherwise decide the key's answer
            saga = await store.read_saga(uow.session, order_id)
            if saga is None:
                raise not_found(f"order {order_id} not found")
            order = saga.order
            refused = saga.state is SagaState.CANCELLED and not saga.order_recorded
            if saga.is_finished and not refused:
                return order
            if not refused and await store.decide_idempotency_answer(
                uow.session, order.user_id, order.idempotency_key, {"order": order.id}
            ):
                await uow.commit()  # answered PENDING (202): replays answer the order too
                return order
            known = await store.idempotency_record(
                uow.session, order.user_id, order.idempotency_key
            )
        answer = known.answer if known and known.answer else {"reason": "cancelled"}
        if "order" in answer:
            return order if not refused else await self._current(order_id)
        raise _stored_error(answer)

    async def _current(self, order_id: str) -> Order:
        async with self.db.read() as conn:
            order = await store.get_order(conn, order_id)
        if order is None:  # pragma: no cover - written with the saga
            raise not_found(f"order {order_id} not found")
        return order

    # --- reads --------------------------------------------------------------------------

    async def get(self, order_id: str) -> Order:
        caller = require_authenticated()
        async with self.db.read() as conn:
            order = await store.get_order(conn, order_id) if order_id else None
        if order is None:
            raise not_found(f"order {order_id} not found")
        order.ensure_visible_to(caller.user_id, is_admin=_privileged(caller))
        return order

    async def list(self, user_id: str, limit: int, cursor: str) -> OrderPage:
        caller = require_authenticated()
        owner = _subject(caller, user_id)
        if not 0 <= limit <= MAX_PAGE_SIZE:
            raise invalid("invalid page", FieldError("limit", f"must be 1-{MAX_PAGE_SIZE}"))
        size = limit or DEFAULT_PAGE_SIZE
        after = _decode_cursor(cursor)
        async with self.db.read() as conn:
            found = await store.list_orders(conn, owner, size + 1, after)
        items = found[:size]
        next_cursor = _encode_cursor(items[-1]) if len(found) > size else ""
        return OrderPage(items, next_cursor)

    # --- CancelOrder --------------------------------------------------------------------

    async def cancel(self, order_id: str) -> Order:
        """PAID: refund, release, CANCELLED. In flight: cancelled at its next step.
        CANCELLED: stays so (idempotent)."""
        await self.get(order_id)  # owner or admin, else NOT_FOUND
        decision = await self.runner.apply(order_id, lambda saga, now: saga.request_cancel(now))
        self.runner.start(order_id, decision.remote)
        await self.runner.wait(order_id, self._budget())
        async with self.db.read() as conn:
            order = await store.get_order(conn, order_id)
        if order is None:  # pragma: no cover - it was visible above and orders are never deleted
            raise not_found(f"order {order_id} not found")
        return order

    # --- order.completed ----------------------------------------------------------------

    async def on_payment_completed(self, uow: UnitOfWork | None, event: Event) -> None:
        """Payment's own news about the charge: reconciles a saga whose synchronous reply was
        lost (timeout, crash). Only a saga still CHARGING takes it (saga.py); any other state
        means the reply was already handled or compensation covers it, so it is ignored."""
        if uow is None:
            raise RuntimeError("order-service consumes with the relational inbox")
        data = OrderCompletedV1.model_validate(event.data)
        if data.status not in (PaymentStatus.CAPTURED, PaymentStatus.DECLINED):
            return  # a give-back (refunded/voided): the saga's own compensation asked for it
        captured = data.status is PaymentStatus.CAPTURED
        reason = event.data.get("reason")
        decision = await self.runner.apply_in(
            uow,
            data.order_id,
            lambda saga, now: saga.on_payment_completed(
                captured, now, reason if isinstance(reason, str) else None
            ),
        )
        if decision.remote:
            store.on_commit(uow, lambda: self.runner.start(data.order_id, decision.remote))
