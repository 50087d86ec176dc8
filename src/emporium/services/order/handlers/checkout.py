"""Running the checkout saga: persist each decision, then perform its remote step.

`CheckoutSaga` (saga.py) decides; this runner performs. Each transition is one unit of work:
load the saga row (locked), apply the transition, run its local commands (record/update the
order, `order.created` into the outbox, alerts), save with the version check, commit. Only
then is the remote command sent (by a driver task), and its answer comes back as the next
transition. A crash anywhere leaves a saga row that says which step it waits for; the
recovery loop (`run_recovery`, a background task of the app) re-sends that step under a new
step id once the saga has been idle for `stale_after` seconds, so a reply to the pre-crash
send is ignored as stale.

Driver tasks run detached from the RPC that started them (no incoming deadline, caller
`Caller.system("order")`), so a client giving up on PlaceOrder never stops a saga halfway.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from emporium.chassis.backoff import Backoff
from emporium.chassis.db import Database, UnitOfWork
from emporium.chassis.errors import DomainError, ErrorCode
from emporium.chassis.events.outbox import add_event
from emporium.chassis.failpoints import failpoint
from emporium.chassis.rpc.identity import set_caller
from emporium.chassis.rpc.server import incoming_deadline_var
from emporium.chassis.runtime import StopSignal
from emporium.contracts.events.order_created import OrderCreatedV1
from emporium.services.order import store
from emporium.services.order.clients import (
    BREAKER_RESET_SECONDS,
    SERVICE,
    SYSTEM,
    RemoteServices,
)
from emporium.services.order.metrics import count_parked, report_unfinished_sagas
from emporium.services.order.saga import (
    IGNORED,
    CheckoutSaga,
    CommitStock,
    Decision,
    EmitEvent,
    RaiseAlert,
    RefundPayment,
    ReleaseStock,
    RemoteCommand,
    Reply,
    RetryPolicy,
    SagaState,
    VoidPayment,
)

log = logging.getLogger(__name__)

Transition = Callable[[CheckoutSaga, datetime], Decision]

DEFAULT_STALE_AFTER_SECONDS = 15.0
DEFAULT_RECOVERY_INTERVAL_SECONDS = 5.0
RECOVERY_BATCH = 100
QUICK_BACKOFF = Backoff(initial=0.05, maximum=1.0, jitter=0.5)
# With the default 20 compensation attempts, about four minutes pass before a saga is parked:
# long enough to ride out a deploy or a restart of payment or inventory.
PATIENT_BACKOFF = Backoff(initial=0.25, maximum=15.0, jitter=0.3)


def now_utc() -> datetime:
    return datetime.now(UTC)


def error_answer(error: DomainError) -> dict[str, Any]:
    """A refusal as stored for Idempotency-Key replays."""
    return {
        "message": error.message,
        "code": error.code.value,
        "reason": error.reason,
        "fields": [{"field": f.field, "message": f.message} for f in error.fields],
    }


def _gave_up_answer(saga: CheckoutSaga) -> dict[str, Any]:
    reason = saga.cancel_reason or "cancelled"
    code = ErrorCode.UNAVAILABLE if reason.endswith("unavailable") else ErrorCode.CONFLICT
    return error_answer(DomainError(f"checkout cancelled: {reason}", code, reason))


def _handle_reply(reply: Reply, saga: CheckoutSaga, now: datetime) -> Decision:
    return saga.handle(reply, now)


def _detached_context() -> contextvars.Context:
    context = contextvars.copy_context()
    context.run(incoming_deadline_var.set, None)
    context.run(set_caller, SYSTEM)
    return context


class CheckoutRunner:
    """Persists saga transitions and drives their remote steps; one per process."""

    def __init__(
        self,
        db: Database,
        remote: RemoteServices,
        *,
        stale_after: float = DEFAULT_STALE_AFTER_SECONDS,
        recovery_interval: float = DEFAULT_RECOVERY_INTERVAL_SECONDS,
        quick_backoff: Backoff = QUICK_BACKOFF,
        patient_backoff: Backoff = PATIENT_BACKOFF,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.db = db
        self.policy = policy
        self.remote = remote
        self.stale_after = stale_after
        self.recovery_interval = recovery_interval
        self.quick_backoff = quick_backoff
        self.patient_backoff = patient_backoff
        self._drivers: dict[str, set[asyncio.Task[None]]] = {}

    # --- transitions --------------------------------------------------------------------

    async def apply(
        self, order_id: str, transition: Transition, refusal: DomainError | None = None
    ) -> Decision:
        """One transition in its own unit of work."""
        decision, _ = await self._apply(order_id, transition, refusal, None)
        return decision

    async def _apply(
        self,
        order_id: str,
        transition: Transition,
        refusal: DomainError | None,
        held: CheckoutSaga | None,
    ) -> tuple[Decision, CheckoutSaga | None]:
        """`apply`, and the saga as committed (None when there is none).

        `held` is the saga as this driver last committed it. It is decided on without reading
        the row back; the version-checked save is what proves it current (another replica,
        the `order.completed` consumer or an operator may have moved the saga since). When
        the save finds the row moved, or the held copy ignores the transition, that attempt
        rolls back and the transition is decided again on the row as it stands, locked."""
        if held is not None:
            async with self.db.unit_of_work() as uow:
                decision = await self._decide(uow, held, transition, refusal)
                if decision is not None and not decision.ignored:
                    await uow.commit()
                    return decision, held
        async with self.db.unit_of_work() as uow:
            saga = await store.load_saga(uow.session, order_id)
            if saga is None:
                return IGNORED, None
            decision = await self._decide(uow, saga, transition, refusal)
            if decision is None:
                raise DomainError("the saga moved meanwhile", ErrorCode.CONFLICT, "stale_saga")
            await uow.commit()
        return decision, saga

    async def apply_in(
        self,
        uow: UnitOfWork,
        order_id: str,
        transition: Transition,
        refusal: DomainError | None = None,
    ) -> Decision:
        """Load (locked), decide, run the local commands, save with the version check."""
        saga = await store.load_saga(uow.session, order_id)
        if saga is None:
            return IGNORED
        decision = await self._decide(uow, saga, transition, refusal)
        if decision is None:
            raise DomainError("the saga moved meanwhile", ErrorCode.CONFLICT, "stale_saga")
        return decision

    async def _decide(
        self,
        uow: UnitOfWork,
        saga: CheckoutSaga,
        transition: Transition,
        refusal: DomainError | None,
    ) -> Decision | None:
        """Decide on `saga`, run the local commands, save with the version check; None when
        the row is no longer at `saga`'s version (nothing saved; the caller rolls back)."""
        if self.policy is not None:  # the process's configured limits, for every saga
            saga.policy = self.policy
        loaded_version = saga.version
        order_before = store.order_values(saga.order)
        decision = transition(saga, now_utc())
        if decision.ignored:
            return decision
        await self._run_local(uow, decision)
        if not await store.save_saga(uow.session, saga, loaded_version):
            return None
        if store.order_values(saga.order) != order_before:  # most steps leave the order be
            await store.save_order(uow.session, saga.order)
        if saga.state is SagaState.CANCELLED and not saga.order_recorded:
            # Refused before it was placed (out of stock): PlaceOrder answers the refusal,
            # unless it already answered the order itself (202), which then stands.
            answer = error_answer(refusal) if refusal else _gave_up_answer(saga)
            order = saga.order
            await store.decide_idempotency_answer(
                uow.session, order.user_id, order.idempotency_key, answer
            )
        return decision

    async def _run_local(self, uow: UnitOfWork, decision: Decision) -> None:
        for command in decision.local:
            if isinstance(command, EmitEvent):
                event = OrderCreatedV1.model_validate(command.payload)
                await add_event(uow, command.topic, event, source=SERVICE)  # type: ignore[arg-type]  # ClassVar TOPIC
            elif isinstance(command, RaiseAlert):
                log.error(
                    "checkout saga parked: an operator must look (emporium sagas list)",
                    extra={"order_id": command.order_id, "reason": command.reason},
                )
                store.on_commit(uow, count_parked)
            # RecordOrder, UpdateOrder: the order row is synced from the saga after every save.

    # --- drivers ------------------------------------------------------------------------

    def start(
        self,
        order_id: str,
        commands: list[RemoteCommand],
        committed: CheckoutSaga | None = None,
    ) -> None:
        """Drive `commands` (and whatever follows) in a detached task; `committed`, the saga
        as the caller just committed it, spares the driver reading it back (see `_apply`)."""
        if not commands:
            return
        task = asyncio.create_task(
            self._drive(order_id, list(commands), committed),
            name=f"checkout:{order_id}",
            context=_detached_context(),
        )
        drivers = self._drivers.setdefault(order_id, set())
        drivers.add(task)
        task.add_done_callback(lambda done: self._forget(order_id, done))

    def _forget(self, order_id: str, task: asyncio.Task[None]) -> None:
        drivers = self._drivers.get(order_id, set())
        drivers.discard(task)
        if not drivers:
            self._drivers.pop(order_id, None)
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "checkout driver failed; the recovery loop will resume the saga",
                exc_info=task.exception(),
                extra={"order_id": order_id},
            )

    def _backoff(self, command: RemoteCommand) -> Backoff:
        """Quick retries while the shopper may be waiting; patient ones for the steps that
        must not give up easily (committing paid stock, every compensation)."""
        patient = isinstance(command, CommitStock | VoidPayment | RefundPayment | ReleaseStock)
        return self.patient_backoff if patient else self.quick_backoff

    def is_driving(self, order_id: str) -> bool:
        return bool(self._drivers.get(order_id))

    async def _drive(
        self, order_id: str, queue: list[RemoteCommand], held: CheckoutSaga | None
    ) -> None:
        while queue:
            command = queue.pop(0)
            if command.attempt > 1:
                await asyncio.sleep(self._backoff(command).delay(command.attempt - 1))
            outcome = await self.remote.send(command)
            # chaos suite: the reply is in, its transition not committed yet
            await failpoint(f"checkout.reply_received.{type(command).__name__}")
            if outcome.breaker_open:
                # Our breaker refused without sending: wait until it lets a probe through,
                # so an outage of a dependency is not burned through in a few milliseconds.
                await asyncio.sleep(BREAKER_RESET_SECONDS)
            handle = functools.partial(_handle_reply, outcome.reply)
            decision, held = await self._apply(order_id, handle, outcome.error, held)
            queue.extend(decision.remote)

    async def wait(self, order_id: str, budget: float) -> None:
        """Until this process has nothing left to do for the saga, or `budget` passed."""
        deadline = time.monotonic() + budget
        while (drivers := self._drivers.get(order_id)) and time.monotonic() < deadline:
            await asyncio.wait(set(drivers), timeout=deadline - time.monotonic())

    async def close(self) -> None:
        """Stop every driver (shutdown); the recovery loop resumes their sagas later."""
        tasks = [t for drivers in self._drivers.values() for t in drivers]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- recovery -----------------------------------------------------------------------

    async def recover_once(self) -> int:
        """Resume every saga idle for `stale_after` that no driver here is running."""
        idle_since = now_utc() - timedelta(seconds=self.stale_after)
        async with self.db.session() as session:
            order_ids = await store.unfinished_sagas(session, idle_since, RECOVERY_BATCH)
        resumed = 0
        for order_id in order_ids:
            if self.is_driving(order_id):
                continue
            decision = await self.apply(order_id, lambda saga, now: saga.resume(now))
            self.start(order_id, decision.remote)
            resumed += not decision.ignored
        if resumed:
            log.info("resumed checkout sagas", extra={"count": resumed})
        async with self.db.session() as session:
            report_unfinished_sagas(SERVICE, await store.unfinished_saga_counts(session))
        return resumed

    async def run_recovery(self, stop: StopSignal) -> None:
        """Background task: resume abandoned sagas now and then, until shutdown."""
        while not stop.is_set():
            try:
                await self.recover_once()
            except Exception:
                log.exception("checkout recovery pass failed")
            if await stop.wait(self.recovery_interval):
                break
