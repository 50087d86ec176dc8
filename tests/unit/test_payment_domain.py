"""The payment state machine towards the provider (pure rules, no I/O)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from emporium.chassis.errors import DomainError, ErrorCode
from emporium.services.payment.domain import (
    FINAL_STATES,
    ChargeRequest,
    Payment,
    PaymentStatus,
    ProviderAnswer,
    ProviderCall,
    ProviderStatus,
    start_charge,
    unknown_token,
    void_tombstone,
)

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(seconds=5)


def request(token: str = "tok_visa", amount: int = 4998) -> ChargeRequest:
    return ChargeRequest("ord_1", amount, "USD", token)


def pending() -> Payment:
    payment, call = start_charge(request(), None, "pay_1", NOW)
    assert call
    assert payment.status is PaymentStatus.PENDING
    return payment


def answer(status: str, reason: str | None = None) -> ProviderAnswer:
    return ProviderAnswer(ProviderStatus(status), reason)


def test_a_capture_is_recorded_only_from_the_providers_answer() -> None:
    payment = pending()
    assert payment.open_call() is ProviderCall.RESOLVE
    assert payment.apply_answer(answer("processing"), LATER) == []
    assert payment.status is PaymentStatus.PENDING  # still unknown
    (event,) = payment.apply_answer(answer("captured"), LATER)
    assert (payment.status, payment.announced) == (PaymentStatus.CAPTURED, True)
    assert event.payload() == {
        "order_id": "ord_1",
        "payment_id": "pay_1",
        "amount": Decimal("49.98"),
        "currency": "USD",
        "status": "captured",
    }
    assert payment.apply_answer(answer("captured"), LATER) == []  # a duplicate: no 2nd event


def test_a_decline_keeps_the_providers_reason() -> None:
    payment = pending()
    (event,) = payment.apply_answer(answer("declined", "insufficient_funds"), LATER)
    assert (payment.status, payment.reason) == (PaymentStatus.DECLINED, "insufficient_funds")
    assert (event.status, event.reason) == ("declined", "insufficient_funds")
    assert payment.request_void(LATER) is False  # nothing to undo
    assert payment.request_refund(LATER) is False
    assert payment.status is PaymentStatus.DECLINED


def test_void_is_an_intent_until_the_provider_confirms() -> None:
    payment = pending()
    assert payment.request_void(LATER) is True
    assert payment.status is PaymentStatus.VOIDING
    assert payment.open_call() is ProviderCall.VOID
    # A stale "captured" snapshot does not end the void: the capture must be reversed.
    assert payment.apply_answer(answer("captured"), LATER) == []
    assert payment.status is PaymentStatus.VOIDING
    assert payment.apply_answer(answer("voided"), LATER) == []  # never announced: no event
    assert payment.status is PaymentStatus.VOIDED
    assert payment.open_call() is None


def test_reversing_an_announced_capture_is_announced_too() -> None:
    payment = pending()
    payment.apply_answer(answer("captured"), LATER)
    assert payment.request_void(LATER) is True
    (event,) = payment.apply_answer(answer("voided"), LATER)
    assert (payment.status, event.status) == (PaymentStatus.VOIDED, "voided")


def test_refund_is_refunding_until_confirmed_then_announced() -> None:
    payment = pending()
    payment.apply_answer(answer("captured"), LATER)
    assert payment.request_refund(LATER) is True
    assert (payment.status, payment.open_call()) == (PaymentStatus.REFUNDING, ProviderCall.REFUND)
    assert payment.apply_answer(answer("captured"), LATER) == []  # not yet
    (event,) = payment.apply_answer(answer("refunded"), LATER)
    assert (payment.status, event.status) == (PaymentStatus.REFUNDED, "refunded")
    assert payment.request_refund(LATER) is False  # idempotent


def test_refunding_a_charge_of_unknown_outcome_voids_it() -> None:
    payment = pending()
    assert payment.request_refund(LATER) is True
    assert (payment.status, payment.open_call()) == (PaymentStatus.VOIDING, ProviderCall.VOID)


def test_retries_back_off_and_an_answer_clears_them() -> None:
    payment = pending()
    payment.schedule_retry(LATER, "timeout", 2.0)
    payment.schedule_retry(LATER, "timeout again", 4.0)
    assert (payment.attempts, payment.last_error) == (2, "timeout again")
    assert payment.next_attempt_at == LATER + timedelta(seconds=4)
    payment.apply_answer(answer("captured"), LATER)
    assert (payment.attempts, payment.next_attempt_at, payment.last_error) == (0, None, None)


def test_a_second_charge_answers_the_first_and_asks_again_only_while_pending() -> None:
    payment = pending()
    again, call = start_charge(request(), payment, "pay_2", LATER)
    assert (again is payment, call) == (True, True)  # unknown outcome: ask under the same key
    payment.apply_answer(answer("captured"), LATER)
    again, call = start_charge(request(), payment, "pay_3", LATER)
    assert (again.id, call) == ("pay_1", False)


def test_the_same_order_with_other_details_is_a_conflict() -> None:
    payment = pending()
    with pytest.raises(DomainError) as caught:
        start_charge(request(amount=1), payment, "pay_2", LATER)
    assert (caught.value.code, caught.value.reason) == (ErrorCode.CONFLICT, "idempotency_mismatch")


def test_a_tombstone_fences_any_later_charge() -> None:
    tombstone = void_tombstone("ord_1", "pay_t", NOW)
    assert tombstone.status is PaymentStatus.VOIDED
    late, call = start_charge(request(amount=777), tombstone, "pay_2", LATER)
    assert (late.id, late.status, call) == ("pay_t", PaymentStatus.VOIDED, False)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"order_id": ""}, "order_id"),
        ({"amount_minor": 0}, "amount_minor"),
        ({"amount_minor": True}, "amount_minor"),
        ({"amount_minor": 10**16}, "amount_minor"),
        ({"currency": "usd"}, "currency"),
        ({"token": ""}, "payment_token"),
    ],
)
def test_bad_charges_name_the_field(changes: dict[str, object], field: str) -> None:
    values: dict[str, object] = {
        "order_id": "o",
        "amount_minor": 1,
        "currency": "USD",
        "token": "tok_visa",
        **changes,
    }
    with pytest.raises(DomainError) as caught:
        start_charge(ChargeRequest(**values), None, "pay_1", NOW)  # type: ignore[arg-type]
    assert caught.value.code is ErrorCode.INVALID_ARGUMENT
    assert field in {f.field for f in caught.value.fields}


def test_an_unknown_token_is_a_400_naming_payment_token() -> None:
    error = unknown_token()
    assert (error.code, [f.field for f in error.fields]) == (
        ErrorCode.INVALID_ARGUMENT,
        ["payment_token"],
    )


class Provider:
    """A tiny model of the provider's books for one key (what `emporium.sandbox` does)."""

    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self.status: str | None = None  # None: never received
        self.net = 0

    def charge(self) -> ProviderAnswer:
        if self.status is None:
            self.status = {"approve": "captured", "decline": "declined", "hang": "processing"}[
                self.behaviour
            ]
            self.net += 1 if self.status == "captured" else 0
        return answer(self.status)

    def complete(self) -> None:
        if self.status == "processing":
            self.status, self.net = "captured", self.net + 1

    def void(self) -> ProviderAnswer:
        if self.status in (None, "processing"):
            self.status = "voided"
        elif self.status == "captured":
            self.status, self.net = "voided", self.net - 1
        return answer(self.status)

    def refund(self) -> ProviderAnswer:
        if self.status == "captured":
            self.status, self.net = "refunded", self.net - 1
        return answer(self.status or "voided")


