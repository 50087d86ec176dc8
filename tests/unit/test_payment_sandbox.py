"""The sandbox payment provider's books (`emporium.sandbox.payments.ledger`) on a real SQLite
file, with a controllable clock, and its HTTP answers through the ASGI app."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from emporium.sandbox.payments.app import create_app
from emporium.sandbox.payments.ledger import (
    TOKENS,
    FaultMode,
    Ledger,
    Operation,
    SandboxError,
    Status,
)
from emporium.services.payment.provider import HttpPaymentProvider


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ledger(tmp_path: Path, clock: Clock) -> Ledger:
    return Ledger(tmp_path / "books.sqlite3", hang_seconds=8.0, clock=clock)


def test_the_documented_tokens_and_only_those() -> None:
    assert set(TOKENS) == {
        "tok_visa",
        "tok_chargeDeclined",
        "tok_chargeDeclinedInsufficientFunds",
        "tok_timeout",
    }


def test_a_key_captures_once_and_other_details_are_refused(ledger: Ledger) -> None:
    _, created = ledger.charge("pay_1", 500, "USD", "tok_visa")
    again, created_again = ledger.charge("pay_1", 500, "USD", "tok_visa")
    assert (created, created_again) == (True, False)
    assert (again.status, again.captures, again.net_minor) == (Status.CAPTURED, 1, 500)
    with pytest.raises(SandboxError) as caught:
        ledger.charge("pay_1", 501, "USD", "tok_visa")
    assert (caught.value.status, caught.value.code) == (409, "idempotency_mismatch")
    with pytest.raises(SandboxError):
        ledger.charge("pay_2", 500, "USD", "tok_unknown")
    assert [e.id for e in ledger.entries()] == ["pay_1"]


def test_declines_take_nothing(ledger: Ledger) -> None:
    entry, _ = ledger.charge("pay_1", 500, "USD", "tok_chargeDeclinedInsufficientFunds")
    assert (entry.status, entry.reason, entry.net_minor) == (
        Status.DECLINED,
        "insufficient_funds",
        0,
    )
    assert ledger.void("pay_1").status is Status.DECLINED  # nothing to undo
    assert ledger.refund("pay_1").status is Status.DECLINED


def test_a_hung_charge_captures_later_unless_voided_first(ledger: Ledger, clock: Clock) -> None:
    late, _ = ledger.charge("pay_late", 500, "USD", "tok_timeout")
    cancelled, _ = ledger.charge("pay_cancelled", 500, "USD", "tok_timeout")
    assert late.status is cancelled.status is Status.PROCESSING
    assert ledger.void("pay_cancelled").status is Status.VOIDED
    clock.now += 7.9
    assert ledger.complete_due() == 0
    clock.now += 0.2
    assert ledger.complete_due() == 1
    captured = ledger.lookup("pay_late")
    voided = ledger.lookup("pay_cancelled")
    assert captured is not None
    assert voided is not None
    assert (captured.status, captured.captures, captured.net_minor) == (Status.CAPTURED, 1, 500)
    assert (voided.status, voided.captures, voided.net_minor) == (Status.VOIDED, 0, 0)


def test_void_reverses_a_capture_and_fences_an_unknown_key(ledger: Ledger) -> None:
    ledger.charge("pay_1", 500, "USD", "tok_visa")
    reversed_ = ledger.void("pay_1")
    assert (reversed_.status, reversed_.reversed_minor, reversed_.net_minor) == (
        Status.VOIDED,
        500,
        0,
    )
    assert ledger.void("pay_1").reversed_minor == 500  # idempotent
    fence = ledger.void("pay_2")
    assert fence.status is Status.VOIDED
    late, created = ledger.charge("pay_2", 700, "USD", "tok_visa")
    assert (late.status, late.captures, created) == (Status.VOIDED, 0, False)


def test_refund_gives_a_capture_back_once(ledger: Ledger) -> None:
    ledger.charge("pay_1", 500, "USD", "tok_visa")
    assert ledger.refund("pay_1").refunded_minor == 500
    again = ledger.refund("pay_1")
    assert (again.status, again.refunded_minor, again.net_minor) == (Status.REFUNDED, 500, 0)
    with pytest.raises(SandboxError) as unknown:
        ledger.refund("pay_x")
    assert unknown.value.status == 404


def test_faults_are_used_up_one_call_at_a_time(ledger: Ledger) -> None:
    ledger.set_fault(Operation.REFUND, FaultMode.LOST, 2)
    assert ledger.take_fault(Operation.REFUND) is FaultMode.LOST
    assert ledger.take_fault(Operation.CHARGE) is None
    assert ledger.take_fault(Operation.REFUND) is FaultMode.LOST
    assert ledger.take_fault(Operation.REFUND) is None


def test_the_books_survive_a_restart(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "books.sqlite3"
    first = Ledger(path, clock=clock)
    first.charge("pay_1", 500, "USD", "tok_timeout")
    first.close()
    clock.now += 60
    second = Ledger(path, clock=clock)
    assert second.complete_due() == 1  # a capture begun before the restart completes
    entry = second.lookup("pay_1")
    assert entry is not None
    assert entry.status is Status.CAPTURED


async def test_http_faults_fail_before_or_after_the_operation(ledger: Ledger) -> None:
    transport = httpx.ASGITransport(app=create_app(ledger))
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
        body = {"amount_minor": 500, "currency": "USD", "token": "tok_visa"}
        await client.put("/v1/sandbox/faults/charge", json={"mode": "fail", "count": 1})
        failed = await client.post("/v1/payments", json=body, headers={"Idempotency-Key": "k1"})
        assert failed.status_code == 503
        assert ledger.lookup("k1") is None  # nothing was done
        await client.put("/v1/sandbox/faults/charge", json={"mode": "lost", "count": 1})
        lost = await client.post("/v1/payments", json=body, headers={"Idempotency-Key": "k1"})
        assert lost.status_code == 503
        done = await client.get("/v1/payments/k1")
        assert (done.status_code, done.json()["status"]) == (200, "captured")  # it happened
        missing = await client.post("/v1/payments", json=body)
        assert missing.status_code == 422  # the key is required
        books = (await client.get("/v1/sandbox/ledger")).json()["payments"]
        assert [(p["id"], p["captures"]) for p in books] == [("k1", 1)]
        assert (await client.get("/v1/tokens/tok_nope")).status_code == 404


async def test_a_token_fault_fails_the_token_check(ledger: Ledger) -> None:
    """`token`: the provider is down for the check order-service makes before each order."""
    transport = httpx.ASGITransport(app=create_app(ledger))
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
        await client.put("/v1/sandbox/faults/token", json={"mode": "fail", "count": 1})
        failed = await client.get("/v1/tokens/tok_visa")
        assert (failed.status_code, failed.json()["error"]) == (503, "injected_fault")
        assert (await client.get("/v1/tokens/tok_visa")).status_code == 200  # used up
        await client.put("/v1/sandbox/faults/token", json={"mode": "lost", "count": 1})
        assert (await client.get("/v1/tokens/tok_visa")).status_code == 503


@pytest.mark.parametrize(
    "token",
    ["tok_visa?x", "tok_visa/", "tok_visa#", "\x00tok", "tok\nvisa", "tökén", "../tok_visa"],
)
async def test_odd_tokens_are_simply_unknown_never_an_error(ledger: Ledger, token: str) -> None:
    """A token is put in a URL path: quoted, and never mistaken for a known one."""
    transport = httpx.ASGITransport(app=create_app(ledger))
    provider = HttpPaymentProvider("http://sandbox", transport=transport)
    try:
        assert await provider.token_known(token) is False
        assert await provider.token_known("tok_visa") is True
    finally:
        await provider.close()
