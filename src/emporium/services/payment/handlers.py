"""payment-service use cases: charge an order once, void, refund, read; one unit of work each.

Who may do what: Charge, Void and Refund are for order-service's saga (a system caller) or an
admin; GetPayment also for the user who placed the order (anyone else gets NOT_FOUND, so
order ids cannot be probed); CheckPaymentToken for any authenticated caller.

Charging is two units of work around the provider call: the PENDING payment is committed
first (the unique order id makes a concurrent or retried Charge find it and never call the
provider again), then the provider's answer is recorded together with `order.completed` in
the outbox. A Void recorded before the charge arrives leaves a VOIDED tombstone the charge
then finds, so it never reaches the provider.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from emporium.chassis.db import Database
from emporium.chassis.errors import FieldError, invalid, not_found, permission_denied
from emporium.chassis.events.outbox import add_event
from emporium.chassis.rpc.identity import Caller, require_authenticated
from emporium.contracts.events.order_completed import TOPIC, OrderCompletedV1
from emporium.services.payment import store
from emporium.services.payment.domain import (
    ChargeRequest,
    Payment,
    PaymentCompleted,
    ProviderResult,
    sandbox_token,
    start_charge,
    void_for_order,
)
from emporium.services.payment.provider import SandboxProvider
from emporium.services.payment.store import StoredPayment

SERVICE = "payment"
DEFAULT_PROVIDER_TIMEOUT_SECONDS = 10.0
MAX_ID_LENGTH = 64


@dataclass(frozen=True)
class ChargeInput:
    order_id: str
    user_id: str
    amount_minor: int
    currency: str
    payment_token: str


def _now() -> datetime:
    return datetime.now(UTC)


def _new_id() -> str:
    return f"pay_{uuid.uuid4().hex}"


def _require_saga_caller() -> Caller:
    """Money moves only on behalf of order-service (system caller) or an admin."""
    caller = require_authenticated()
    if not (caller.is_system or caller.is_admin):
        raise permission_denied("only order-service may move money")
    return caller


def _check_ids(order_id: str, user_id: str | None = None) -> None:
    errors = []
    if not order_id or len(order_id) > MAX_ID_LENGTH:
        errors.append(FieldError("order_id", f"must be 1-{MAX_ID_LENGTH} characters"))
    if user_id is not None and (not user_id or len(user_id) > MAX_ID_LENGTH):
        errors.append(FieldError("user_id", f"must be 1-{MAX_ID_LENGTH} characters"))
    if errors:
        raise invalid("invalid payment request", *errors)


def _completed_event(completed: PaymentCompleted, user_id: str) -> OrderCompletedV1:
    return OrderCompletedV1.model_validate({**completed.payload(), "user_id": user_id})


class Payments:
    """The use cases; `provider` is the sandbox (or a real provider's adapter)."""

    def __init__(
        self,
        db: Database,
        provider: SandboxProvider | None = None,
        *,
        provider_timeout: float = DEFAULT_PROVIDER_TIMEOUT_SECONDS,
    ) -> None:
        self.db = db
        self.provider = provider or SandboxProvider()
        self.provider_timeout = provider_timeout

    async def check_token(self, token: str) -> str:
        require_authenticated()
        return sandbox_token(token).token

    async def charge(self, command: ChargeInput) -> StoredPayment:
        """Charge once per order; a retry answers the first payment as it stands."""
        _require_saga_caller()
        _check_ids(command.order_id, command.user_id)
        request = ChargeRequest(
            command.order_id, command.amount_minor, command.currency, command.payment_token
        )
        for _ in range(2):  # a lost insert race is retried once, then finds the winner
            async with self.db.unit_of_work() as uow:
                existing = await store.payment_for_order(uow.session, request.order_id)
                found = existing.payment if existing else None
                decision = start_charge(request, found, _new_id(), _now())
                if existing is not None:
                    return existing
                if await store.insert_payment(uow.session, decision.payment, command.user_id):
                    await uow.commit()
                    break
        else:
            raise AssertionError("unreachable: the second pass finds the stored payment")
        result, reason = await self._call_provider(decision.payment)
        return await self._record_result(request.order_id, result, reason)

    async def _call_provider(self, payment: Payment) -> tuple[ProviderResult, str | None]:
        try:
            return await asyncio.wait_for(self.provider.charge(payment), self.provider_timeout)
        except TimeoutError:
            return ProviderResult.TIMED_OUT, None

    async def _record_result(
        self, order_id: str, result: ProviderResult, reason: str | None
    ) -> StoredPayment:
        async with self.db.unit_of_work() as uow:
            stored = await store.payment_for_order(uow.session, order_id, for_update=True)
            if stored is None:
                raise not_found(f"no payment for order {order_id}")
            events = stored.payment.apply_result(result, _now(), reason)
            await store.update_payment(uow.session, stored.payment)
            for completed in events:
                event = _completed_event(completed, stored.user_id)
                await add_event(uow, TOPIC, event, source=SERVICE)  # type: ignore[arg-type]  # ClassVar TOPIC
            await uow.commit()
        if stored.payment.needs_reversal and result is ProviderResult.APPROVED:
            await self.provider.reverse(stored.payment)
        return stored

    async def void(self, order_id: str, charge: ChargeInput | None = None) -> StoredPayment:
        """Make sure the order is never charged (idempotent). Without a payment yet, a VOIDED
        tombstone fences the charge that may still be on its way."""
        _require_saga_caller()
        _check_ids(order_id)
        details = charge or ChargeInput(order_id, "", 0, "", "")
        request = ChargeRequest(
            order_id, details.amount_minor, details.currency, details.payment_token
        )
        for _ in range(2):
            async with self.db.unit_of_work() as uow:
                existing = await store.payment_for_order(uow.session, order_id, for_update=True)
                found = existing.payment if existing else None
                payment, reverse = void_for_order(request, found, _new_id(), _now())
                if existing is not None:
                    await store.update_payment(uow.session, payment)
                    await uow.commit()
                    if reverse:
                        await self.provider.reverse(payment)
                    return existing
                user_id = details.user_id or "unknown"
                if await store.insert_payment(uow.session, payment, user_id):
                    await uow.commit()
                    return StoredPayment(payment, user_id)
        raise AssertionError("unreachable: the second pass finds the stored payment")

    async def refund(self, order_id: str) -> StoredPayment:
        """Give the money of a captured payment back (idempotent; tolerant of other states)."""
        _require_saga_caller()
        _check_ids(order_id)
        async with self.db.unit_of_work() as uow:
            stored = await store.payment_for_order(uow.session, order_id, for_update=True)
            if stored is None:
                raise not_found(f"no payment for order {order_id}")
            give_back = stored.payment.refund(_now())
            await store.update_payment(uow.session, stored.payment)
            await uow.commit()
        if give_back:
            await self.provider.refund(stored.payment)
        return stored

    async def get_payment(self, order_id: str) -> StoredPayment:
        caller = require_authenticated()
        async with self.db.session() as session:
            stored = await store.payment_for_order(session, order_id)
        allowed = caller.is_system or caller.is_admin
        if stored is None or not (allowed or stored.user_id == caller.user_id):
            raise not_found(f"no payment for order {order_id}")
        return stored
