# mypy: disable-error-code="comparison-overlap"
"""Payment rules (pure): sandbox tokens, the state machine, idempotency by order id,
tombstones for late charges; plus a random check that an order is never charged twice."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from emporium.chassis.errors import DomainError, ErrorCode
from emporium.chassis.money import from_minor
from emporium.contracts.events.order_completed import OrderCompletedV1
from emporium.services.payment.domain import (
    ALLOWED_TRANSITIONS,
    SANDBOX_TOKENS,
    ChargeRequest,
    Payment,
    PaymentStatus,
    ProviderResult,
    SandboxBehaviour,
    sandbox_result,
    sandbox_token,
    start_charge,
    void_for_order,
)

NOW = datetime(2025, 1, 1, tzinfo=UTC)
LATER = NOW + timedelta(seconds=30)


def request(token: str = "tok_visa", amount: int = 4998, order_id: str = "o1") -> ChargeRequest:
    return ChargeRequest(order_id, amount, "USD", token)


def charged(token: str = "tok_visa") -> Payment:
    decision = start_charge(request(token), None, "pay_1", NOW)
    assert decision.call_provider
    behaviour = sandbox_token(token)
    decision.payment.apply_result(sandbox_result(behaviour), LATER, behaviour.decline_reason)
    return decision.payment


def test_sandbox_tokens_are_exactly_the_documented_ones() -> None:
    assert set(SANDBOX_TOKENS) == {
        "tok_visa",
        "tok_chargeDeclined",
        "tok_chargeDeclinedInsufficientFunds",
        "tok_timeout",
    }
    assert sandbox_result(sandbox_token("tok_visa")) is ProviderResult.APPROVED
    assert sandbox_token("tok_chargeDeclined").decline_reason == "card_declined"
    assert sandbox_token("tok_chargeDeclinedInsufficientFunds").decline_reason == (
        "insufficient_funds"
    )
    assert sandbox_token("tok_timeout").behaviour is SandboxBehaviour.HANG
    assert sandbox_result(sandbox_token("tok_timeout")) is ProviderResult.TIMED_OUT


@pytest.mark.parametrize("token", ["tok_mastercard", "", "TOK_VISA", None, 4242])
def test_any_other_token_is_a_400_naming_payment_token(token: object) -> None:
    with pytest.raises(DomainError) as caught:
        sandbox_token(token)
    assert caught.value.http_status == 400
    assert caught.value.reason == "invalid_payment_token"
    assert [f.field for f in caught.value.fields] == ["payment_token"]


@pytest.mark.parametrize(
    ("charge", "field"),
    [
        (ChargeRequest("o1", 0, "USD", "tok_visa"), "amount_minor"),
        (ChargeRequest("o1", -5, "USD", "tok_visa"), "amount_minor"),
        (ChargeRequest("o1", 10, "usd", "tok_visa"), "currency"),
        (ChargeRequest("", 10, "USD", "tok_visa"), "order_id"),
        (ChargeRequest("o1", 10, "USD", "tok_nope"), "payment_token"),
    ],
)
def test_charge_request_is_validated(charge: ChargeRequest, field: str) -> None:
    with pytest.raises(DomainError) as caught:
        start_charge(charge, None, "pay_1", NOW)
    assert caught.value.code is ErrorCode.INVALID_ARGUMENT
    assert [f.field for f in caught.value.fields] == [field]


def test_approved_charge_is_captured_and_announced() -> None:
    decision = start_charge(request(), None, "pay_1", NOW)
    payment = decision.payment
    assert payment.status is PaymentStatus.PENDING
    events = payment.apply_result(ProviderResult.APPROVED, LATER)
    assert payment.status is PaymentStatus.CAPTURED
    assert [(e.topic, e.order_id, e.amount_minor) for e in events] == [
        ("order.completed", "o1", 4998)
    ]
    contract = OrderCompletedV1.model_validate(events[0].payload())
    assert (contract.status, contract.amount, contract.currency) == (
        "captured",
        Decimal("49.98"),
        "USD",
    )
    assert contract.subject() == "o1"
    assert payment.updated_at == LATER


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("tok_chargeDeclined", "card_declined"),
        ("tok_chargeDeclinedInsufficientFunds", "insufficient_funds"),
    ],
)
def test_declines_keep_their_reason_and_are_announced(token: str, reason: str) -> None:
    payment = start_charge(request(token), None, "pay_1", NOW).payment
    events = payment.apply_result(ProviderResult.DECLINED, LATER, reason)
    assert payment.status is PaymentStatus.DECLINED
    assert payment.to_view() == {"status": "DECLINED", "reason": reason}
    contract = OrderCompletedV1.model_validate(events[0].payload())
    assert contract.status == "declined"
    assert events[0].payload()["reason"] == reason


def test_timeout_leaves_the_outcome_unknown() -> None:
    payment = charged("tok_timeout")
    assert payment.status is PaymentStatus.PENDING


def test_second_charge_for_the_same_order_returns_the_first_payment() -> None:
    payment = charged()
    again = start_charge(request(), payment, "pay_2", LATER)
    assert again.payment is payment
    assert not again.call_provider
    assert payment.status is PaymentStatus.CAPTURED


@pytest.mark.parametrize(
    "different",
    [
        request(amount=1),
        ChargeRequest("o1", 4998, "EUR", "tok_visa"),
        request("tok_chargeDeclined"),
    ],
)
def test_same_order_with_other_details_is_a_conflict(different: ChargeRequest) -> None:
    payment = charged()
    with pytest.raises(DomainError) as caught:
        start_charge(different, payment, "pay_2", LATER)
    assert (caught.value.http_status, caught.value.reason) == (409, "idempotency_mismatch")


def test_refund_and_void_are_idempotent_compensations() -> None:
    payment = charged()
    assert payment.refund(LATER) is True  # the provider must give money back
    assert payment.refund(LATER) is False
    assert payment.void(LATER) is False
    assert payment.status is PaymentStatus.REFUNDED

    captured = charged()
    assert captured.void(LATER) is True  # reversing a capture
    assert captured.status is PaymentStatus.VOIDED

    declined = charged("tok_chargeDeclined")
    assert declined.refund(LATER) is False
    assert declined.void(LATER) is False
    assert declined.status is PaymentStatus.DECLINED

    pending = charged("tok_timeout")
    assert pending.refund(LATER) is False  # unknown outcome: voided, nothing to give back yet
    assert pending.status is PaymentStatus.VOIDED


def test_illegal_transitions_are_refused() -> None:
    assert PaymentStatus.CAPTURED not in ALLOWED_TRANSITIONS[PaymentStatus.DECLINED]
    payment = charged("tok_chargeDeclined")
    with pytest.raises(DomainError) as caught:
        payment._move(PaymentStatus.CAPTURED, LATER)
    assert caught.value.reason == "illegal_payment_transition"


def test_late_result_after_a_void_never_captures() -> None:
    payment = charged("tok_timeout")
    payment.void(LATER)
    assert payment.apply_result(ProviderResult.APPROVED, LATER) == []
    assert payment.status is PaymentStatus.VOIDED
    assert payment.needs_reversal  # the provider took money late: the handler gives it back


def test_void_before_the_charge_leaves_a_tombstone() -> None:
    tombstone, reverse = void_for_order(request(), None, "pay_1", NOW)
    assert (tombstone.status, reverse) == (PaymentStatus.VOIDED, False)
    late = start_charge(request(), tombstone, "pay_2", LATER)
    assert late.payment is tombstone
    assert not late.call_provider


def test_void_for_order_reverses_an_existing_capture() -> None:
    payment = charged()
    same, reverse = void_for_order(request(), payment, "pay_2", LATER)
    assert same is payment
    assert reverse
    assert payment.status is PaymentStatus.VOIDED


@pytest.mark.parametrize(
    ("minor", "currency", "major"),
    [(4998, "USD", "49.98"), (500, "JPY", "500"), (1234, "KWD", "1.234"), (5, "EUR", "0.05")],
)
def test_event_amounts_are_exact_decimals(minor: int, currency: str, major: str) -> None:
    assert from_minor(minor, currency) == Decimal(major)


def test_no_card_data_is_kept() -> None:
    fields = set(Payment.__dataclass_fields__)
    assert not fields & {"card_number", "pan", "cvc", "cvv", "expiry", "last4", "brand"}


def test_random_charge_void_interleavings_charge_at_most_once() -> None:
    """Property: duplicated charges, voids, refunds and late provider answers in any order
    reach the provider at most once per order, and money kept implies status CAPTURED."""
    tokens = list(SANDBOX_TOKENS)
    for seed in range(200):
        rng = random.Random(seed)
        token = rng.choice(tokens)
        payment: Payment | None = None
        provider_calls = 0
        money_taken = 0
        pending_answers: list[ProviderResult] = []
        for step in range(rng.randrange(1, 12)):
            now = NOW + timedelta(seconds=step)
            action = rng.random()
            if action < 0.5:
                decision = start_charge(request(token), payment, f"pay_{step}", now)
                payment = decision.payment
                if decision.call_provider:
                    provider_calls += 1
                    result = sandbox_result(sandbox_token(token))
                    if result is ProviderResult.APPROVED and rng.random() < 0.3:
                        pending_answers.append(result)  # answer arrives late
                    else:
                        payment.apply_result(result, now, sandbox_token(token).decline_reason)
                        money_taken += result is ProviderResult.APPROVED
            elif action < 0.7:
                payment, reverse = void_for_order(request(token), payment, "void", now)
                money_taken -= reverse
            elif action < 0.8 and payment is not None:
                money_taken -= payment.refund(now)
            elif pending_answers and payment is not None:
                payment.apply_result(pending_answers.pop(), now)
                if payment.status is PaymentStatus.CAPTURED or payment.needs_reversal:
                    money_taken += 1
                if payment.needs_reversal:
                    payment.needs_reversal = False
                    money_taken -= 1  # the handler reverses it at the provider
        assert provider_calls <= 1, seed
        assert money_taken in (0, 1), seed
        kept = payment is not None and payment.status is PaymentStatus.CAPTURED
        assert (money_taken == 1) == kept, seed
