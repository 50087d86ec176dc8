"""payment-service over a real gRPC server on migrated SQLite and PostgreSQL, talking HTTP to
the real sandbox provider: a charge per order (idempotent: captured once, by the provider's
ledger), declines with their reason, unknown tokens named, `tok_timeout` past the caller's
deadline then voided (the capture never happens, a late Charge is fenced), late captures the
reconciler finds, refunds and voids that the provider fails and the reconciler retries until
confirmed (never REFUNDED/VOIDED before that), answers lost after the provider acted,
`order.completed` in the outbox with the user id, and who may move money or read a payment."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from emporium.chassis.db import Database
from emporium.chassis.errors import DomainError, ErrorCode
from emporium.chassis.migrations import migrate
from emporium.chassis.rpc.client import create_channel, domain_error_from_rpc
from emporium.chassis.rpc.identity import Caller
from emporium.chassis.rpc.server import create_server
from emporium.contracts.rpc.payment.v1 import payment_pb2, payment_pb2_grpc
from emporium.services.payment import store
from emporium.services.payment.handlers import Payments
from emporium.services.payment.provider import HttpPaymentProvider
from emporium.services.payment.reconciler import Reconciler
from emporium.services.payment.rpc import PaymentServicer
from tests.backends import backend_url
from tests.sandbox_support import Sandbox, running_sandbox

ORDER_SERVICE = Caller.system("order")
SHOPPER = Caller("u-ada", frozenset({"user"}))
STRANGER = Caller("u-mallory", frozenset({"user"}))


async def fresh_database_url(service: str, kind: str, tmp_path: Path) -> AsyncIterator[str]:
    """A migrated database: a SQLite file, or a new PostgreSQL database dropped after."""
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path}/{service}.sqlite3"
        await migrate(service, url)
        yield url
        return
    admin = make_url(backend_url("postgresql"))
    name = f"emporium_{service}_{uuid.uuid4().hex}"
    dsn = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
        url = admin.set(database=name).render_as_string(hide_password=False)
        await migrate(service, url)
        yield url
    finally:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


async def rpc_error(call: Awaitable[Any]) -> DomainError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return domain_error_from_rpc(caught.value)


HANG_SECONDS = 1.5


@dataclass
class PaymentWorld:
    db: Database
    sandbox: Sandbox
    payments: Payments
    target: str
    channels: list[Any]

    def reconciler(self) -> Reconciler:
        """The real reconciler, with no grace for PENDING charges (tests drive the clock)."""
        return Reconciler(self.payments, pending_grace=0.0)

    async def reconcile_until_quiet(self, passes: int = 40) -> None:
        """Run reconciliation passes (retry delays elapse in between) until no intent is open."""
        for _ in range(passes):
            async with self.db.session() as session:
                open_counts = await store.open_intent_counts(session)
            if not any(open_counts.values()):
                return
            await self.db_make_due()
            await self.reconciler().reconcile_once()
        raise AssertionError(f"intents still open: {open_counts}")

    async def db_make_due(self) -> None:
        """Skip the backoff wait: every open intent is due now."""
        async with self.db.unit_of_work() as uow:
            await uow.session.execute(store.payments.update().values(next_attempt_at=None))
            await uow.commit()

    async def stored(self, oid: str) -> store.StoredPayment:
        async with self.db.session() as session:
            found = await store.payment_for_order(session, oid)
        assert found is not None
        return found

    def stub(self, caller: Caller = ORDER_SERVICE) -> Any:
        channel = create_channel(self.target, service="test", caller=caller)
        self.channels.append(channel)
        return payment_pb2_grpc.PaymentServiceStub(channel)

    async def charge(self, order_id: str, token: str = "tok_visa", **kw: Any) -> Any:
        request = payment_pb2.ChargeRequest(
            order_id=order_id,
            user_id="u-ada",
            amount_minor=kw.pop("amount_minor", 4998),
            currency="USD",
            payment_token=token,
        )
        return await self.stub(kw.pop("caller", ORDER_SERVICE)).Charge(request, **kw)

    async def completed_events(self) -> list[dict[str, Any]]:
        async with self.db.session() as session:
            rows = (
                await session.execute(
                    select(store.outbox.c.aggregateid, store.outbox.c.payload).where(
                        store.outbox.c.topic == "order.completed"
                    )
                )
            ).all()
        return [{"key": row[0], **json.loads(row[1])} for row in rows]


async def serve_payment(payments: Payments) -> tuple[Any, str]:
    server = create_server("payment")
    payment_pb2_grpc.add_PaymentServiceServicer_to_server(PaymentServicer(payments), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


@pytest.fixture(params=["sqlite", "postgresql"], ids=["sqlite", "postgresql"])
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[PaymentWorld]:
    urls = fresh_database_url("payment", request.param, tmp_path)
    db = Database(await anext(urls))
    async with running_sandbox(tmp_path, hang_seconds=HANG_SECONDS) as sandbox:
        provider = HttpPaymentProvider(sandbox.url, timeout=2.0)
        payments = Payments(db, provider)
        server, target = await serve_payment(payments)
        world = PaymentWorld(db, sandbox, payments, target, [])
        try:
            yield world
        finally:
            for channel in world.channels:
                await channel.close()
            await server.stop(None)
            await provider.close()
            await db.close()
            await urls.aclose()


def order_id() -> str:
    return f"ord_{uuid.uuid4().hex[:12]}"


async def test_charge_captures_once_and_records_order_completed(world: PaymentWorld) -> None:
    oid = order_id()
    first = await world.charge(oid)
    assert first.status == payment_pb2.PAYMENT_STATUS_SUCCEEDED
    assert (first.order_id, first.user_id, first.amount_minor) == (oid, "u-ada", 4998)

    again = await world.charge(oid)  # a retry: the same payment, captured once
    assert (again.id, again.status) == (first.id, payment_pb2.PAYMENT_STATUS_SUCCEEDED)
    entry = world.sandbox.entry(first.id)  # the provider is keyed by our payment id
    assert entry is not None
    assert (entry["captures"], entry["net_minor"]) == (1, 4998)
    assert len(world.sandbox.entries()) == 1

    events = await world.completed_events()
    assert len(events) == 1
    event = events[0]
    assert (event["key"], event["order_id"], event["payment_id"]) == (oid, oid, first.id)
    assert (event["status"], event["amount"], event["user_id"]) == ("captured", "49.98", "u-ada")


async def test_a_different_charge_for_the_same_order_is_a_conflict(world: PaymentWorld) -> None:
    oid = order_id()
    await world.charge(oid)
    err = await rpc_error(world.charge(oid, amount_minor=1))
    assert (err.code, err.reason) == (ErrorCode.CONFLICT, "idempotency_mismatch")
    assert [e["captures"] for e in world.sandbox.entries()] == [1]


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("tok_chargeDeclined", "card_declined"),
        ("tok_chargeDeclinedInsufficientFunds", "insufficient_funds"),
    ],
)
async def test_declines_are_answers_with_their_reason(
    world: PaymentWorld, token: str, reason: str
) -> None:
    oid = order_id()
    payment = await world.charge(oid, token)
    assert (payment.status, payment.reason) == (payment_pb2.PAYMENT_STATUS_DECLINED, reason)
    (event,) = await world.completed_events()
    assert (event["order_id"], event["status"]) == (oid, "declined")
    assert world.sandbox.entry(payment.id)["net_minor"] == 0  # type: ignore[index]


async def test_unknown_tokens_are_named_and_never_captured(world: PaymentWorld) -> None:
    check = await rpc_error(
        world.stub(SHOPPER).CheckPaymentToken(
            payment_pb2.CheckPaymentTokenRequest(payment_token="4242424242424242")
        )
    )
    assert check.code is ErrorCode.INVALID_ARGUMENT
    assert [f.field for f in check.fields] == ["payment_token"]
    ok = await world.stub(SHOPPER).CheckPaymentToken(
        payment_pb2.CheckPaymentTokenRequest(payment_token="tok_visa")
    )
    assert ok.token_kind == "tok_visa"
    # Past the check (the saga always checks first), the provider refuses it: a decline.
    refused = await world.charge(order_id(), "tok_nonsense")
    assert (refused.status, refused.reason) == (
        payment_pb2.PAYMENT_STATUS_DECLINED,
        "unknown_token",
    )
    assert world.sandbox.entries() == []


async def test_timeout_then_void_cancels_the_capture_and_fences_the_charge(
    world: PaymentWorld,
) -> None:
    oid = order_id()
    answer = await world.charge(oid, "tok_timeout", timeout=0.5)
    assert answer.status == payment_pb2.PAYMENT_STATUS_PENDING  # answered within the deadline

    pending = await world.stub().GetPayment(payment_pb2.GetPaymentRequest(order_id=oid))
    assert pending.status == payment_pb2.PAYMENT_STATUS_PENDING  # outcome unknown
    assert world.sandbox.entry(pending.id)["status"] == "processing"  # type: ignore[index]
    voided = await world.stub().Void(payment_pb2.VoidRequest(order_id=oid, reason="timeout"))
    assert voided.status == payment_pb2.PAYMENT_STATUS_VOIDED

    await asyncio.sleep(HANG_SECONDS + 0.5)  # the hang is over: the capture never happens
    world.sandbox.ledger.complete_due()
    entry = world.sandbox.entry(pending.id)
    assert entry is not None
    assert (entry["status"], entry["captures"], entry["net_minor"]) == ("voided", 0, 0)
    retry = await world.charge(oid, "tok_timeout")  # the saga's late retry: fenced
    assert retry.status == payment_pb2.PAYMENT_STATUS_VOIDED
    assert await world.completed_events() == []


async def test_a_capture_after_the_caller_gave_up_is_found_by_the_reconciler(
    world: PaymentWorld,
) -> None:
    oid = order_id()
    answer = await world.charge(oid, "tok_timeout", timeout=0.5)
    assert answer.status == payment_pb2.PAYMENT_STATUS_PENDING
    assert (await world.stored(oid)).payment.status.value == "PENDING"
    await world.reconciler().reconcile_once()  # still processing at the provider
    assert (await world.stored(oid)).payment.status.value == "PENDING"

    await asyncio.sleep(HANG_SECONDS + 0.3)
    world.sandbox.ledger.complete_due()  # the provider captured, nobody was listening
    await world.reconcile_until_quiet()
    stored = await world.stored(oid)
    assert (stored.payment.status.value, stored.payment.announced) == ("CAPTURED", True)
    (event,) = await world.completed_events()
    assert (event["order_id"], event["status"]) == (oid, "captured")
    assert world.sandbox.entry(stored.payment.id)["captures"] == 1  # type: ignore[index]


async def test_an_answer_lost_after_the_capture_is_learnt_by_the_retry(
    world: PaymentWorld,
) -> None:
    oid = order_id()
    await world.sandbox.fault("charge", "lost", 1)
    first = await world.charge(oid)
    assert first.status == payment_pb2.PAYMENT_STATUS_PENDING  # captured, answer lost
    assert world.sandbox.entry(first.id)["captures"] == 1  # type: ignore[index]
    again = await world.charge(oid)  # the saga retries: same key, the first outcome
    assert again.status == payment_pb2.PAYMENT_STATUS_SUCCEEDED
    assert world.sandbox.entry(first.id)["captures"] == 1  # type: ignore[index]
    assert [e["status"] for e in await world.completed_events()] == ["captured"]


async def test_a_charge_the_provider_never_received_is_sent_again_by_the_reconciler(
    world: PaymentWorld,
) -> None:
    oid = order_id()
    await world.sandbox.fault("charge", "fail", 1)
    first = await world.charge(oid)
    assert first.status == payment_pb2.PAYMENT_STATUS_PENDING
    assert world.sandbox.entries() == []  # nothing reached the books
    await world.reconcile_until_quiet()
    assert (await world.stored(oid)).payment.status.value == "CAPTURED"
    assert world.sandbox.entry(first.id)["captures"] == 1  # type: ignore[index]


async def test_void_before_the_charge_leaves_a_tombstone(world: PaymentWorld) -> None:
    oid = order_id()
    tombstone = await world.stub().Void(
        payment_pb2.VoidRequest(order_id=oid, user_id="u-ada", payment_token="tok_visa")
    )
    assert tombstone.status == payment_pb2.PAYMENT_STATUS_VOIDED
    late = await world.charge(oid)
    assert (late.id, late.status) == (tombstone.id, payment_pb2.PAYMENT_STATUS_VOIDED)
    assert world.sandbox.entries() == []  # never sent to the provider


async def test_refund_is_refunded_only_once_the_provider_confirmed(world: PaymentWorld) -> None:
    oid = order_id()
    paid = await world.charge(oid)
    await world.sandbox.fault("refund", "fail", 2)
    first = await world.stub().Refund(payment_pb2.RefundRequest(order_id=oid))
    assert first.status == payment_pb2.PAYMENT_STATUS_REFUNDING  # recorded, not confirmed
    assert world.sandbox.entry(paid.id)["refunded_minor"] == 0  # type: ignore[index]
    stored = await world.stored(oid)
    assert (stored.payment.attempts, stored.payment.last_error) == (1, stored.payment.last_error)
    assert stored.payment.next_attempt_at is not None

    await world.reconcile_until_quiet()  # the second try fails too, the third gets through
    refunded = await world.stub().Refund(payment_pb2.RefundRequest(order_id=oid))
    assert (refunded.status, refunded.refunded_minor) == (
        payment_pb2.PAYMENT_STATUS_REFUNDED,
        4998,
    )
    entry = world.sandbox.entry(paid.id)
    assert entry is not None
    assert (entry["status"], entry["refunded_minor"], entry["net_minor"]) == ("refunded", 4998, 0)
    assert [e["status"] for e in await world.completed_events()] == ["captured", "refunded"]
    missing = await rpc_error(world.stub().Refund(payment_pb2.RefundRequest(order_id=order_id())))
    assert missing.code is ErrorCode.NOT_FOUND


async def test_a_failed_void_of_a_capture_stays_voiding_until_reversed(
    world: PaymentWorld,
) -> None:
    oid = order_id()
    paid = await world.charge(oid)
    await world.sandbox.fault("void", "lost", 1)  # reversed at the provider, answer lost
    first = await world.stub().Void(payment_pb2.VoidRequest(order_id=oid))
    assert first.status == payment_pb2.PAYMENT_STATUS_VOIDING
    await world.reconcile_until_quiet()
    again = await world.stub().Void(payment_pb2.VoidRequest(order_id=oid))
    assert again.status == payment_pb2.PAYMENT_STATUS_VOIDED
    entry = world.sandbox.entry(paid.id)
    assert entry is not None
    assert (entry["captures"], entry["reversed_minor"], entry["net_minor"]) == (1, 4998, 0)
    assert [e["status"] for e in await world.completed_events()] == ["captured", "voided"]


async def test_only_the_saga_moves_money_and_owners_read(world: PaymentWorld) -> None:
    oid = order_id()
    denied = await rpc_error(world.charge(oid, caller=SHOPPER))
    assert denied.code is ErrorCode.PERMISSION_DENIED
    anonymous = await rpc_error(world.charge(oid, caller=Caller.anonymous()))
    assert anonymous.code is ErrorCode.UNAUTHENTICATED
    assert world.sandbox.entries() == []

    await world.charge(oid)
    mine = await world.stub(SHOPPER).GetPayment(payment_pb2.GetPaymentRequest(order_id=oid))
    assert mine.order_id == oid
    hidden = await rpc_error(
        world.stub(STRANGER).GetPayment(payment_pb2.GetPaymentRequest(order_id=oid))
    )
    assert hidden.code is ErrorCode.NOT_FOUND
    refund = await rpc_error(world.stub(SHOPPER).Refund(payment_pb2.RefundRequest(order_id=oid)))
    assert refund.code is ErrorCode.PERMISSION_DENIED


async def test_bad_fields_are_named(world: PaymentWorld) -> None:
    err = await rpc_error(
        world.stub().Charge(
            payment_pb2.ChargeRequest(order_id="", user_id="", amount_minor=0, currency="usd")
        )
    )
    assert err.code is ErrorCode.INVALID_ARGUMENT
    assert {f.field for f in err.fields} >= {"order_id", "user_id"}
    assert world.sandbox.entries() == []
