"""payment-service use cases: charge an order once, void, refund, read, reconcile.

Who may do what: Charge, Void and Refund are for order-service's saga only (callers.py and
`require_service`); GetPayment also for the user who placed the order (anyone else gets
NOT_FOUND, so order ids cannot be probed); CheckPaymentToken for any authenticated caller.

Each money movement is an intent recorded in one unit of work, a provider call outside any
transaction (the payment id is the provider's idempotency key), and the provider's answer
recorded in a second unit of work together with its `order.completed` event in the outbox
(domain.py has the rules). When the call gives no usable answer the intent stays and is
scheduled for a retry; `Reconciler` (reconciler.py) works through those. Void and Refund
answer the payment as it stands after their attempt: VOIDED/REFUNDED only once the provider
confirmed, so the saga knows whether its compensation is really done.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from emporium.chassis.backoff import Backoff
from emporium.chassis.db import Database
from emporium.chassis.errors import FieldError, invalid, not_found
from emporium.chassis.events.outbox import add_event
from emporium.chassis.failpoints import failpoint
from emporium.chassis.rpc.identity import Caller, require_authenticated, require_service
from emporium.chassis.rpc.server import within_deadline
from emporium.contracts.events.order_completed import TOPIC, OrderCompletedV1
from emporium.services.payment import store
from emporium.services.payment.domain import (
    ChargeRequest,
    Payment,
    PaymentCompleted,
    ProviderAnswer,
    ProviderCall,
    ProviderStatus,
    start_charge,
    unknown_token,
    void_tombstone,
)
from emporium.services.payment.provider import (
    HttpPaymentProvider,
    ProviderRefused,
    ProviderUnavailable,
)
from emporium.services.payment.store import StoredPayment

log = logging.getLogger(__name__)

SERVICE = "payment"
MAX_ID_LENGTH = 64
# Leave this much of the caller's deadline to record the answer and reply.
ANSWER_MARGIN_SECONDS = 0.25
MIN_PROVIDER_TIMEOUT_SECONDS = 0.05
# How soon an intent the provider did not confirm is tried again (the reconciler's pace).
PROVIDER_RETRY = Backoff(initial=0.5, multiplier=2.0, maximum=30.0, jitter=0.5)


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
    """Money moves only when order-service's saga asks (its own proven identity): never for
    a user's token, however privileged; a refund goes through order's CancelOrder."""
    return require_service("order")


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


def _call_budget(default: float) -> float:
    """The provider call's timeout: ours, but never past the caller's own deadline."""
    return max(MIN_PROVIDER_TIMEOUT_SECONDS, within_deadline(default, ANSWER_MARGIN_SECONDS))


class Payments:
    """The use cases; `provider` is the provider's client (the sandbox or a real one)."""

    def __init__(self, db: Database, provider: HttpPaymentProvider) -> None:
        self.db = db
        self.provider = provider

    async def check_token(self, token: str) -> str:
        require_authenticated()
        if not token or len(token) > 255 or not await self.provider.token_known(token):
            raise unknown_token()
        return token

    # -- charge ----------------------------------------------------------------------------

    async def charge(self, command: ChargeInput) -> StoredPayment:
        """Charge once per order; a retry answers the first payment, asking the provider
        again (same key) while its outcome is unknown."""
        _require_saga_caller()
        _check_ids(command.order_id, command.user_id)
        request = ChargeRequest(
            command.order_id, command.amount_minor, command.currency, command.payment_token
        )
        stored, call = await self._record_charge_intent(request, command.user_id)
        if not call:
            return stored
        return await self.call_provider(stored.payment, ProviderCall.RESOLVE, fresh=True)

    async def _record_charge_intent(
        self, request: ChargeRequest, user_id: str
    ) -> tuple[StoredPayment, bool]:
        for _ in range(2):  # a lost insert race is retried once, then finds the winner
            async with self.db.unit_of_work() as uow:
                existing = await store.payment_for_order(uow.session, request.order_id)
                found = existing.payment if existing else None
                payment, call = start_charge(request, found, _new_id(), _now())
                if existing is not None:
                    return existing, call
                if await store.insert_payment(uow.session, payment, user_id):
                    await uow.commit()
                    return StoredPayment(payment, user_id), True
        raise AssertionError("unreachable: the second pass finds the stored payment")

    # -- void and refund -------------------------------------------------------------------

    async def void(self, order_id: str, charge: ChargeInput | None = None) -> StoredPayment:
        """Make sure the order is never charged (idempotent). Without a payment yet, a VOIDED
        tombstone fences the charge that may still be on its way."""
        _require_saga_caller()
        _check_ids(order_id)
        user_id = (charge.user_id if charge else "") or "unknown"
        for _ in range(2):
            async with self.db.unit_of_work() as uow:
                existing = await store.payment_for_order(uow.session, order_id, for_update=True)
                if existing is None:
                    tombstone = void_tombstone(order_id, _new_id(), _now())
                    if await store.insert_payment(uow.session, tombstone, user_id):
                        await uow.commit()
                        return StoredPayment(tombstone, user_id)
                    continue
                call = existing.payment.request_void(_now())
                await store.update_payment(uow.session, existing.payment)
                await uow.commit()
            if not call:
                return existing
            return await self.call_provider(existing.payment, ProviderCall.VOID)
        raise AssertionError("unreachable: the second pass finds the stored payment")

    async def refund(self, order_id: str) -> StoredPayment:
        """Give the money of a captured payment back (idempotent; tolerant of other states:
        a charge of unknown outcome is voided instead)."""
        _require_saga_caller()
        _check_ids(order_id)
        async with self.db.unit_of_work() as uow:
            stored = await store.payment_for_order(uow.session, order_id, for_update=True)
            if stored is None:
                raise not_found(f"no payment for order {order_id}")
            call = stored.payment.request_refund(_now())
            await store.update_payment(uow.session, stored.payment)
            await uow.commit()
        operation = stored.payment.open_call()
        if not call or operation is None:
            return stored
        return await self.call_provider(stored.payment, operation)

    # -- the provider call and its answer --------------------------------------------------

    async def call_provider(
        self, payment: Payment, operation: ProviderCall, *, fresh: bool = False
    ) -> StoredPayment:
        """Perform `operation` for the payment's open intent and record what came of it.
        `fresh`: the charge was sent by this very request (else a lookup comes first)."""
        try:
            answer = await self._ask(payment, operation, fresh)
            await failpoint("payment.provider_answered")  # chaos suite: the answer dies here
        except ProviderUnavailable as exc:
            return await self._record(payment.order_id, None, str(exc))
        except ProviderRefused as exc:
            if operation is ProviderCall.RESOLVE and exc.status == 400:
                # The provider refused the charge itself: nothing was taken.
                answer = ProviderAnswer(ProviderStatus.DECLINED, exc.code)
            else:
                log.error(
                    "payment provider refused",
                    extra={"order_id": payment.order_id, "operation": operation, "code": exc.code},
                )
                return await self._record(payment.order_id, None, f"refused: {exc.code}")
        return await self._record(payment.order_id, answer, None)

    async def _ask(self, payment: Payment, operation: ProviderCall, fresh: bool) -> ProviderAnswer:
        timeout = _call_budget(self.provider.timeout)
        if operation is ProviderCall.VOID:
            return await self.provider.void(payment)
        if operation is ProviderCall.REFUND:
            return await self.provider.refund(payment)
        if not fresh:
            found = await self.provider.lookup(payment)
            if found is not None:
                return found
        # Never received (or sent just now): send it, under the same idempotency key.
        return await self.provider.charge(payment, timeout=timeout)

    async def _record(
        self, order_id: str, answer: ProviderAnswer | None, error: str | None
    ) -> StoredPayment:
        async with self.db.unit_of_work() as uow:
            stored = await store.payment_for_order(uow.session, order_id, for_update=True)
            if stored is None:
                raise not_found(f"no payment for order {order_id}")
            payment = stored.payment
            if answer is None:
                if payment.open_call() is not None:
                    delay = PROVIDER_RETRY.delay(payment.attempts + 1)
                    payment.schedule_retry(_now(), error or "no answer", delay)
                events: list[PaymentCompleted] = []
            else:
                events = payment.apply_answer(answer, _now())
            await store.update_payment(uow.session, payment)
            for completed in events:
                event = _completed_event(completed, stored.user_id)
                await add_event(uow, TOPIC, event, source=SERVICE)  # type: ignore[arg-type]  # ClassVar TOPIC
            await uow.commit()
        return stored

    # -- reads -----------------------------------------------------------------------------

    async def get_payment(self, order_id: str) -> StoredPayment:
        caller = require_authenticated()
        async with self.db.session() as session:
            stored = await store.payment_for_order(session, order_id)
        allowed = caller.is_system or caller.is_admin
        if stored is None or not (allowed or stored.user_id == caller.user_id):
            raise not_found(f"no payment for order {order_id}")
        return stored
