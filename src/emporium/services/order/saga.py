"""The checkout saga as a pure state machine: it decides, the handler performs.

Forward steps: RESERVE_STOCK -> RECORD_ORDER (+ `order.created`) -> CHARGE -> COMMIT_STOCK ->
MARK_PAID. COMMIT_STOCK (reserved units become sold) is ours, not in the design's list: without
it a paid order's reservation would expire and its units be sold twice. Compensations run in
reverse: VOID or REFUND the payment if one may exist -> RELEASE the reservation -> CANCELLED.

How the handler drives it: every method returns a `Decision` whose commands come in two kinds.
`LocalCommand`s (record/update the order, emit an event through the outbox, raise an alert) are
executed inside the unit of work that saves the saga, so state and effects commit together.
`RemoteCommand`s (gRPC to inventory/payment, all idempotent by order id) are sent after that
commit; each carries a fresh `step_id`, which the saga stores as `awaiting`. The reply (or the
handler's own deadline/transport failure) comes back as `StepSucceeded`/`StepRefused`/
`StepFailed` with that step id; a reply for any other step id, or after the end, is stale and
ignored without touching the state or its `version` (optimistic locking: the handler saves with
`WHERE version = <loaded version>`).

Outcomes: every saga ends PAID or CANCELLED. A forward step that keeps failing turns into
compensation. A compensation counts as done only on `StepSucceeded` (the other side says
nothing is held any more); a refusal or a failure is retried, and one that keeps failing PARKS
the saga and raises an alert: an operator fixes the cause and calls `retry_parked` (or, having
settled it by hand, `operator_cancel`). Nothing is ever dropped.

The order row exists from the start (PENDING), written with the saga by PlaceOrder, so an
order that was answered always exists; `RecordOrder` marks the moment the stock is held and
the order becomes a placed order (`order.created` goes out with it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Final

from emporium.services.order.domain import (
    TOPIC_ORDER_CREATED,
    Order,
    sku_quantities,
)


class SagaState(StrEnum):
    RESERVING_STOCK = "RESERVING_STOCK"
    CHARGING = "CHARGING"
    COMMITTING_STOCK = "COMMITTING_STOCK"
    PAID = "PAID"
    VOIDING_PAYMENT = "VOIDING_PAYMENT"
    REFUNDING_PAYMENT = "REFUNDING_PAYMENT"
    RELEASING_STOCK = "RELEASING_STOCK"
    CANCELLED = "CANCELLED"
    PARKED = "PARKED"


FORWARD_STATES: Final = frozenset(
    {SagaState.RESERVING_STOCK, SagaState.CHARGING, SagaState.COMMITTING_STOCK}
)
COMPENSATING_STATES: Final = frozenset(
    {SagaState.VOIDING_PAYMENT, SagaState.REFUNDING_PAYMENT, SagaState.RELEASING_STOCK}
)
FINAL_STATES: Final = frozenset({SagaState.PAID, SagaState.CANCELLED})


class PaymentKnowledge(StrEnum):
    """What the saga knows about the money; decides which compensation is needed."""

    NONE = "NONE"  # no charge was ever sent
    UNKNOWN = "UNKNOWN"  # a charge was sent; it may or may not have been captured
    CAPTURED = "CAPTURED"
    DECLINED = "DECLINED"
    VOIDED = "VOIDED"
    REFUNDED = "REFUNDED"


class StockKnowledge(StrEnum):
    NONE = "NONE"  # nothing reserved (never asked, or refused)
    MAYBE = "MAYBE"  # a reserve/commit was sent without a definite answer
    HELD = "HELD"
    COMMITTED = "COMMITTED"
    RELEASED = "RELEASED"


@dataclass(frozen=True)
class RetryPolicy:
    """Attempts per step before giving up. Backoff timing is the handler's (it sees
    `attempt` on each command); the saga only counts.

    Committing the stock of a paid order is retried longer than the other forward steps:
    giving up on it means refunding a customer whose money was taken. Compensations are
    retried longest, then parked."""

    forward_attempts: int = 3
    charge_attempts: int = 2
    commit_attempts: int = 8
    compensation_attempts: int = 20


# Remote commands: sent after the saga is saved; each answer must quote `step_id`.
@dataclass(frozen=True)
class ReserveStock:
    step_id: str
    order_id: str
    lines: tuple[tuple[str, int], ...]
    attempt: int


@dataclass(frozen=True)
class Charge:
    step_id: str
    order_id: str
    amount_minor: int
    currency: str
    payment_token: str
    attempt: int
    user_id: str = ""  # whose order: payment-service records it and puts it on its event


@dataclass(frozen=True)
class CommitStock:
    step_id: str
    order_id: str
    attempt: int


@dataclass(frozen=True)
class VoidPayment:
    """Outcome unknown: payment-service voids a pending payment, reverses a captured one, or
    records a tombstone so a charge still in flight is refused."""

    step_id: str
    order_id: str
    amount_minor: int
    currency: str
    payment_token: str
    attempt: int
    user_id: str = ""


@dataclass(frozen=True)
class RefundPayment:
    step_id: str
    order_id: str
    attempt: int


@dataclass(frozen=True)
class ReleaseStock:
    step_id: str
    order_id: str
    attempt: int


# Local commands: executed in the unit of work that saves the saga.
@dataclass(frozen=True)
class RecordOrder:
    order: Order


@dataclass(frozen=True)
class UpdateOrder:
    order: Order


@dataclass(frozen=True)
class EmitEvent:
    topic: str
    key: str
    payload: dict[str, object]


@dataclass(frozen=True)
class RaiseAlert:
    order_id: str
    reason: str


RemoteCommand = ReserveStock | Charge | CommitStock | VoidPayment | RefundPayment | ReleaseStock
LocalCommand = RecordOrder | UpdateOrder | EmitEvent | RaiseAlert
Command = RemoteCommand | LocalCommand


# Replies, translated by the handler from gRPC answers (or from its own deadline).
@dataclass(frozen=True)
class StepSucceeded:
    step_id: str


@dataclass(frozen=True)
class StepRefused:
    """A definite business "no" with nothing done (out of stock, declined, reservation gone)."""

    step_id: str
    reason: str


@dataclass(frozen=True)
class StepFailed:
    """Outcome unknown (deadline, unavailable, crash): the step may or may not have happened."""

    step_id: str
    reason: str


Reply = StepSucceeded | StepRefused | StepFailed


@dataclass
class Decision:
    commands: list[Command] = field(default_factory=list)
    ignored: bool = False

    @property
    def remote(self) -> list[RemoteCommand]:
        return [c for c in self.commands if not isinstance(c, LocalCommand)]

    @property
    def local(self) -> list[LocalCommand]:
        return [c for c in self.commands if isinstance(c, LocalCommand)]


IGNORED: Final = Decision(ignored=True)


@dataclass
class CheckoutSaga:
    """One order's checkout; persisted as a row (id = order id) after every decision."""

    order: Order
    payment_token: str
    state: SagaState
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    version: int = 0
    awaiting: str | None = None
    step_seq: int = 0
    attempts: int = 0
    payment: PaymentKnowledge = PaymentKnowledge.NONE
    stock: StockKnowledge = StockKnowledge.NONE
    order_recorded: bool = False
    cancel_requested: bool = False
    cancel_reason: str | None = None
    parked_reason: str | None = None
    updated_at: datetime | None = None

    @property
    def order_id(self) -> str:
        return self.order.id

    @property
    def is_finished(self) -> bool:
        return self.state in FINAL_STATES

    @classmethod
    def start(
        cls, order: Order, payment_token: str, now: datetime, policy: RetryPolicy | None = None
    ) -> tuple[CheckoutSaga, Decision]:
        saga = cls(order, payment_token, SagaState.RESERVING_STOCK, policy or RetryPolicy())
        saga.stock = StockKnowledge.MAYBE
        return saga, Decision([saga._issue(SagaState.RESERVING_STOCK, now)])

    # --- entry points -------------------------------------------------------------------

    def handle(self, reply: Reply, now: datetime) -> Decision:
        """Apply the answer to the step we wait for; anything else is stale and ignored."""
        if self.awaiting is None or reply.step_id != self.awaiting:
            return IGNORED
        self.version += 1
        self.updated_at = now
        self.awaiting = None
        if self.state in COMPENSATING_STATES:
            return self._on_compensation_reply(reply, now)
        return self._on_forward_reply(reply, now)

    def on_payment_completed(
        self, captured: bool, now: datetime, reason: str | None = None
    ) -> Decision:
        """`order.completed` arrived: the same news as the CHARGE reply (captured: success;
        declined: refusal), taken only while charging; later the compensations (a void
        reverses a capture) already cover it, so it is ignored."""
        if self.state is not SagaState.CHARGING or self.awaiting is None:
            return IGNORED
        if captured:
            return self.handle(StepSucceeded(self.awaiting), now)
        return self.handle(StepRefused(self.awaiting, reason or "card_declined"), now)

    def resume(self, now: datetime) -> Decision:
        """Recovery loop after a restart: re-send the step we wait for (idempotent on the
        other side) under a new step id, so a reply to the pre-crash send is ignored.

        Not counted as an attempt: a restart says nothing about the other service (observed
        failures, `StepFailed`, are what count). A cancel requested meanwhile takes effect.
        """
        if self.awaiting is None:
            return IGNORED
        self.version += 1
        self.updated_at = now
        if self.cancel_requested and self.state in FORWARD_STATES:
            return self._on_failure(self.state, "cancelled", now)
        return Decision([self._issue(self.state, now, count=False)])

    def request_cancel(self, now: datetime) -> Decision:
        """POST /orders/{id}/cancel. A PAID order is refunded and restocked; an order still in
        flight is cancelled at its next step; CANCELLED stays CANCELLED (no-op)."""
        if self.state in (SagaState.CANCELLED, SagaState.PARKED) or self.cancel_requested:
            return IGNORED
        if self.state in COMPENSATING_STATES:
            return IGNORED
        self.version += 1
        self.updated_at = now
        self.cancel_requested = True
        if self.state is SagaState.PAID:
            return self._compensate("cancelled", now)
        return Decision()

    def retry_parked(self, now: datetime) -> Decision:
        """Operator action once the cause of a parked compensation is fixed."""
        if self.state is not SagaState.PARKED:
            return IGNORED
        self.version += 1
        self.updated_at = now
        self.attempts = 0
        self.parked_reason = None
        return self._compensate(self.cancel_reason or "operator_retry", now)

    def operator_cancel(self, note: str, now: datetime) -> Decision:
        """An operator settled a parked saga by hand (refunded at the provider's dashboard,
        counted the stock): close it CANCELLED without sending anything more. Only for
        PARKED sagas; anything still running goes through `request_cancel`."""
        if self.state is not SagaState.PARKED:
            return IGNORED
        self.version += 1
        self.updated_at = now
        self.cancel_reason = f"operator: {note}"[:64] if note else "operator_cancelled"
        return self._finish_cancelled(now)

    # --- forward path -------------------------------------------------------------------

    def _on_forward_reply(self, reply: Reply, now: datetime) -> Decision:
        step = self.state
        if isinstance(reply, StepFailed):
            return self._on_failure(step, reply.reason, now)
        if isinstance(reply, StepRefused):
            return self._on_refusal(step, reply.reason, now)
        if step is SagaState.RESERVING_STOCK:
            self.stock = StockKnowledge.HELD
            if self.cancel_requested:
                return self._compensate("cancelled", now)
            return self._record_and_charge(now)
        if step is SagaState.CHARGING:
            self.payment = PaymentKnowledge.CAPTURED
            self.order.set_payment("CAPTURED", None, now)
            if self.cancel_requested:
                return self._compensate("cancelled", now)
            self.stock = StockKnowledge.MAYBE
            return Decision([self._issue(SagaState.COMMITTING_STOCK, now)])
        self.stock = StockKnowledge.COMMITTED
        if self.cancel_requested:
            return self._compensate("cancelled", now)
        return self._mark_paid(now)

    def _record_and_charge(self, now: datetime) -> Decision:
        self.order_recorded = True
        self.payment = PaymentKnowledge.UNKNOWN
        created = EmitEvent(TOPIC_ORDER_CREATED, self.order_id, self.order.created_event_payload())
        return Decision([RecordOrder(self.order), created, self._issue(SagaState.CHARGING, now)])

    def _mark_paid(self, now: datetime) -> Decision:
        self.state = SagaState.PAID
        self.order.mark_paid(now)
        return Decision([UpdateOrder(self.order)])

    def _on_refusal(self, step: SagaState, reason: str, now: datetime) -> Decision:
        if step is SagaState.RESERVING_STOCK:
            self.stock = StockKnowledge.NONE
            return self._compensate(reason or "out_of_stock", now)
        if step is SagaState.CHARGING:
            self.payment = PaymentKnowledge.DECLINED
            self.order.set_payment("DECLINED", reason or "card_declined", now)
            return self._compensate("payment_declined", now)
        # COMMITTING_STOCK refused: the reservation is gone (expired); refund, don't oversell.
        self.stock = StockKnowledge.NONE
        return self._compensate(reason or "reservation_expired", now)

    def _on_failure(self, step: SagaState, reason: str, now: datetime) -> Decision:
        """Retry the step while attempts remain; then give up (forward) or park (compensation)."""
        if step in COMPENSATING_STATES:
            if self.attempts < self.policy.compensation_attempts:
                return Decision([self._issue(step, now)])
            return self._park(reason, now)
        limit = {
            SagaState.CHARGING: self.policy.charge_attempts,
            SagaState.COMMITTING_STOCK: self.policy.commit_attempts,
        }.get(step, self.policy.forward_attempts)
        if self.attempts < limit and not self.cancel_requested:
            return Decision([self._issue(step, now)])
        give_up = {
            SagaState.RESERVING_STOCK: "inventory_unavailable",
            SagaState.CHARGING: "payment_unavailable",
            SagaState.COMMITTING_STOCK: "inventory_unavailable",
        }[step]
        if step is SagaState.CHARGING and self.payment is PaymentKnowledge.UNKNOWN:
            self.order.set_payment("PENDING", "payment_timeout", now)
        return self._compensate("cancelled" if self.cancel_requested else give_up, now)

    # --- compensation -------------------------------------------------------------------

    def _compensate(self, reason: str, now: datetime) -> Decision:
        """Start (or continue) compensation: the next undo the knowledge calls for."""
        self.cancel_reason = self.cancel_reason or reason
        self.attempts = 0
        return self._next_compensation(now)

    def _next_compensation(self, now: datetime) -> Decision:
        if self.payment is PaymentKnowledge.CAPTURED:
            return Decision([self._issue(SagaState.REFUNDING_PAYMENT, now)])
        if self.payment is PaymentKnowledge.UNKNOWN:
            return Decision([self._issue(SagaState.VOIDING_PAYMENT, now)])
        if self.stock in (StockKnowledge.MAYBE, StockKnowledge.HELD, StockKnowledge.COMMITTED):
            return Decision([self._issue(SagaState.RELEASING_STOCK, now)])
        return self._finish_cancelled(now)

    def _on_compensation_reply(self, reply: Reply, now: datetime) -> Decision:
        step = self.state
        if not isinstance(reply, StepSucceeded):
            # A refusal is not "nothing to undo": only the other side's explicit answer that
            # nothing is held (translated to StepSucceeded) is. Retry, then park.
            return self._on_failure(step, reply.reason, now)
        self.attempts = 0
        if step is SagaState.REFUNDING_PAYMENT:
            self.payment = PaymentKnowledge.REFUNDED
            self.order.set_payment("REFUNDED", None, now)
        elif step is SagaState.VOIDING_PAYMENT:
            self.payment = PaymentKnowledge.VOIDED
            self.order.set_payment("VOIDED", self.order.payment_reason, now)
        else:
            self.stock = StockKnowledge.RELEASED
        return self._next_compensation(now)

    def _finish_cancelled(self, now: datetime) -> Decision:
        self.state = SagaState.CANCELLED
        self.awaiting = None
        self.order.mark_cancelled(self.cancel_reason or "cancelled", now)
        # Also when refused before it was placed (out of stock): the order row, written at
        # PlaceOrder, says CANCELLED with the reason, whatever PlaceOrder answered.
        return Decision([UpdateOrder(self.order)])

    def _park(self, reason: str, now: datetime) -> Decision:
        self.state = SagaState.PARKED
        self.awaiting = None
        self.updated_at = now
        self.parked_reason = f"{reason} ({self.attempts} attempts)"[:200]
        return Decision([RaiseAlert(self.order_id, f"compensation keeps failing: {reason}")])

    # --- commands -----------------------------------------------------------------------

    def _issue(self, state: SagaState, now: datetime, *, count: bool = True) -> RemoteCommand:
        """Wait for `state`'s step under a fresh step id and build its command."""
        if state is not self.state:
            self.attempts = 1
        elif count:
            self.attempts += 1
        self.state = state
        self.step_seq += 1
        self.awaiting = f"{self.order_id}:{self.step_seq}:{state.value}"
        self.updated_at = now
        step_id, order_id, attempt = self.awaiting, self.order_id, self.attempts
        match state:
            case SagaState.RESERVING_STOCK:
                return ReserveStock(step_id, order_id, sku_quantities(self.order.lines), attempt)
            case SagaState.CHARGING:
                return Charge(step_id, order_id, *self._money(), attempt, self.order.user_id)
            case SagaState.COMMITTING_STOCK:
                return CommitStock(step_id, order_id, attempt)
            case SagaState.VOIDING_PAYMENT:
                return VoidPayment(step_id, order_id, *self._money(), attempt, self.order.user_id)
            case SagaState.REFUNDING_PAYMENT:
                return RefundPayment(step_id, order_id, attempt)
            case SagaState.RELEASING_STOCK:
                return ReleaseStock(step_id, order_id, attempt)
        raise AssertionError(f"{state} is not a step")

    def _money(self) -> tuple[int, str, str]:
        return self.order.total_minor, self.order.currency, self.payment_token
