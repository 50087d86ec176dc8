"""Payment rules: a persisted state machine towards the provider. Pure (no I/O, no clock).

Every move of money goes the same way: the *intent* is recorded first (PENDING for a charge,
VOIDING or REFUNDING for giving money back), then the provider is called with the payment id
as its idempotency key, then its answer is recorded. A state that says money moved
(CAPTURED, VOIDED, REFUNDED) is written only from the provider's own answer: a timeout, a
crash or an error leaves the intent in place, and the reconciler asks again (a lookup for a
charge, the same void or refund otherwise) with backoff until the provider confirms.

    PENDING --captured--> CAPTURED --refund--> REFUNDING --refunded--> REFUNDED
       |  \\--declined--> DECLINED       \\--void--> VOIDING --voided--> VOIDED
       \\--void--> VOIDING                         (a void of a capture reverses it)

Answers are snapshots of the provider's books, so they may arrive late or out of order; the
rules only ever move forward (a stale "captured" cannot undo a confirmed void). The order id
is unique per payment, so a retried or duplicated Charge never creates a second payment, and a
Void that finds no payment leaves a VOIDED tombstone: no charge was ever sent under any id,
and a Charge arriving later finds the tombstone and never reaches the provider.

No card data exists here: the provider token is the only payment instrument we ever see.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from emporium.chassis.errors import DomainError, ErrorCode, FieldError, conflict, invalid
from emporium.chassis.money import from_minor

TOPIC_ORDER_COMPLETED: Final = "order.completed"
MAX_AMOUNT_MINOR: Final = 10**15
MAX_TOKEN_LENGTH: Final = 255


class PaymentStatus(StrEnum):
    PENDING = "PENDING"  # charge intent recorded; the provider's outcome is not known yet
    CAPTURED = "CAPTURED"
    DECLINED = "DECLINED"
    VOIDING = "VOIDING"  # we want nothing taken for this order; the provider has not confirmed
    VOIDED = "VOIDED"
    REFUNDING = "REFUNDING"  # we want the capture back; the provider has not confirmed
    REFUNDED = "REFUNDED"


FINAL_STATES: Final = frozenset(
    {PaymentStatus.DECLINED, PaymentStatus.VOIDED, PaymentStatus.REFUNDED}
)
# Nothing is held for the order: the answer a void or a refund waits for.
NOTHING_HELD: Final = FINAL_STATES


class ProviderStatus(StrEnum):
    """What the provider's books say of a payment (sandbox and real providers alike)."""

    PROCESSING = "processing"
    CAPTURED = "captured"
    DECLINED = "declined"
    VOIDED = "voided"
    REFUNDED = "refunded"


@dataclass(frozen=True)
class ProviderAnswer:
    status: ProviderStatus
    reason: str | None = None


class ProviderCall(StrEnum):
    """Which provider operation an open intent needs next."""

    RESOLVE = "resolve"  # a charge of unknown outcome: look it up (re-send if never received)
    VOID = "void"
    REFUND = "refund"


@dataclass(frozen=True)
class PaymentCompleted:
    """Event on `order.completed` (key: order id): a charge became final (captured/declined),
    or a capture that was announced was given back (refunded/voided), so consumers that
    counted it (analytics' revenue) can take it back out.

    `payload()` has the fields of `contracts.events.order_completed.OrderCompletedV1`."""

    payment_id: str
    order_id: str
    amount_minor: int
    currency: str
    status: str  # captured | declined | refunded | voided
    at: datetime
    reason: str | None = None

    topic = TOPIC_ORDER_COMPLETED

    def payload(self) -> dict[str, object]:
        data: dict[str, object] = {
            "order_id": self.order_id,
            "payment_id": self.payment_id,
            "amount": from_minor(self.amount_minor, self.currency),
            "currency": self.currency,
            "status": self.status,
        }
        if self.reason:
            data["reason"] = self.reason
        return data