@pytest.mark.parametrize("seed", range(300))
def test_random_interleavings_never_claim_what_the_provider_did_not_do(seed: int) -> None:
    """Intents, provider calls, lost and stale answers in random order; then the reconciler's
    way (send the open call until confirmed). Invariants: CAPTURED/VOIDED/REFUNDED only
    follow the provider, at most one "captured" event, a give-back event only after a
    captured one, and once settled our status agrees with the provider's books."""
    rng = random.Random(seed)
    provider = Provider(rng.choice(["approve", "decline", "hang"]))
    payment = pending()
    snapshots: list[ProviderAnswer] = []
    events: list[str] = []
    for _ in range(rng.randrange(1, 12)):
        move = rng.random()
        if move < 0.2:
            payment.request_void(LATER)
        elif move < 0.3:
            payment.request_refund(LATER)
        elif move < 0.4:
            provider.complete()
        elif move < 0.6 and snapshots:  # a late (possibly stale) answer arrives
            events += [e.status for e in payment.apply_answer(snapshots.pop(0), LATER)]
        else:
            call = payment.open_call()
            if call is None:
                continue
            got = {
                ProviderCall.RESOLVE: provider.charge,
                ProviderCall.VOID: provider.void,
                ProviderCall.REFUND: provider.refund,
            }[call]()
            if rng.random() < 0.3:
                snapshots.append(got)  # the answer is lost for now, arrives later
            else:
                events += [e.status for e in payment.apply_answer(got, LATER)]
    for _ in range(10):  # the reconciler: send the open call until nothing is open
        provider.complete()  # time passes: a hung capture completes
        call = payment.open_call()
        if call is None:
            break
        fn = {
            ProviderCall.RESOLVE: provider.charge,
            ProviderCall.VOID: provider.void,
            ProviderCall.REFUND: provider.refund,
        }[call]
        events += [e.status for e in payment.apply_answer(fn(), LATER)]
    assert payment.open_call() is None
    assert payment.status in FINAL_STATES | {PaymentStatus.CAPTURED}
    expected_net = 1 if payment.status is PaymentStatus.CAPTURED else 0
    assert provider.net == expected_net, (payment.status, provider.status)
    assert events.count("captured") <= 1
    if "refunded" in events or "voided" in events:
        assert events.index("captured") < len(events) - 1
