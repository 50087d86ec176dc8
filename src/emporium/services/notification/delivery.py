"""The sender loop: a background task that e-mails due notifications every few seconds.

One round looks at the earliest sendable notifications, attempts the due ones once and saves
each outcome (SENT, or PENDING with a later attempt, or FAILED after the policy's last
attempt). A round that fails (the documents store is down) is logged and retried at the next
tick; nothing is lost, since the state lives in the store.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from emporium.chassis.runtime import BackgroundTask, StopSignal
from emporium.services.notification import handlers
from emporium.services.notification.domain import DeliveryPolicy
from emporium.services.notification.mailer import EmailSender
from emporium.services.notification.store import NotificationStore

log = logging.getLogger(__name__)

DELIVERY_INTERVAL_SECONDS = 1.0


def delivery_loop(
    store: NotificationStore,
    sender: EmailSender,
    policy: DeliveryPolicy | None = None,
    interval: float = DELIVERY_INTERVAL_SECONDS,
) -> BackgroundTask:
    rules = policy or DeliveryPolicy()

    async def run(stop: StopSignal) -> None:
        while not stop.is_set():
            try:
                sent = await handlers.deliver_due(store, sender, rules, datetime.now(UTC))
            except Exception:
                log.warning("notification delivery round failed", exc_info=True)
                sent = 0
            if sent < handlers.DELIVERY_BATCH:  # a full batch: go again at once
                await stop.wait(interval)

    return run