@dataclass(frozen=True)
class ChargeRequest:
    """`Charge(order_id, amount, token)` from order-service's saga."""

    order_id: str
    amount_minor: int
    currency: str
    token: str

    def validate(self) -> None:
        errors: list[FieldError] = []
        if not self.order_id:
            errors.append(FieldError("order_id", "must not be empty"))
        amount = self.amount_minor
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            errors.append(FieldError("amount_minor", "must be a positive integer"))
        elif amount > MAX_AMOUNT_MINOR:
            errors.append(FieldError("amount_minor", f"must be at most {MAX_AMOUNT_MINOR}"))
        if not isinstance(self.currency, str) or not (
            len(self.currency) == 3 and self.currency.isascii() and self.currency.isupper()
        ):
            errors.append(FieldError("currency", "must be a three-letter ISO 4217 code"))
        if not isinstance(self.token, str) or not 0 < len(self.token) <= MAX_TOKEN_LENGTH:
            errors.append(FieldError("payment_token", f"must be 1-{MAX_TOKEN_LENGTH} characters"))
        if errors:
            raise invalid("invalid charge", *errors)


@dataclass
class Payment:
    """One order's payment; `order_id` is unique (the idempotency key of the saga), `id` is
    the idempotency key towards the provider."""

    id: str
    order_id: str
    amount_minor: int
    currency: str
    token: str
    created_at: datetime
    updated_at: datetime
    status: PaymentStatus = PaymentStatus.PENDING
    reason: str | None = None
    announced: bool = False  # an `order.completed` "captured" went out for it
    attempts: int = 0  # provider calls for the open intent that got no usable answer
    next_attempt_at: datetime | None = None
    last_error: str | None = None

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATES

    def matches(self, request: ChargeRequest) -> bool:
        return (self.amount_minor, self.currency, self.token) == (
            request.amount_minor,
            request.currency,
            request.token,
        )

    def open_call(self) -> ProviderCall | None:
        """The provider call the open intent needs, or None when nothing is open."""
        return {
            PaymentStatus.PENDING: ProviderCall.RESOLVE,
            PaymentStatus.VOIDING: ProviderCall.VOID,
            PaymentStatus.REFUNDING: ProviderCall.REFUND,
        }.get(self.status)

    def _move(self, to: PaymentStatus, now: datetime) -> None:
        self.status = to
        self.updated_at = now

    # -- intents ---------------------------------------------------------------------------

    def request_void(self, now: datetime) -> bool:
        """Nothing may be taken for this order. True when the provider must be asked (a
        pending charge is cancelled, a capture reversed); final states have nothing to undo,
        and a refund already under way is left to finish."""
        if self.status in (PaymentStatus.PENDING, PaymentStatus.CAPTURED):
            self._move(PaymentStatus.VOIDING, now)
            self._reset_retry()
            return True
        return self.status is PaymentStatus.VOIDING

    def request_refund(self, now: datetime) -> bool:
        """Give a capture back. A charge of unknown outcome is voided instead (that also
        reverses it if it was captured). True when the provider must be asked."""
        if self.status is PaymentStatus.CAPTURED:
            self._move(PaymentStatus.REFUNDING, now)
            self._reset_retry()
            return True
        if self.status is PaymentStatus.PENDING:
            return self.request_void(now)
        return self.status in (PaymentStatus.VOIDING, PaymentStatus.REFUNDING)

    # -- the provider's answers ------------------------------------------------------------

    def apply_answer(self, answer: ProviderAnswer, now: datetime) -> list[PaymentCompleted]:
        """Record what the provider's books say; returns the events to publish."""
        self._reset_retry()
        status = answer.status
        if self.status is PaymentStatus.PENDING:
            return self._resolve_charge(answer, now)
        if self.status is PaymentStatus.CAPTURED and status in (
            ProviderStatus.VOIDED,
            ProviderStatus.REFUNDED,
        ):
            return self._given_back(status, now)
        if self.status is PaymentStatus.VOIDING:
            if status is ProviderStatus.DECLINED:
                self._move(PaymentStatus.DECLINED, now)
                self.reason = answer.reason or self.reason or "card_declined"
                return []
            if status in (ProviderStatus.VOIDED, ProviderStatus.REFUNDED):
                return self._given_back(status, now)
            return []  # still processing or captured: the void must be sent (again)
        if self.status is PaymentStatus.REFUNDING:
            if status is ProviderStatus.DECLINED:
                self._move(PaymentStatus.DECLINED, now)
                return []
            if status in (ProviderStatus.VOIDED, ProviderStatus.REFUNDED):
                return self._given_back(status, now)
        return []  # final states never move; a stale snapshot changes nothing

    def _resolve_charge(self, answer: ProviderAnswer, now: datetime) -> list[PaymentCompleted]:
        match answer.status:
            case ProviderStatus.CAPTURED:
                self._move(PaymentStatus.CAPTURED, now)
                self.announced = True
                return [self._event("captured", now)]
            case ProviderStatus.DECLINED:
                self._move(PaymentStatus.DECLINED, now)
                self.reason = answer.reason or "card_declined"
                return [self._event("declined", now)]
            case ProviderStatus.VOIDED:  # fenced or cancelled at the provider: nothing taken
                self._move(PaymentStatus.VOIDED, now)
                self.reason = self.reason or "voided"
                return []
            case ProviderStatus.REFUNDED:
                return self._given_back(answer.status, now)
        return []  # processing: still unknown

    def _given_back(self, status: ProviderStatus, now: datetime) -> list[PaymentCompleted]:
        refunded = status is ProviderStatus.REFUNDED
        final = PaymentStatus.REFUNDED if refunded else PaymentStatus.VOIDED
        self._move(final, now)
        if final is PaymentStatus.VOIDED:
            self.reason = self.reason or "voided"
        if not self.announced:
            return []
        return [self._event(status.value, now)]

    def _event(self, status: str, now: datetime) -> PaymentCompleted:
        reason = self.reason if status == "declined" else None
        return PaymentCompleted(
            self.id, self.order_id, self.amount_minor, self.currency, status, now, reason
        )

    # -- retries ---------------------------------------------------------------------------

    def schedule_retry(self, now: datetime, error: str, delay: float) -> None:
        """The provider gave no usable answer: ask again in `delay` seconds (the handler's
        backoff grows it with `attempts`)."""
        self.attempts += 1
        self.next_attempt_at = now + timedelta(seconds=delay)
        self.last_error = error[:200]
        self.updated_at = now

    def _reset_retry(self) -> None:
        self.attempts = 0
        self.next_attempt_at = None
        self.last_error = None

    def to_view(self) -> dict[str, object]:
        view: dict[str, object] = {"status": self.status.value}
        if self.reason:
            view["reason"] = self.reason
        return view


