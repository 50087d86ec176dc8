"""order-service's outgoing calls: product (prices), inventory (stock) and payment (money).

An adapter: every call goes through `create_channel` (deadline, retry of the idempotent
methods, circuit breaker) and acts as `Caller.system("order")`. Saga commands are sent here
and their answers turned into the saga's replies. The rule is "done only when it is done":

- forward steps: success -> `StepSucceeded`; a definite business "no" with nothing done
  (out of stock, reservation closed, a declined card) -> `StepRefused`, with the error kept so
  PlaceOrder can answer it (409 out_of_stock). Anything else (deadline, unavailable, an open
  breaker, and also UNAUTHENTICATED / PERMISSION_DENIED / UNIMPLEMENTED, which a deploy can
  cause) -> `StepFailed`: the outcome is unknown, the saga retries, then compensates. A
  Charge is refused only by an answer that says so (DECLINED, or VOIDED/REFUNDED: nothing
  is held); an error never counts as a decline.
- compensations: `StepSucceeded` only when the answer says nothing is held any more (payment
  VOIDED / DECLINED / REFUNDED, the reservation released); everything else, errors included,
  is `StepFailed`, so the saga retries and finally parks: never "nothing to undo" by guess.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import grpc

from emporium.chassis.errors import DomainError
from emporium.chassis.rpc.client import create_channel, domain_error_from_rpc
from emporium.chassis.rpc.identity import Caller, acting_as
from emporium.contracts.rpc.inventory.v1 import inventory_pb2, inventory_pb2_grpc
from emporium.contracts.rpc.payment.v1 import payment_pb2, payment_pb2_grpc
from emporium.contracts.rpc.product.v1 import product_pb2, product_pb2_grpc
from emporium.services.order.domain import CatalogEntry
from emporium.services.order.saga import (
    Charge,
    CommitStock,
    RefundPayment,
    ReleaseStock,
    RemoteCommand,
    Reply,
    ReserveStock,
    StepFailed,
    StepRefused,
    StepSucceeded,
    VoidPayment,
)

SERVICE: Final = "order"
SYSTEM: Final = Caller.system(SERVICE)
DEFAULT_TIMEOUT_SECONDS: Final = 2.0
DEFAULT_CHARGE_TIMEOUT_SECONDS: Final = 2.0
BREAKER_RESET_SECONDS: Final = 5.0  # an open breaker lets a probe through after this long

PRODUCT_IDEMPOTENT: Final = {"/emporium.product.v1.ProductService/GetProducts"}
INVENTORY_IDEMPOTENT: Final = {
    "/emporium.inventory.v1.InventoryService/ReserveStock",
    "/emporium.inventory.v1.InventoryService/ReleaseStock",
    "/emporium.inventory.v1.InventoryService/CommitStock",
}
PAYMENT_IDEMPOTENT: Final = {
    f"/emporium.payment.v1.PaymentService/{m}"
    for m in ("Charge", "Void", "Refund", "GetPayment", "CheckPaymentToken")
}
# The gRPC codes of a definite business refusal of a forward step: the other side looked at
# the request and did nothing (out of stock, reservation closed, unknown sku).
BUSINESS_REFUSALS: Final = frozenset(
    {
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.OUT_OF_RANGE,
    }
)
_P = payment_pb2
# Charge answers that say nothing is held for the order (a decline, a fenced or reversed one).
_CHARGE_REFUSALS: Final = {
    _P.PAYMENT_STATUS_DECLINED: "card_declined",
    _P.PAYMENT_STATUS_VOIDED: "voided",
    _P.PAYMENT_STATUS_REFUNDED: "refunded",
}
# A compensation of the payment is done when nothing is held any more.
_NOTHING_HELD: Final = frozenset(
    {_P.PAYMENT_STATUS_VOIDED, _P.PAYMENT_STATUS_DECLINED, _P.PAYMENT_STATUS_REFUNDED}
)


@dataclass(frozen=True)
class Targets:
    product: str
    inventory: str
    payment: str


@dataclass(frozen=True)
class Outcome:
    """A saga reply plus, for a refusal, the error the other service gave."""

    reply: Reply
    error: DomainError | None = None
    breaker_open: bool = False  # refused by our own breaker: nothing reached the other side


class RemoteServices:
    """Channels to the three services order-service calls; closed at shutdown."""

    def __init__(
        self,
        targets: Targets,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        charge_timeout: float = DEFAULT_CHARGE_TIMEOUT_SECONDS,
    ) -> None:
        self.charge_timeout = charge_timeout
        self._channels = [
            create_channel(
                targets.product,
                service=SERVICE,
                default_timeout=timeout,
                idempotent=PRODUCT_IDEMPOTENT,
                reset_timeout=BREAKER_RESET_SECONDS,
            ),
            create_channel(
                targets.inventory,
                service=SERVICE,
                default_timeout=timeout,
                idempotent=INVENTORY_IDEMPOTENT,
                reset_timeout=BREAKER_RESET_SECONDS,
            ),
            create_channel(
                targets.payment,
                service=SERVICE,
                default_timeout=timeout,
                idempotent=PAYMENT_IDEMPOTENT,
                reset_timeout=BREAKER_RESET_SECONDS,
            ),
        ]
        self.product = product_pb2_grpc.ProductServiceStub(self._channels[0])
        self.inventory = inventory_pb2_grpc.InventoryServiceStub(self._channels[1])
        self.payment = payment_pb2_grpc.PaymentServiceStub(self._channels[2])

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()

    async def catalog(self, product_ids: Sequence[str]) -> dict[str, CatalogEntry]:
        """Authoritative prices and names; unknown or deleted products are simply absent."""
        request = product_pb2.GetProductsRequest(ids=list(product_ids))
        with acting_as(SYSTEM):
            answer = await _call(self.product.GetProducts(request))
        return {
            p.id: CatalogEntry(p.id, p.sku, p.name, int(p.price_minor), p.currency)
            for p in answer.products
        }

    async def check_token(self, token: str) -> None:
        """INVALID_ARGUMENT naming `payment_token` for a token the provider does not know."""
        request = payment_pb2.CheckPaymentTokenRequest(payment_token=token)
        with acting_as(SYSTEM):
            await _call(self.payment.CheckPaymentToken(request))

    async def send(self, command: RemoteCommand) -> Outcome:
        """Perform one saga step and translate its answer into the reply the saga expects."""
        step = command.step_id
        with acting_as(SYSTEM):
            try:
                answer = await self._request(command)
            except grpc.aio.AioRpcError as exc:
                error = domain_error_from_rpc(exc)
                reason = error.reason or exc.code().name.lower()
                refusable = isinstance(command, ReserveStock | CommitStock)
                if refusable and exc.code() in BUSINESS_REFUSALS:
                    return Outcome(StepRefused(step, error.reason or "refused"), error)
                return Outcome(StepFailed(step, reason))
            except DomainError as exc:  # the circuit breaker is open: nothing was sent
                return Outcome(StepFailed(step, exc.reason or "unavailable"), breaker_open=True)
        if isinstance(command, Charge):
            return _charge_outcome(step, answer)
        if isinstance(command, VoidPayment | RefundPayment):
            return _give_back_outcome(step, answer)
        return Outcome(StepSucceeded(step))

    async def _request(self, command: RemoteCommand) -> Any:
        match command:
            case ReserveStock():
                lines = [inventory_pb2.ReservationLine(sku=s, quantity=q) for s, q in command.lines]
                return await self.inventory.ReserveStock(
                    inventory_pb2.ReserveStockRequest(order_id=command.order_id, lines=lines)
                )
            case CommitStock():
                return await self.inventory.CommitStock(
                    inventory_pb2.CommitStockRequest(order_id=command.order_id)
                )
            case ReleaseStock():
                return await self.inventory.ReleaseStock(
                    inventory_pb2.ReleaseStockRequest(order_id=command.order_id, reason="saga")
                )
            case Charge():
                return await self.payment.Charge(
                    payment_pb2.ChargeRequest(
                        order_id=command.order_id,
                        user_id=command.user_id,
                        amount_minor=command.amount_minor,
                        currency=command.currency,
                        payment_token=command.payment_token,
                    ),
                    timeout=self.charge_timeout,
                )
            case VoidPayment():
                return await self.payment.Void(
                    payment_pb2.VoidRequest(
                        order_id=command.order_id,
                        reason="charge_outcome_unknown",
                        user_id=command.user_id,
                        amount_minor=command.amount_minor,
                        currency=command.currency,
                        payment_token=command.payment_token,
                    )
                )
            case RefundPayment():
                return await self.payment.Refund(
                    payment_pb2.RefundRequest(order_id=command.order_id, reason="cancelled")
                )
        raise AssertionError(f"not a remote command: {command!r}")


async def _call(call: Any) -> Any:
    """Await a call, turning a gRPC failure into the DomainError the other side raised."""
    try:
        return await call
    except grpc.aio.AioRpcError as exc:
        raise domain_error_from_rpc(exc) from exc


def _charge_outcome(step: str, payment: Any) -> Outcome:
    if payment.status == payment_pb2.PAYMENT_STATUS_SUCCEEDED:
        return Outcome(StepSucceeded(step))
    if payment.status in _CHARGE_REFUSALS:
        return Outcome(StepRefused(step, payment.reason or _CHARGE_REFUSALS[payment.status]))
    return Outcome(StepFailed(step, "payment_pending"))  # still unknown: retry, then void


def _give_back_outcome(step: str, payment: Any) -> Outcome:
    """Void/Refund: done only when payment-service says nothing is held (it answers VOIDED
    or REFUNDED only after the provider confirmed); VOIDING/REFUNDING: not yet."""
    if payment.status in _NOTHING_HELD:
        return Outcome(StepSucceeded(step))
    name = payment_pb2.PaymentStatus.Name(payment.status).removeprefix("PAYMENT_STATUS_")
    return Outcome(StepFailed(step, f"payment_{name.lower()}"))
