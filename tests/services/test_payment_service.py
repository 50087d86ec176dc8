"""payment-service over a real gRPC server on migrated SQLite and PostgreSQL: a charge per
order (idempotent: the provider is asked once), declines with their reason, unknown tokens
named, `tok_timeout` past the caller's deadline then voided (the late charge is fenced, never
a second one), refunds, `order.completed` in the outbox with the user id, and who may move
money or read a payment."""

from __future__ import annotations

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
from emporium.services.payment.provider import SandboxProvider
from emporium.services.payment.rpc import PaymentServicer
from tests.backends import backend_url

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


@dataclass
class PaymentWorld:
    db: Database
    provider: SandboxProvider
    target: str
    channels: list[Any]

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


async def serve_payment(db: Database, provider: SandboxProvider) -> tuple[Any, str]:
    server = create_server("payment")
    payment_pb2_grpc.add_PaymentServiceServicer_to_server(
        PaymentServicer(Payments(db, provider)), server
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


@pytest.fixture(params=["sqlite", "postgresql"], ids=["sqlite", "postgresql"])
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[PaymentWorld]:
    urls = fresh_database_url("payment", request.param, tmp_path)
    db = Database(await anext(urls))
    provider = SandboxProvider()
    server, target = await serve_payment(db, provider)
    world = PaymentWorld(db, provider, target, [])
    try:
        yield world
    finally:
        for channel in world.channels:
            await channel.close()
        await server.stop(None)
        await db.close()
        await urls.aclose()


def order_id() -> str:
    return f"ord_{uuid.uuid4().hex[:12]}"


async def test_charge_captures_once_and_records_order_completed(world: PaymentWorld) -> None:
    oid = order_id()
    first = await world.charge(oid)
    assert first.status == payment_pb2.PAYMENT_STATUS_SUCCEEDED
    assert (first.order_id, first.user_id, first.amount_minor) == (oid, "u-ada", 4998)

    again = await world.charge(oid)  # a retry: same payment, the provider is not asked again
    assert (again.id, again.status) == (first.id, payment_pb2.PAYMENT_STATUS_SUCCEEDED)
    assert world.provider.calls == [oid]

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
    assert world.provider.calls == [oid]


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


async def test_an_unknown_token_names_payment_token_and_writes_nothing(
    world: PaymentWorld,
) -> None:
    err = await rpc_error(world.charge(order_id(), "tok_nonsense"))
    assert err.code is ErrorCode.INVALID_ARGUMENT
    assert [f.field for f in err.fields] == ["payment_token"]
    check = await rpc_error(
        world.stub(SHOPPER).CheckPaymentToken(
            payment_pb2.CheckPaymentTokenRequest(payment_token="4242424242424242")
        )
    )
    assert [f.field for f in check.fields] == ["payment_token"]
    ok = await world.stub(SHOPPER).CheckPaymentToken(
        payment_pb2.CheckPaymentTokenRequest(payment_token="tok_visa")
    )
    assert ok.token_kind == "tok_visa"
    assert world.provider.calls == []
    assert await world.completed_events() == []


async def test_timeout_then_void_fences_the_charge_for_good(world: PaymentWorld) -> None:
    oid = order_id()
    err = await rpc_error(world.charge(oid, "tok_timeout", timeout=0.3))
    assert err.code is ErrorCode.DEADLINE_EXCEEDED

    pending = await world.stub().GetPayment(payment_pb2.GetPaymentRequest(order_id=oid))
    assert pending.status == payment_pb2.PAYMENT_STATUS_PENDING  # outcome unknown
    voided = await world.stub().Void(payment_pb2.VoidRequest(order_id=oid, reason="timeout"))
    assert voided.status == payment_pb2.PAYMENT_STATUS_VOIDED

    retry = await world.charge(oid, "tok_timeout")  # the saga's late retry: fenced
    assert retry.status == payment_pb2.PAYMENT_STATUS_VOIDED
    assert world.provider.calls == [oid]
    assert await world.completed_events() == []


async def test_void_before_the_charge_leaves_a_tombstone(world: PaymentWorld) -> None:
    oid = order_id()
    tombstone = await world.stub().Void(
        payment_pb2.VoidRequest(
            order_id=oid,
            user_id="u-ada",
            amount_minor=4998,
            currency="USD",
            payment_token="tok_visa",
        )
    )
    assert tombstone.status == payment_pb2.PAYMENT_STATUS_VOIDED
    late = await world.charge(oid)
    assert (late.id, late.status) == (tombstone.id, payment_pb2.PAYMENT_STATUS_VOIDED)
    assert world.provider.calls == []


async def test_refund_gives_a_capture_back_once(world: PaymentWorld) -> None:
    oid = order_id()
    await world.charge(oid)
    refunded = await world.stub().Refund(payment_pb2.RefundRequest(order_id=oid))
    assert (refunded.status, refunded.refunded_minor) == (
        payment_pb2.PAYMENT_STATUS_REFUNDED,
        4998,
    )
    again = await world.stub().Refund(payment_pb2.RefundRequest(order_id=oid))
    assert again.status == payment_pb2.PAYMENT_STATUS_REFUNDED
    assert world.provider.refunds == [oid]
    missing = await rpc_error(world.stub().Refund(payment_pb2.RefundRequest(order_id=order_id())))
    assert missing.code is ErrorCode.NOT_FOUND


async def test_only_the_saga_moves_money_and_owners_read(world: PaymentWorld) -> None:
    oid = order_id()
    denied = await rpc_error(world.charge(oid, caller=SHOPPER))
    assert denied.code is ErrorCode.PERMISSION_DENIED
    anonymous = await rpc_error(world.charge(oid, caller=Caller.anonymous()))
    assert anonymous.code is ErrorCode.UNAUTHENTICATED
    assert world.provider.calls == []

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
