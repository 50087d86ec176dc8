"""inventory-service use cases: one function per command, each in one unit of work.

Who may do what: `GetStock` is public; `SetStock` needs an admin; `ReserveStock`,
`ReleaseStock` and `CommitStock` need a system caller (order-service's saga) or an admin.

Every use case that changes stock locks what it reads (store.py's locking rule), lets the
domain decide, saves, and records the `inventory.low` events the domain returned in the same
unit of work. When a concurrent writer wins a race on a new row (two first reservations of
one order, two first counts of one sku), the loser's unit of work is rolled back and run
again, and then sees the winner's row: that is how "idempotent by order id" holds under
concurrency too.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from emporium.chassis.db import Database, UnitOfWork
from emporium.chassis.errors import DomainError, ErrorCode, FieldError, invalid, not_found
from emporium.chassis.events.outbox import add_event
from emporium.chassis.rpc.identity import require_admin
from emporium.contracts.events.inventory_low import TOPIC, InventoryLowV1
from emporium.contracts.events.order_created import OrderCreatedV1
from emporium.services.inventory import domain, store
from emporium.services.inventory.domain import InventoryLow, Reservation, StockChange, StockItem

log = logging.getLogger(__name__)

SERVICE = "inventory"
MAX_ORDER_ID_LENGTH = 64
MAX_ATTEMPTS = 5
EXPIRY_BATCH = 100

T = TypeVar("T")


def _check_order_id(order_id: str) -> None:
    if not order_id or len(order_id) > MAX_ORDER_ID_LENGTH:
        raise invalid("invalid order id", FieldError("order_id", "must be 1-64 characters"))


async def _record_low(uow: UnitOfWork, events: Iterable[InventoryLow]) -> None:
    for low in events:
        payload = InventoryLowV1(sku=low.sku, available=low.available, threshold=low.threshold)
        await add_event(uow, TOPIC, payload, source=SERVICE)  # type: ignore[arg-type]  # ClassVar TOPIC


async def _save_items(
    uow: UnitOfWork, rows: dict[str, store.StoredStock], skus: Iterable[str], now: datetime
) -> None:
    for sku in sorted(set(skus)):
        await store.save_stock(uow.session, rows[sku], now)


class Inventory:
    """The use cases, with their ports; built once by app.py."""

    def __init__(
        self, db: Database, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self.db = db
        self.clock = clock

    async def _in_unit_of_work(self, use_case: Callable[[UnitOfWork], Awaitable[T]]) -> T:
        """Run `use_case` in a fresh unit of work (it commits), again after a lost race."""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                async with self.db.unit_of_work() as uow:
                    result = await use_case(uow)
                    await uow.commit()
                    return result
            except store.LostRace:
                if attempt == MAX_ATTEMPTS:
                    break
        raise DomainError("too much contention, retry", ErrorCode.UNAVAILABLE, "contention")

    # -- stock levels ---------------------------------------------------------------------

    async def set_stock(self, sku: str, on_hand: int, threshold: int | None) -> store.StoredStock:
        """Admin count (`PUT /inventory/{sku}`): absolute, so a retry changes nothing more."""
        require_admin()
        domain.check_sku(sku)

        async def use_case(uow: UnitOfWork) -> store.StoredStock:
            now = self.clock()
            rows = await store.lock_stock(uow.session, [sku])
            if sku in rows:
                stored = rows[sku]
                events = stored.item.set_stock(on_hand, threshold, now)
            else:
                item, events = StockItem.create(sku, on_hand, threshold, now)
                stored = store.StoredStock(item, 0, now)
            await store.save_stock(uow.session, stored, now)
            await _record_low(uow, events)
            return stored

        return await self._in_unit_of_work(use_case)

    async def get_stock(self, sku: str) -> store.StoredStock:
        domain.check_sku(sku)
        async with self.db.session() as session:
            stored = await store.get_stock(session, sku)
        if stored is None:
            raise not_found(f"no stock recorded for sku {sku}")
        return stored

    # -- reservations (the checkout saga) -------------------------------------------------

    async def reserve(
        self, order_id: str, lines: Sequence[tuple[str, int]], ttl_seconds: int = 0
    ) -> Reservation:
        """All lines or none; a retry for the same order returns the same reservation."""
        require_admin()
        _check_order_id(order_id)
        ttl = domain.reservation_ttl(ttl_seconds)
        domain.normalise_lines(lines)  # bad input is INVALID_ARGUMENT before any lock

        async def use_case(uow: UnitOfWork) -> Reservation:
            existing = await store.lock_reservation(uow.session, order_id)
            if existing is not None:
                return domain.reserve({}, order_id, lines, self.clock(), existing).reservation
            change = await self._hold(uow, order_id, lines, ttl)
            return change.reservation

        return await self._in_unit_of_work(use_case)

    async def _hold(
        self,
        uow: UnitOfWork,
        order_id: str,
        lines: Sequence[tuple[str, int]],
        ttl: timedelta,
    ) -> StockChange:
        """A new reservation (no reservation of this order exists, checked under lock)."""
        now = self.clock()
        rows = await store.lock_stock(uow.session, (sku for sku, _ in lines))
        items = {sku: row.item for sku, row in rows.items()}
        change = domain.reserve(items, order_id, lines, now, ttl=ttl)
        await store.insert_reservation(uow.session, change.reservation, now)
        await _save_items(uow, rows, change.reservation.skus, now)
        await _record_low(uow, change.events)
        return change

    async def release(self, order_id: str, reason: str = "") -> Reservation:
        """Give the units back; unknown orders get a RELEASED tombstone (a late reserve for
        them is then refused). Idempotent."""
        require_admin()
        _check_order_id(order_id)

        async def use_case(uow: UnitOfWork) -> Reservation:
            now = self.clock()
            existing = await store.lock_reservation(uow.session, order_id)
            if existing is None:
                change = domain.release_order({}, order_id, None, now)
                await store.insert_reservation(uow.session, change.reservation, now)
                return change.reservation
            return await self._apply(uow, existing, domain.release, now)

        reservation = await self._in_unit_of_work(use_case)
        log.info("reservation released", extra={"order_id": order_id, "reason": reason})
        return reservation

    async def commit(self, order_id: str) -> Reservation:
        """Held units become sold. Idempotent; a released/expired reservation is refused."""
        require_admin()
        _check_order_id(order_id)

        async def use_case(uow: UnitOfWork) -> Reservation:
            existing = await store.lock_reservation(uow.session, order_id)
            if existing is None:
                raise not_found(f"order {order_id} has no reservation")
            return await self._apply(uow, existing, domain.commit, self.clock())

        return await self._in_unit_of_work(use_case)

    async def _apply(
        self,
        uow: UnitOfWork,
        reservation: Reservation,
        transition: Callable[[dict[str, StockItem], Reservation, datetime], StockChange],
        now: datetime,
    ) -> Reservation:
        """Run a domain transition on a locked reservation and its locked stock rows; save
        only when its status changed (a replay writes nothing)."""
        before = reservation.status
        rows = await store.lock_stock(uow.session, reservation.skus)
        change = transition({sku: row.item for sku, row in rows.items()}, reservation, now)
        if change.reservation.status is before:
            return change.reservation
        await _save_items(uow, rows, reservation.skus, now)
        await store.update_reservation(uow.session, change.reservation, now)
        await _record_low(uow, change.events)
        return change.reservation

    # -- background and events -------------------------------------------------------------

    async def expire_due(self, limit: int = EXPIRY_BATCH) -> int:
        """Release held reservations past their deadline (one unit of work each, so one
        failure does not hold the others back); returns how many expired."""
        async with self.db.session() as session:
            due = await store.due_reservations(session, self.clock(), limit)
        expired = 0
        for order_id in due:

            async def use_case(uow: UnitOfWork, order_id: str = order_id) -> bool:
                reservation = await store.lock_reservation(uow.session, order_id)
                if reservation is None or not reservation.is_expired(self.clock()):
                    return False  # committed or released meanwhile
                after = await self._apply(uow, reservation, domain.expire, self.clock())
                return after.status is domain.ReservationStatus.EXPIRED

            expired += await self._in_unit_of_work(use_case)
        return expired

    async def on_order_created(self, uow: UnitOfWork, order: OrderCreatedV1) -> None:
        """`order.created` (in the inbox's unit of work): the saga reserved before recording
        the order, so the reservation normally exists and is only marked as seen. If it is
        missing (lost with a restored database, say), hold the order's lines now so the
        saga's CommitStock finds them; if that stock is gone, log it and leave it to the saga
        (CommitStock will be refused and the order refunded)."""
        now = self.clock()
        if await store.lock_reservation(uow.session, order.order_id) is None:
            lines = [(line.sku, line.quantity) for line in order.lines]
            try:
                await self._hold(uow, order.order_id, lines, domain.DEFAULT_RESERVATION_TTL)
            except DomainError as refused:
                log.warning(
                    "order.created without a reservation, and it cannot be held",
                    extra={"order_id": order.order_id, "reason": refused.reason},
                )
                return
            except store.LostRace:
                pass  # a concurrent ReserveStock created it: just mark it
        await store.mark_order_seen(uow.session, order.order_id, now)