def start_charge(
    request: ChargeRequest, existing: Payment | None, payment_id: str, now: datetime
) -> tuple[Payment, bool]:
    """What a `Charge` does: (the payment, whether the provider must be called).

    A new order gets a PENDING payment and a provider call. A second Charge for the order
    answers the first payment; while it is still PENDING the provider is asked again under
    the same key (it answers the first outcome, or `processing`), which is how a retry after
    a deadline learns the outcome. The same order with a different amount, currency or token
    is a conflict, never a second payment; a tombstone (a void that came first) matches any
    request and fences it."""
    request.validate()
    if existing is not None:
        tombstone = existing.status is PaymentStatus.VOIDED and not existing.token
        if not (tombstone or existing.matches(request)):
            raise conflict(
                f"order {request.order_id} was already charged with different details",
                "idempotency_mismatch",
            )
        return existing, existing.status is PaymentStatus.PENDING
    payment = Payment(
        id=payment_id,
        order_id=request.order_id,
        amount_minor=request.amount_minor,
        currency=request.currency,
        token=request.token,
        created_at=now,
        updated_at=now,
    )
    return payment, True


def void_tombstone(order_id: str, payment_id: str, now: datetime) -> Payment:
    """A Void for an order without a payment: VOIDED at once (no charge was ever sent under
    any payment id, so there is nothing the provider could confirm), with an empty token so
    that the Charge it fences matches it whatever its details."""
    return Payment(
        id=payment_id,
        order_id=order_id,
        amount_minor=0,
        currency="XXX",
        token="",
        created_at=now,
        updated_at=now,
        status=PaymentStatus.VOIDED,
        reason="voided",
    )


def unknown_token() -> DomainError:
    """The provider does not know the token: a 400 naming `payment_token` (API.md)."""
    return DomainError(
        "unknown payment token",
        ErrorCode.INVALID_ARGUMENT,
        "invalid_payment_token",
        [FieldError("payment_token", "is not a token the payment provider knows")],
    )
