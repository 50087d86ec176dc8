"""Stock rules: reservations that never oversell, and the `inventory.low` crossing rule.

Pure (no I/O, no clock: `now` is passed in). The handler loads the `StockItem`s of the skus
involved (locked, or version-checked) plus the order's `Reservation`, calls one function here,
and saves whatever it returns in one unit of work. Because every function checks first and
mutates only when everything passes, a refused reservation leaves no trace (all-or-nothing).

Invariants, checked after every change: `0 <= reserved <= on_hand`, hence `available >= 0`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from emporium.chassis.errors import DomainError, ErrorCode, FieldError, conflict, invalid

DEFAULT_LOW_STOCK_THRESHOLD: Final = 5
DEFAULT_RESERVATION_TTL: Final = timedelta(minutes=15)
MAX_ON_HAND: Final = 1_000_000_000
MAX_LINES: Final = 100
TOPIC_INVENTORY_LOW: Final = "inventory.low"


@dataclass(frozen=True)
class InventoryLow:
    """Event: `available` crossed down to `threshold` or below. `payload()` has the fields of
    `contracts.events.inventory_low.InventoryLowV1`; `at` is the event time (`ce_time`)."""

    sku: str
    available: int
    threshold: int
    at: datetime

    topic = TOPIC_INVENTORY_LOW

    def payload(self) -> dict[str, object]:
        return {
            "sku": self.sku,
            "available": self.available,
            "threshold": self.threshold,
        }


def _count_problem(value: object, *, maximum: int = MAX_ON_HAND) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return "must be an integer"
    if value < 0:
        return "must not be negative"
    if value > maximum:
        return f"must be at most {maximum}"
    return None


@dataclass
class StockItem:
    """Stock of one sku. `low_alerted` remembers that the current dip was already announced,
    so `inventory.low` fires once per crossing, not once per order (it is persisted)."""

    sku: str
    on_hand: int = 0
    reserved: int = 0
    low_stock_threshold: int = DEFAULT_LOW_STOCK_THRESHOLD
    low_alerted: bool = False

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved

    @classmethod
    def create(
        cls, sku: str, on_hand: object, threshold: object | None, now: datetime
    ) -> tuple[StockItem, list[InventoryLow]]:
        """First `PUT /inventory/{sku}`; a new item already at/below its threshold alerts."""
        item = cls(sku=sku)
        return item, item.set_stock(on_hand, threshold, now)

    def set_stock(
        self, on_hand: object, threshold: object | None, now: datetime
    ) -> list[InventoryLow]:
        """Admin stock count (`PUT`). Refuses an `on_hand` below what is already promised to
        open reservations: shrinking it would sell stock that is not there."""
        errors = [FieldError("on_hand", p) for p in [_count_problem(on_hand)] if p]
        if threshold is not None and (problem := _count_problem(threshold)):
            errors.append(FieldError("low_stock_threshold", problem))
        if errors:
            raise invalid("invalid stock level", *errors)
        assert isinstance(on_hand, int)
        if on_hand < self.reserved:
            raise DomainError(
                f"on_hand {on_hand} is below the {self.reserved} units reserved for open orders",
                ErrorCode.FAILED_PRECONDITION,
                "below_reserved",
                [FieldError("on_hand", f"must be at least {self.reserved} (reserved)")],
            )
        self.on_hand = on_hand
        if threshold is not None:
            assert isinstance(threshold, int)
            self.low_stock_threshold = threshold
        return self._after_change(now)

    def _after_change(self, now: datetime) -> list[InventoryLow]:
        """Check invariants, then apply the crossing rule (re-armed once above threshold)."""
        if not 0 <= self.reserved <= self.on_hand:
            raise AssertionError(f"stock invariant broken for {self.sku}: {self}")
        if self.available > self.low_stock_threshold:
            self.low_alerted = False
            return []
        if self.low_alerted:
            return []
        self.low_alerted = True
        return [InventoryLow(self.sku, self.available, self.low_stock_threshold, now)]

    def to_view(self) -> dict[str, object]:
        return {
            "sku": self.sku,
            "on_hand": self.on_hand,
            "reserved": self.reserved,
            "available": self.available,
            "low_stock_threshold": self.low_stock_threshold,
        }


class ReservationStatus(StrEnum):
    HELD = "HELD"
    COMMITTED = "COMMITTED"
    RELEASED = "RELEASED"
    EXPIRED = "EXPIRED"


@dataclass(frozen=True)
class ReservationLine:
    sku: str
    quantity: int


@dataclass
class Reservation:
    """Units set aside for one order. The order id is the idempotency key: one order, one
    reservation, whatever the number of retries."""

    order_id: str
    lines: tuple[ReservationLine, ...]
    expires_at: datetime
    created_at: datetime
    status: ReservationStatus = ReservationStatus.HELD
    # True once committed units were put back on the shelf by a release (a refunded order).
    restocked: bool = False

    @property
    def is_held(self) -> bool:
        return self.status is ReservationStatus.HELD

    def is_expired(self, now: datetime) -> bool:
        return self.is_held and now >= self.expires_at

    @property
    def skus(self) -> list[str]:
        return [line.sku for line in self.lines]


@dataclass(frozen=True)
class Shortage:
    sku: str
    requested: int
    available: int


@dataclass
class StockChange:
    """What a reserve/release/commit/expire did: the reservation, whether it is new, events."""

    reservation: Reservation
    created: bool = False
    events: list[InventoryLow] = field(default_factory=list)


def out_of_stock(shortages: Sequence[Shortage]) -> DomainError:
    """409 `out_of_stock`, naming every short sku (field = sku) so the client can fix its cart."""
    detail = ", ".join(
        f"{s.sku} (requested {s.requested}, available {s.available})" for s in shortages
    )
    return DomainError(
        f"out of stock: {detail}",
        ErrorCode.CONFLICT,
        "out_of_stock",
        [FieldError(s.sku, f"requested {s.requested}, available {s.available}") for s in shortages],
    )


def normalise_lines(lines: Iterable[tuple[str, int]]) -> tuple[ReservationLine, ...]:
    """Validate and merge duplicate skus; sorted by sku so the same request compares equal
    (idempotency) and rows are always locked in the same order (no deadlocks)."""
    merged: dict[str, int] = {}
    errors: list[FieldError] = []
    for index, (sku, quantity) in enumerate(lines):
        if not isinstance(sku, str) or not sku:
            errors.append(FieldError(f"lines.{index}.sku", "must be a non-empty string"))
        elif isinstance(quantity, bool) or not isinstance(quantity, int) or quantity <= 0:
            errors.append(FieldError(f"lines.{index}.quantity", "must be a positive integer"))
        else:
            merged[sku] = merged.get(sku, 0) + quantity
    if not merged and not errors:
        errors.append(FieldError("lines", "must not be empty"))
    if len(merged) > MAX_LINES:
        errors.append(FieldError("lines", f"at most {MAX_LINES} skus"))
    if errors:
        raise invalid("invalid reservation", *errors)
    return tuple(ReservationLine(sku, merged[sku]) for sku in sorted(merged))


def reserve(
    stock: Mapping[str, StockItem],
    order_id: str,
    lines: Iterable[tuple[str, int]],
    now: datetime,
    existing: Reservation | None = None,
    ttl: timedelta = DEFAULT_RESERVATION_TTL,
) -> StockChange:
    """Hold stock for `order_id`, all lines or none.

    Idempotent: if `existing` (the order's reservation) is given and has the same lines, it is
    returned unchanged (`created=False`), whatever happened to it since, except that a closed
    (released/expired) one is refused: its units may have been sold to someone else, so the
    saga must not go on believing it holds them. Different lines for the same order: conflict.
    """
    if not order_id:
        raise invalid("order id is required", FieldError("order_id", "must not be empty"))
    wanted = normalise_lines(lines)
    if existing is not None:
        return _replay(existing, wanted)
    shortages = [
        Shortage(line.sku, line.quantity, stock[line.sku].available if line.sku in stock else 0)
        for line in wanted
        if line.sku not in stock or stock[line.sku].available < line.quantity
    ]
    if shortages:
        raise out_of_stock(shortages)
    events: list[InventoryLow] = []
    for line in wanted:
        item = stock[line.sku]
        item.reserved += line.quantity
        events += item._after_change(now)
    reservation = Reservation(order_id, wanted, expires_at=now + ttl, created_at=now)
    return StockChange(reservation, created=True, events=events)


def _replay(existing: Reservation, wanted: tuple[ReservationLine, ...]) -> StockChange:
    if existing.status in (ReservationStatus.RELEASED, ReservationStatus.EXPIRED):
        raise conflict(
            f"the reservation of order {existing.order_id} is {existing.status.lower()}",
            "reservation_closed",
        )
    if existing.lines != wanted:
        raise conflict(
            f"order {existing.order_id} already holds a different reservation",
            "reservation_mismatch",
        )
    return StockChange(existing)


def _items_for(stock: Mapping[str, StockItem], reservation: Reservation) -> list[StockItem]:
    missing = [sku for sku in reservation.skus if sku not in stock]
    if missing:
        raise DomainError(f"stock rows missing for {missing}", ErrorCode.INTERNAL, "internal")
    return [stock[sku] for sku in reservation.skus]


def release(stock: Mapping[str, StockItem], reservation: Reservation, now: datetime) -> StockChange:
    """Give the units back (saga compensation, order cancelled). Idempotent.

    A held reservation frees its reserved units; a committed one (a paid order being
    cancelled and refunded) puts the sold units back on hand. Releasing twice does nothing.
    """
    if reservation.status in (ReservationStatus.RELEASED, ReservationStatus.EXPIRED):
        return StockChange(reservation)
    items = _items_for(stock, reservation)
    events: list[InventoryLow] = []
    for item, line in zip(items, reservation.lines, strict=True):
        if reservation.is_held:
            item.reserved -= line.quantity
        else:
            item.on_hand += line.quantity
        events += item._after_change(now)
    reservation.restocked = reservation.status is ReservationStatus.COMMITTED
    reservation.status = ReservationStatus.RELEASED
    return StockChange(reservation, events=events)


def release_order(
    stock: Mapping[str, StockItem], order_id: str, existing: Reservation | None, now: datetime
) -> StockChange:
    """`ReleaseStock(order_id)`: release the order's reservation, or, when there is none yet
    (the saga gave up while its `ReserveStock` was still in flight), record an empty RELEASED
    tombstone so that reservation request, arriving late, is refused instead of holding stock.
    """
    if existing is not None:
        return release(stock, existing, now)
    tombstone = Reservation(
        order_id, (), expires_at=now, created_at=now, status=ReservationStatus.RELEASED
    )
    return StockChange(tombstone, created=True)


def commit(stock: Mapping[str, StockItem], reservation: Reservation, now: datetime) -> StockChange:
    """The order is paid: reserved units become sold (`on_hand` and `reserved` both drop, so
    `available` is unchanged and no alert can fire). Idempotent.

    A held reservation past its expiry that the sweeper has not reached yet still holds its
    units, so committing it is safe; a released/expired one is refused (units may be gone),
    which makes the saga refund instead of overselling.
    """
    if reservation.status is ReservationStatus.COMMITTED:
        return StockChange(reservation)
    if not reservation.is_held:
        raise conflict(
            f"the reservation of order {reservation.order_id} is {reservation.status.lower()}",
            "reservation_closed",
        )
    items = _items_for(stock, reservation)
    events: list[InventoryLow] = []
    for item, line in zip(items, reservation.lines, strict=True):
        item.on_hand -= line.quantity
        item.reserved -= line.quantity
        events += item._after_change(now)
    reservation.status = ReservationStatus.COMMITTED
    return StockChange(reservation, events=events)


def expire(stock: Mapping[str, StockItem], reservation: Reservation, now: datetime) -> StockChange:
    """Release an abandoned reservation once its time is up (no-op otherwise), so a saga that
    died mid-way never keeps stock off the shelf forever."""
    if not reservation.is_expired(now):
        return StockChange(reservation)
    change = release(stock, reservation, now)
    reservation.status = ReservationStatus.EXPIRED
    return change


def due_for_expiry(reservations: Iterable[Reservation], now: datetime) -> list[Reservation]:
    """The held reservations whose time is up, oldest first (what the sweeper processes)."""
    return sorted((r for r in reservations if r.is_expired(now)), key=lambda r: r.expires_at)


SKU_PATTERN: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_RESERVATION_TTL: Final = timedelta(hours=24)


def sku_problem(value: object) -> str | None:
    """The catalog's sku alphabet (product-service enforces the same rule): skus appear in
    URLs (`/inventory/{sku}`) and Kafka keys."""
    if not isinstance(value, str) or not SKU_PATTERN.fullmatch(value):
        return "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
    return None


def check_sku(sku: object) -> str:
    """`sku` if valid, else INVALID_ARGUMENT naming the `sku` field."""
    if problem := sku_problem(sku):
        raise invalid("invalid sku", FieldError("sku", problem))
    assert isinstance(sku, str)
    return sku


def reservation_ttl(seconds: int) -> timedelta:
    """The hold time a `ReserveStock` asks for: 0 means the default; at most a day, so an
    abandoned saga cannot keep stock off the shelf for long."""
    if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < 0:
        raise invalid("invalid ttl", FieldError("ttl_seconds", "must not be negative"))
    if seconds == 0:
        return DEFAULT_RESERVATION_TTL
    ttl = timedelta(seconds=seconds)
    if ttl > MAX_RESERVATION_TTL:
        raise invalid("invalid ttl", FieldError("ttl_seconds", "must be at most 86400"))
    return ttl
