"""Payment rules: the sandbox provider's tokens, the payment state machine, idempotency by order.

Pure (no I/O, no clock). The handler asks `start_charge` whether to call the provider, calls it
(with a deadline) outside any transaction, then feeds the answer to `Payment.apply_result`.
Because the order id is the idempotency key, a retried or duplicated charge can never reach
the provider twice, and a void recorded before a charge arrives ("tombstone") makes that late
charge a no-op: whatever the timing, an order is charged at most once.

No card data exists here: the provider token is the only payment instrument we ever see
(API.md lists no brand or last4, so none is kept).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Final

from emporium.chassis.errors import DomainError, ErrorCode, FieldError, conflict, invalid
from emporium.chassis.money import from_minor

TOPIC_ORDER_COMPLETED: Final = "order.completed"
CURRENCY_PATTERN: Final = re.compile(r"^[A-Z]{3}$")
MAX_AMOUNT_MINOR: Final = 10**15


class SandboxBehaviour(StrEnum):
    APPROVE = "approve"
    DECLINE = "decline"
    HANG = "hang"


@dataclass(frozen=True)
class SandboxToken:
    """What the built-in provider does with a token (API.md "Sandbox payment tokens")."""

    token: str
    behaviour: SandboxBehaviour
    decline_reason: str | None = None


SANDBOX_TOKENS: Final[dict[str, SandboxToken]] = {
    t.token: t
    for t in (
        SandboxToken("tok_visa", SandboxBehaviour.APPROVE),
        SandboxToken("tok_chargeDeclined", SandboxBehaviour.DECLINE, "card_declined"),
        SandboxToken(
            "tok_chargeDeclinedInsufficientFunds", SandboxBehaviour.DECLINE, "insufficient_funds"
        ),
        SandboxToken("tok_timeout", SandboxBehaviour.HANG),
    )
}


def sandbox_token(token: object) -> SandboxToken:
    """The behaviour of `token`; any other token is a 400 naming `payment_token`."""
    if isinstance(token, str) and token in SANDBOX_TOKENS:
        return SANDBOX_TOKENS[token]
    raise DomainError(
        "unknown payment token",
        ErrorCode.INVALID_ARGUMENT,
        "invalid_payment_token",
        [FieldError("payment_token", f"must be one of {sorted(SANDBOX_TOKENS)}")],
    )


class ProviderResult(StrEnum):
    """What the provider call produced. TIMED_OUT means "unknown": it may still succeed."""

    APPROVED = "approved"
    DECLINED = "declined"
    TIMED_OUT = "timed_out"


def sandbox_result(token: SandboxToken) -> ProviderResult:
    """The answer the sandbox gives once its call returns (a HANG never returns in time)."""
    match token.behaviour:
        case SandboxBehaviour.APPROVE:
            return ProviderResult.APPROVED
        case SandboxBehaviour.DECLINE:
            return ProviderResult.DECLINED
    return ProviderResult.TIMED_OUT


class PaymentStatus(StrEnum):
    PENDING = "PENDING"
    CAPTURED = "CAPTURED"
    DECLINED = "DECLINED"
    REFUNDED = "REFUNDED"
    VOIDED = "VOIDED"


ALLOWED_TRANSITIONS: Final[dict[PaymentStatus, frozenset[PaymentStatus]]] = {
    PaymentStatus.PENDING: frozenset(
        {PaymentStatus.CAPTURED, PaymentStatus.DECLINED, PaymentStatus.VOIDED}
    ),
    PaymentStatus.CAPTURED: frozenset({PaymentStatus.REFUNDED, PaymentStatus.VOIDED}),
    PaymentStatus.DECLINED: frozenset(),
    PaymentStatus.REFUNDED: frozenset(),
    PaymentStatus.VOIDED: frozenset(),
}


@dataclass(frozen=True)
class PaymentCompleted:
    """Event on `order.completed` (key: order id) once a charge is final, captured or declined.

    `payload()` has the fields of `contracts.events.order_completed.OrderCompletedV1` (amount
    as an exact decimal, status `captured`/`declined`); `reason` is extra (ignored by V1).
    """

    payment_id: str
    order_id: str
    amount_minor: int
    currency: str
    status: PaymentStatus
    at: datetime
    reason: str | None = None

    topic = TOPIC_ORDER_COMPLETED

    @property
    def captured(self) -> bool:
        return self.status is PaymentStatus.CAPTURED

    def payload(self) -> dict[str, object]:
        data: dict[str, object] = {
            "order_id": self.order_id,
            "payment_id": self.payment_id,
            "amount": from_minor(self.amount_minor, self.currency),
            "currency": self.currency,
            "status": self.status.value.lower(),
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

    def validate(self) -> SandboxToken:
        errors: list[FieldError] = []
        if not self.order_id:
            errors.append(FieldError("order_id", "must not be empty"))
        amount = self.amount_minor
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            errors.append(FieldError("amount_minor", "must be a positive integer"))
        elif amount > MAX_AMOUNT_MINOR:
            errors.append(FieldError("amount_minor", f"must be at most {MAX_AMOUNT_MINOR}"))
        if not isinstance(self.currency, str) or not CURRENCY_PATTERN.fullmatch(self.currency):
            errors.append(FieldError("currency", "must be a three-letter ISO 4217 code"))
        if errors:
            raise invalid("invalid charge", *errors)
        return sandbox_token(self.token)


@dataclass
class Payment:
    """One order's payment; `order_id` is unique (the idempotency key)."""

    id: str
    order_id: str
    amount_minor: int
    currency: str
    token: str
    created_at: datetime
    updated_at: datetime
    status: PaymentStatus = PaymentStatus.PENDING
    reason: str | None = None
    # Set when the provider approved after we had given up (voided): the handler must reverse
    # that capture at the provider; we never keep money for an order we cancelled.
    needs_reversal: bool = False

    def _move(self, to: PaymentStatus, now: datetime) -> None:
        if to not in ALLOWED_TRANSITIONS[self.status]:
            raise DomainError(
                f"payment {self.id} cannot go from {self.status} to {to}",
                ErrorCode.FAILED_PRECONDITION,
                "illegal_payment_transition",
            )
        self.status = to
        self.updated_at = now

    def matches(self, request: ChargeRequest) -> bool:
        return (self.amount_minor, self.currency, self.token) == (
            request.amount_minor,
            request.currency,
            request.token,
        )

    def apply_result(
        self, result: ProviderResult, now: datetime, reason: str | None = None
    ) -> list[PaymentCompleted]:
        """Record the provider's answer. Late answers for a payment no longer PENDING are
        ignored, except an approval after a void, which is flagged for reversal."""
        if self.status is not PaymentStatus.PENDING:
            if result is ProviderResult.APPROVED and self.status is PaymentStatus.VOIDED:
                self.needs_reversal = True
                self.updated_at = now
            return []
        if result is ProviderResult.TIMED_OUT:
            return []  # still unknown: the saga retries (same payment) or voids it
        if result is ProviderResult.APPROVED:
            self._move(PaymentStatus.CAPTURED, now)
        else:
            self._move(PaymentStatus.DECLINED, now)
            self.reason = reason or "card_declined"
        return [self._completed(now)]

    def _completed(self, now: datetime) -> PaymentCompleted:
        return PaymentCompleted(
            self.id, self.order_id, self.amount_minor, self.currency, self.status, now, self.reason
        )

    def refund(self, now: datetime) -> bool:
        """Give the money back. Returns True when the provider must be asked to refund.

        Tolerant, because it is a compensation that may be retried or arrive out of order:
        refunding a refunded/voided/declined payment does nothing, and a PENDING one (outcome
        unknown) is voided instead, so its late approval gets reversed.
        """
        if self.status is PaymentStatus.CAPTURED:
            self._move(PaymentStatus.REFUNDED, now)
            return True
        if self.status is PaymentStatus.PENDING:
            self._move(PaymentStatus.VOIDED, now)
            self.reason = "voided"
        return False

    def void(self, now: datetime) -> bool:
        """Cancel before settlement (or reverse a capture). Returns True when a capture must be
        reversed at the provider. Idempotent; a declined payment has nothing to void."""
        if self.status in (PaymentStatus.PENDING, PaymentStatus.CAPTURED):
            was_captured = self.status is PaymentStatus.CAPTURED
            self._move(PaymentStatus.VOIDED, now)
            self.reason = self.reason or "voided"
            return was_captured
        return False

    def to_view(self) -> dict[str, object]:
        view: dict[str, object] = {"status": self.status.value}
        if self.reason:
            view["reason"] = self.reason
        return view


