# mypy: disable-error-code="comparison-overlap"
"""Stock rules (pure): all-or-nothing idempotent reservations, release/commit/expiry, and the
`inventory.low` crossing rule; plus a random-sequence check that stock is never oversold."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from emporium.chassis.errors import DomainError, ErrorCode
from emporium.contracts.events.inventory_low import InventoryLowV1
from emporium.services.inventory.domain import (
    DEFAULT_RESERVATION_TTL,
    InventoryLow,
    Reservation,
    ReservationStatus,
    StockItem,
    check_sku,
    commit,
    due_for_expiry,
    expire,
    release,
    release_order,
    reservation_ttl,
    reserve,
)

NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def item(sku: str, on_hand: int, threshold: int = 2) -> StockItem:
    stock, _ = StockItem.create(sku, on_hand, threshold, NOW)
    return stock


def shelf(**levels: int) -> dict[str, StockItem]:
    return {sku: item(sku, on_hand) for sku, on_hand in levels.items()}


def test_available_and_view() -> None:
    stock = item("A", 10)
    stock.reserved = 3
    assert stock.available == 7
    assert stock.to_view() == {
        "sku": "A",
        "on_hand": 10,
        "reserved": 3,
        "available": 7,
        "low_stock_threshold": 2,
    }


@pytest.mark.parametrize(
    ("on_hand", "threshold", "field"),
    [(-1, 2, "on_hand"), ("3", 2, "on_hand"), (True, 2, "on_hand"), (3, -1, "low_stock_threshold")],
)
def test_set_stock_validates(on_hand: object, threshold: object, field: str) -> None:
    with pytest.raises(DomainError) as caught:
        StockItem.create("A", on_hand, threshold, NOW)
    assert caught.value.code is ErrorCode.INVALID_ARGUMENT
    assert [f.field for f in caught.value.fields] == [field]


def test_on_hand_cannot_drop_below_reserved() -> None:
    stock = shelf(A=5)
    reserve(stock, "o1", [("A", 4)], NOW)
    with pytest.raises(DomainError) as caught:
        stock["A"].set_stock(3, None, NOW)
    assert caught.value.reason == "below_reserved"
    assert caught.value.http_status == 409
    assert stock["A"].on_hand == 5


def test_reserve_holds_stock_and_sorts_merged_lines() -> None:
    stock = shelf(A=10, B=5)
    change = reserve(stock, "o1", [("B", 2), ("A", 1), ("B", 1)], NOW)
    assert change.created
    assert [(line.sku, line.quantity) for line in change.reservation.lines] == [("A", 1), ("B", 3)]
    assert change.reservation.expires_at == NOW + DEFAULT_RESERVATION_TTL
    assert (stock["A"].reserved, stock["B"].reserved) == (1, 3)
    assert (stock["A"].on_hand, stock["B"].available) == (10, 2)


def test_reserve_is_idempotent_by_order_id() -> None:
    stock = shelf(A=10)
    first = reserve(stock, "o1", [("A", 3)], NOW)
    again = reserve(stock, "o1", [("A", 3)], NOW, existing=first.reservation)
    assert again.reservation is first.reservation
    assert not again.created
    assert stock["A"].reserved == 3


def test_same_order_with_different_lines_is_a_conflict() -> None:
    stock = shelf(A=10)
    first = reserve(stock, "o1", [("A", 3)], NOW)
    with pytest.raises(DomainError) as caught:
        reserve(stock, "o1", [("A", 4)], NOW, existing=first.reservation)
    assert caught.value.reason == "reservation_mismatch"
    assert stock["A"].reserved == 3


def test_shortage_reserves_nothing_and_names_every_short_sku() -> None:
    stock = shelf(A=10, B=1, C=0)
    with pytest.raises(DomainError) as caught:
        reserve(stock, "o1", [("A", 2), ("B", 2), ("C", 1), ("GHOST", 1)], NOW)
    error = caught.value
    assert (error.code, error.reason, error.http_status) == (
        ErrorCode.CONFLICT,
        "out_of_stock",
        409,
    )
    assert [f.field for f in error.fields] == ["B", "C", "GHOST"]
    assert "B (requested 2, available 1)" in error.message
    assert all(s.reserved == 0 for s in stock.values())  # all-or-nothing


@pytest.mark.parametrize(
    "lines", [[], [("A", 0)], [("A", -1)], [("", 1)], [("A", True)], [("A", 1.5)]]
)
def test_reserve_validates_lines(lines: list[tuple[str, int]]) -> None:
    with pytest.raises(DomainError) as caught:
        reserve(shelf(A=10), "o1", lines, NOW)
    assert caught.value.code is ErrorCode.INVALID_ARGUMENT


def test_release_returns_units_and_is_idempotent() -> None:
    stock = shelf(A=10)
    reservation = reserve(stock, "o1", [("A", 4)], NOW).reservation
    release(stock, reservation, NOW)
    release(stock, reservation, NOW)
    assert reservation.status is ReservationStatus.RELEASED
    assert stock["A"].reserved == 0
    assert stock["A"].on_hand == 10


def test_a_released_reservation_cannot_be_reserved_or_committed_again() -> None:
    stock = shelf(A=10)
    reservation = reserve(stock, "o1", [("A", 4)], NOW).reservation
    release(stock, reservation, NOW)
    with pytest.raises(DomainError) as again:
        reserve(stock, "o1", [("A", 4)], NOW, existing=reservation)
    with pytest.raises(DomainError) as committed:
        commit(stock, reservation, NOW)
    assert again.value.reason == committed.value.reason == "reservation_closed"
    assert stock["A"].reserved == 0


def test_release_without_reservation_leaves_a_tombstone_refusing_a_late_reserve() -> None:
    stock = shelf(A=10)
    tombstone = release_order(stock, "o1", None, NOW).reservation
    assert tombstone.status is ReservationStatus.RELEASED
    with pytest.raises(DomainError) as caught:
        reserve(stock, "o1", [("A", 1)], NOW, existing=tombstone)
    assert caught.value.reason == "reservation_closed"
    assert stock["A"].reserved == 0


def test_commit_turns_reserved_into_sold_and_is_idempotent() -> None:
    stock = shelf(A=10)
    reservation = reserve(stock, "o1", [("A", 4)], NOW).reservation
    commit(stock, reservation, NOW)
    commit(stock, reservation, NOW)
    assert reservation.status is ReservationStatus.COMMITTED
    assert (stock["A"].on_hand, stock["A"].reserved, stock["A"].available) == (6, 0, 6)
    # A replayed reserve for the committed order is answered, not re-done.
    assert reserve(stock, "o1", [("A", 4)], NOW, existing=reservation).reservation is reservation


def test_releasing_a_committed_reservation_restocks_once() -> None:
    stock = shelf(A=10)
    reservation = reserve(stock, "o1", [("A", 4)], NOW).reservation
    commit(stock, reservation, NOW)
    release(stock, reservation, NOW)
    release(stock, reservation, NOW)
    assert reservation.restocked
    assert (stock["A"].on_hand, stock["A"].reserved) == (10, 0)


def test_expiry_releases_only_abandoned_reservations() -> None:
    stock = shelf(A=10)
    ttl = timedelta(minutes=1)
    old = reserve(stock, "old", [("A", 2)], NOW, ttl=ttl).reservation
    fresh = reserve(stock, "new", [("A", 3)], NOW + ttl, ttl=ttl).reservation
    paid = reserve(stock, "paid", [("A", 1)], NOW, ttl=ttl).reservation
    commit(stock, paid, NOW)
    sweep_at = NOW + ttl + timedelta(seconds=1)
    due = due_for_expiry([fresh, old, paid], sweep_at)
    assert due == [old]
    for reservation in (old, fresh, paid):
        expire(stock, reservation, sweep_at)
    assert old.status is ReservationStatus.EXPIRED
    assert fresh.status is ReservationStatus.HELD
    assert paid.status is ReservationStatus.COMMITTED
    assert (stock["A"].on_hand, stock["A"].reserved) == (9, 3)


def test_commit_of_an_overdue_but_unswept_reservation_is_safe() -> None:
    stock = shelf(A=3)
    reservation = reserve(stock, "o1", [("A", 3)], NOW, ttl=timedelta(seconds=1)).reservation
    commit(stock, reservation, NOW + timedelta(hours=1))
    assert (stock["A"].on_hand, stock["A"].reserved) == (0, 0)


def test_low_stock_fires_once_per_crossing() -> None:
    stock = shelf(A=10)
    stock["A"].set_stock(10, 5, NOW)  # threshold 5
    events: list[InventoryLow] = []
    for n in range(4):  # available 8, 6, 4 (crossing), 2
        events += reserve(stock, f"o{n}", [("A", 2)], NOW).events
    assert [(e.sku, e.available, e.threshold) for e in events] == [("A", 4, 5)]
    contract = InventoryLowV1.model_validate(events[0].payload())
    assert (contract.sku, contract.available, contract.threshold, contract.subject()) == (
        "A",
        4,
        5,
        "A",
    )
    # Rising to exactly the threshold does not re-arm; rising above it does.
    assert stock["A"].set_stock(13, None, NOW) == []  # reserved 8, available 5
    assert reserve(stock, "o9", [("A", 1)], NOW).events == []  # available 4, same dip
    assert stock["A"].set_stock(20, None, NOW) == []  # available 11: re-armed
    again = reserve(stock, "o10", [("A", 7)], NOW).events  # available 4: a new crossing
    assert [(e.available, e.threshold) for e in again] == [(4, 5)]


def test_low_stock_on_creation_release_and_threshold_change() -> None:
    _, events = StockItem.create("A", 1, 5, NOW)
    assert [e.available for e in events] == [1]  # a new item already low is announced
    stock = shelf(A=10)
    reservation = reserve(stock, "o1", [("A", 9)], NOW)
    assert [e.available for e in reservation.events] == [1]
    assert release(stock, reservation.reservation, NOW).events == []  # back to 10: re-armed
    assert [e.threshold for e in stock["A"].set_stock(10, 10, NOW)] == [10]


def test_commit_never_fires_low_stock() -> None:
    stock = shelf(A=10)
    reservation = reserve(stock, "o1", [("A", 8)], NOW)
    assert len(reservation.events) == 1
    assert commit(stock, reservation.reservation, NOW).events == []


def test_random_sequences_never_oversell() -> None:
    """Property: whatever the order of reserve/release/commit/expire/restock calls (duplicated,
    stale, for unknown skus), stock stays within bounds and units are conserved:
    on_hand + sold == received, reserved == units of held reservations."""
    for seed in range(60):
        rng = random.Random(seed)
        skus = ["A", "B", "C"]
        stock = {sku: item(sku, rng.randrange(0, 6), threshold=1) for sku in skus}
        received = {sku: stock[sku].on_hand for sku in skus}
        reservations: dict[str, Reservation] = {}
        now = NOW
        for step in range(200):
            now += timedelta(seconds=rng.randrange(0, 120))
            order = f"o{rng.randrange(0, 25)}"
            existing = reservations.get(order)
            action = rng.random()
            try:
                if action < 0.4:
                    lines = [(rng.choice([*skus, "X"]), rng.randrange(1, 4)) for _ in range(2)]
                    change = reserve(stock, order, lines, now, existing, ttl=timedelta(minutes=5))
                elif action < 0.55:
                    change = release_order(stock, order, existing, now)
                elif action < 0.75 and existing is not None:
                    change = commit(stock, existing, now)
                elif action < 0.85 and existing is not None:
                    change = expire(stock, existing, now)
                elif action < 0.9:
                    sku = rng.choice(skus)
                    extra = rng.randrange(0, 4)
                    received[sku] += extra
                    stock[sku].set_stock(stock[sku].on_hand + extra, None, now)
                    continue
                else:
                    continue
            except DomainError as error:
                refusal: str | None = error.reason
            else:
                refusal = None
                reservations[order] = change.reservation
                assert all(e.available <= e.threshold for e in change.events)
            assert refusal in {None, "out_of_stock", "reservation_closed", "reservation_mismatch"}
            _check_conservation(stock, reservations, received, (seed, step))


def _check_conservation(
    stock: dict[str, StockItem],
    reservations: dict[str, Reservation],
    received: dict[str, int],
    where: tuple[int, int],
) -> None:
    for sku, entry in stock.items():
        assert 0 <= entry.reserved <= entry.on_hand, where
        held = sum(
            line.quantity
            for r in reservations.values()
            if r.status is ReservationStatus.HELD
            for line in r.lines
            if line.sku == sku
        )
        sold = sum(
            line.quantity
            for r in reservations.values()
            if r.status is ReservationStatus.COMMITTED
            for line in r.lines
            if line.sku == sku
        )
        assert entry.reserved == held, where
        assert entry.on_hand + sold == received[sku], where
        assert entry.low_alerted == (entry.available <= entry.low_stock_threshold), where


@pytest.mark.parametrize("sku", ["HEAD-1", "a", "x.y_z-9", "A" * 64])
def test_valid_skus_pass(sku: str) -> None:
    assert check_sku(sku) == sku


@pytest.mark.parametrize("sku", ["", "-lead", "has space", "a/b", "A" * 65, "caf\u00e9"])
def test_invalid_skus_name_the_sku_field(sku: str) -> None:
    with pytest.raises(DomainError) as caught:
        check_sku(sku)
    assert caught.value.code == ErrorCode.INVALID_ARGUMENT
    assert [f.field for f in caught.value.fields] == ["sku"]


def test_reservation_ttl_defaults_and_bounds() -> None:
    assert reservation_ttl(0) == DEFAULT_RESERVATION_TTL
    assert reservation_ttl(90) == timedelta(seconds=90)
    assert reservation_ttl(86_400) == timedelta(days=1)
    for bad in (-1, 86_401):
        with pytest.raises(DomainError) as caught:
            reservation_ttl(bad)
        assert [f.field for f in caught.value.fields] == ["ttl_seconds"]
