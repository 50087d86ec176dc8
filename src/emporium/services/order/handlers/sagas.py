"""The operator's way out for checkout sagas: list the unfinished ones, retry a parked one,
or close a parked one that was settled by hand (`emporium sagas list | retry | cancel`).

Who may: the `operator` identity only (the `emporium` CLI, proven with the operator's own key;
callers.py names it, and `require_service` checks it again here).
A saga is parked when a compensation (void, refund, release) kept failing: its money or stock
is in a state nobody confirmed, so only a person decides; nothing here drops a saga silently.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from emporium.chassis.db import Database
from emporium.chassis.errors import (
    DomainError,
    ErrorCode,
    FieldError,
    invalid,
    not_found,
)
from emporium.chassis.rpc.acl import OPERATOR
from emporium.chassis.rpc.identity import Caller, require_service
from emporium.chassis.rpc.server import within_deadline
from emporium.services.order import store
from emporium.services.order.handlers.checkout import CheckoutRunner
from emporium.services.order.saga import CheckoutSaga, SagaState

log = logging.getLogger(__name__)

# How long `retry` waits for the resumed compensation's next attempt to settle, at most.
RETRY_WAIT_SECONDS = 5.0
# Left of the caller's deadline to read the saga back and reply.
ANSWER_MARGIN_SECONDS = 0.3

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
MAX_NOTE_LENGTH = 200


@dataclass(frozen=True)
class SagaPage:
    items: list[CheckoutSaga]
    next_cursor: str


def _require_operator() -> Caller:
    return require_service(OPERATOR)


def _states(names: list[str]) -> list[SagaState]:
    try:
        return [SagaState(name.upper()) for name in names]
    except ValueError:
        known = ", ".join(s.value for s in SagaState)
        raise invalid("unknown saga state", FieldError("states", f"each one of {known}")) from None


def _not_parked(saga: CheckoutSaga) -> DomainError:
    return DomainError(
        f"saga {saga.order_id} is {saga.state.value}, not PARKED",
        ErrorCode.FAILED_PRECONDITION,
        "saga_not_parked",
    )


class Sagas:
    """The operator's use cases."""

    def __init__(self, db: Database, runner: CheckoutRunner) -> None:
        self.db = db
        self.runner = runner

    async def list(self, states: list[str], limit: int, cursor: str) -> SagaPage:
        _require_operator()
        if not 0 <= limit <= MAX_PAGE_SIZE:
            raise invalid("invalid page", FieldError("limit", f"must be 1-{MAX_PAGE_SIZE}"))
        size = limit or DEFAULT_PAGE_SIZE
        async with self.db.session() as session:
            found = await store.list_sagas(session, _states(states), size + 1, cursor or None)
        items = found[:size]
        return SagaPage(items, items[-1].order_id if len(found) > size else "")

    async def _get(self, order_id: str) -> CheckoutSaga:
        async with self.db.session() as session:
            saga = await store.read_saga(session, order_id) if order_id else None
        if saga is None:
            raise not_found(f"no saga for order {order_id}")
        return saga

    async def retry(self, order_id: str) -> CheckoutSaga:
        """Resume a parked saga's compensation; answers once its next attempt settled, or, when
        the caller's deadline comes first, with the state the saga reached by then."""
        caller = _require_operator()
        saga = await self._get(order_id)
        if saga.state is not SagaState.PARKED:
            raise _not_parked(saga)
        decision = await self.runner.apply(order_id, lambda s, now: s.retry_parked(now))
        if decision.ignored:
            raise _not_parked(await self._get(order_id))
        log.warning(
            "parked saga retried by an operator",
            extra={"order_id": order_id, "by": caller.user_id or "system"},
        )
        self.runner.start(order_id, decision.remote)
        # The compensation's attempt may outlast the operator's deadline (a slow provider, a
        # busy machine): answer with the state it reached by then; the driver goes on.
        await self.runner.wait(order_id, within_deadline(RETRY_WAIT_SECONDS, ANSWER_MARGIN_SECONDS))
        return await self._get(order_id)

    async def cancel(self, order_id: str, note: str) -> CheckoutSaga:
        """Close a parked saga that an operator settled by hand."""
        caller = _require_operator()
        if len(note) > MAX_NOTE_LENGTH:
            raise invalid("note too long", FieldError("note", f"at most {MAX_NOTE_LENGTH}"))
        saga = await self._get(order_id)
        if saga.state is not SagaState.PARKED:
            raise _not_parked(saga)
        decision = await self.runner.apply(order_id, lambda s, now: s.operator_cancel(note, now))
        if decision.ignored:
            raise _not_parked(await self._get(order_id))
        log.warning(
            "parked saga closed by an operator",
            extra={"order_id": order_id, "by": caller.user_id or "system", "note": note},
        )
        return await self._get(order_id)
