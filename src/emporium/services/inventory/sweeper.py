"""The expiry loop: releases held reservations whose deadline passed, so a saga that died
half-way never keeps stock off the shelf for longer than the reservation's TTL.

A background task of the process (`ServiceApp.background`); the runtime restarts it if it
crashes, and it logs and carries on when one pass fails (a database blip).
"""

from __future__ import annotations

import logging

from emporium.chassis.runtime import BackgroundTask, StopSignal
from emporium.services.inventory.handlers import EXPIRY_BATCH, Inventory

log = logging.getLogger(__name__)

SWEEP_INTERVAL_SECONDS = 5.0


def expiry_loop(inventory: Inventory, interval: float = SWEEP_INTERVAL_SECONDS) -> BackgroundTask:
    async def run(stop: StopSignal) -> None:
        while not stop.is_set():
            try:
                expired = await inventory.expire_due()
            except Exception:
                log.exception("reservation expiry pass failed")
                expired = 0
            if expired:
                log.info("reservations expired", extra={"count": expired})
            if expired < EXPIRY_BATCH:  # a full batch: more are due, go on at once
                await stop.wait(interval)

    return run