@dataclass
class ChargeDecision:
    """`call_provider` is True only for a payment created by this very request."""

    payment: Payment
    call_provider: bool
    events: list[PaymentCompleted] = field(default_factory=list)


def start_charge(
    request: ChargeRequest, existing: Payment | None, payment_id: str, now: datetime
) -> ChargeDecision:
    """Decide what a `Charge` does. Second charge for an order returns the first payment
    (whatever its state); the same order with a different amount, currency or token is a
    conflict, never a second payment."""
    request.validate()
    if existing is not None:
        if not existing.matches(request):
            raise conflict(
                f"order {request.order_id} was already charged with different details",
                "idempotency_mismatch",
            )
        return ChargeDecision(existing, call_provider=False)
    payment = Payment(
        id=payment_id,
        order_id=request.order_id,
        amount_minor=request.amount_minor,
        currency=request.currency,
        token=request.token,
        created_at=now,
        updated_at=now,
    )
    return ChargeDecision(payment, call_provider=True)


def void_for_order(
    request: ChargeRequest, existing: Payment | None, payment_id: str, now: datetime
) -> tuple[Payment, bool]:
    """The saga gave up on a charge whose outcome it does not know. If no payment exists yet
    (the charge never arrived, or is still in flight), record a VOIDED tombstone so that the
    charge, should it arrive later, is answered "voided" and never reaches the provider.

    Returns the payment and whether a capture must be reversed at the provider.
    """
    if existing is None:
        tombstone = Payment(
            id=payment_id,
            order_id=request.order_id,
            amount_minor=request.amount_minor,
            currency=request.currency,
            token=request.token,
            created_at=now,
            updated_at=now,
            status=PaymentStatus.VOIDED,
            reason="voided",
        )
        return tombstone, False
    return existing, existing.void(now)
