"""The reconciler: a background task that closes every open intent with the provider.

A charge whose outcome is unknown (the provider timed out, payment-service crashed between
recording the intent and the answer, the capture completed after the caller gave up) is
looked up at the provider by its idempotency key, and re-sent under the same key if the
provider never received it. A void or refund that got no confirmation is sent again. Each
payment backs off exponentially (domain.py `schedule_retry`) until the provider confirms; a
payment never leaves its intent by giving up.

Several replicas may reconcile at once: before calling the provider a replica *claims* the
payment by pushing its next attempt past the call's duration in one unit of work, so the
others skip it; and since every provider operation is idempotent by key, a double call would
be harmless anyway.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Final

from prometheus_client import Gauge

from emporium.chassis.runtime import StopSignal
from emporium.services.payment import store
from emporium.services.payment.domain import Payment, ProviderCall
from emporium.services.payment.handlers import Payments

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_SECONDS: Final = 1.0
DEFAULT_PENDING_GRACE_SECONDS: Final = 10.0
BATCH: Final = 50

OPEN_INTENTS = Gauge(
    "emporium_payment_open_intents",
    "Payments waiting for the provider to confirm, per state (PENDING, VOIDING, REFUNDING)",
    ["service", "state"],
)


class Reconciler:
    """Works through due intents every `interval` seconds until shutdown."""

    def __init__(
        self,
        payments: Payments,
        *,
        interval: float = DEFAULT_INTERVAL_SECONDS,
        pending_grace: float = DEFAULT_PENDING_GRACE_SECONDS,
    ) -> None:
        self.payments = payments
        self.interval = interval
        self.pending_grace = pending_grace

    async def reconcile_once(self) -> int:
        """One pass; returns how many intents were attempted."""
        db = self.payments.db
        now = datetime.now(UTC)
        async with db.session() as session:
            due = await store.due_intents(
                session, now, now - timedelta(seconds=self.pending_grace), BATCH
            )
        attempted = 0
        for order_id in due:
            claimed = await self._claim(order_id, now)
            if claimed is None:
                continue
            payment, operation = claimed
            await self.payments.call_provider(payment, operation)
            attempted += 1
        await self._report()
        return attempted

    async def _claim(self, order_id: str, now: datetime) -> tuple[Payment, ProviderCall] | None:
        """Lock the payment, check it is still due, and push its next attempt out while this
        replica calls the provider."""
        async with self.payments.db.unit_of_work() as uow:
            stored = await store.payment_for_order(uow.session, order_id, for_update=True)
            if stored is None:
                return None
            payment = stored.payment
            operation = payment.open_call()
            if operation is None or (payment.next_attempt_at and payment.next_attempt_at > now):
                return None
            payment.next_attempt_at = now + timedelta(
                seconds=self.payments.provider.timeout + self.interval
            )
            await store.update_payment(uow.session, payment)
            await uow.commit()
        return payment, operation

    async def _report(self) -> None:
        async with self.payments.db.session() as session:
            counts = await store.open_intent_counts(session)
        for state, count in counts.items():
            OPEN_INTENTS.labels("payment", state).set(count)

    async def run(self, stop: StopSignal) -> None:
        """Background task of payment-service."""
        while not stop.is_set():
            try:
                attempted = await self.reconcile_once()
                if attempted:
                    log.info("reconciled payment intents", extra={"count": attempted})
            except Exception:
                log.exception("payment reconciliation pass failed")
            if await stop.wait(self.interval):
                break
