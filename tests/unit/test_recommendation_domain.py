"""Recommendation rules (pure): feature keys, event -> update commands, and the ranking."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from emporium.chassis.errors import DomainError
from emporium.contracts.events import (
    OrderCreatedV1,
    OrderLineV1,
    ProductUpdatedV1,
    UserRegisteredV1,
)
from emporium.services.recommendation.domain import (
    BEST_BAND,
    BEST_KEY,
    CO_BAND,
    DELETED_KEY,
    MAX_PAIRED_PRODUCTS,
    SIMILAR_BAND,
    HSet,
    ProductSignals,
    Purchase,
    Recommendation,
    SAdd,
    SRem,
    UserSignals,
    ZIncrBy,
    basket_key,
    bought_key,
    category_key,
    co_key,
    counted_key,
    counts_as_purchase,
    outcome_key,
    parse_request,
    product_key,
    product_updates,
    purchase_updates,
    recommend,
    response,
    user_key,
    user_updates,
)

NOW = datetime(2025, 1, 2, tzinfo=UTC)


def order(*lines: tuple[str, int], user: str = "u1") -> OrderCreatedV1:
    return OrderCreatedV1(
        order_id="o1",
        user_id=user,
        lines=[OrderLineV1(sku=s, quantity=q, unit_price=Decimal("1")) for s, q in lines],
        total=Decimal("1"),
        currency="USD",
    )


def product(pid: str = "p1", category: str = "audio", deleted: bool = False) -> ProductUpdatedV1:
    return ProductUpdatedV1(
        product_id=pid, name="Thing", category=category, price=Decimal("1"), deleted=deleted
    )


# -- keys ------------------------------------------------------------------------------------


def test_key_scheme() -> None:
    assert co_key("p1") == "co:p1"
    assert category_key("audio") == "cat:audio"
    assert bought_key("u1") == "user:u1:bought"
    assert user_key("u1") == "user:u1"
    assert product_key("p1") == "product:p1"
    assert (basket_key("o1"), outcome_key("o1")) == ("basket:o1", "outcome:o1")
    assert counted_key("o1") == "counted:o1"
    assert (BEST_KEY, DELETED_KEY) == ("best", "deleted")


# -- updates ---------------------------------------------------------------------------------


def test_a_basket_survives_its_trip_through_the_kv_store() -> None:
    purchase = Purchase("u1", {"A": 4, "B": 2})
    assert Purchase.from_json(purchase.to_json().encode()) == purchase


def test_only_a_captured_payment_makes_a_purchase() -> None:
    assert counts_as_purchase("captured")
    assert not counts_as_purchase("declined")
    assert not counts_as_purchase(None)


def test_purchase_merges_lines_of_the_same_product() -> None:
    assert Purchase.from_event(order(("A", 1), ("B", 2), ("A", 3))).units == {"A": 4, "B": 2}


def test_purchase_updates_best_sellers_bought_set_and_pairs() -> None:
    updates = purchase_updates(Purchase("u1", {"B": 2, "A": 1, "C": 1}))
    assert [u for u in updates if isinstance(u, ZIncrBy) and u.key == BEST_KEY] == [
        ZIncrBy("best", "A", 1.0),
        ZIncrBy("best", "B", 2.0),
        ZIncrBy("best", "C", 1.0),
    ]
    assert SAdd("user:u1:bought", ("A", "B", "C")) in updates
    pairs = {(u.key, u.member) for u in updates if isinstance(u, ZIncrBy) and u.key != BEST_KEY}
    assert pairs == {
        ("co:A", "B"), ("co:A", "C"), ("co:B", "A"), ("co:B", "C"), ("co:C", "A"), ("co:C", "B"),
    }  # fmt: skip
    assert all(u.by == 1.0 for u in updates if isinstance(u, ZIncrBy) and u.key != BEST_KEY)


def test_single_product_order_has_no_pairs() -> None:
    updates = purchase_updates(Purchase("u1", {"A": 5}))
    assert updates == [ZIncrBy("best", "A", 5.0), SAdd("user:u1:bought", ("A",))]


def test_empty_purchase_changes_nothing() -> None:
    assert purchase_updates(Purchase("u1", {})) == []


def test_pairs_are_bounded_for_huge_orders() -> None:
    units = {f"p{i:03}": 1 for i in range(50)}
    updates = purchase_updates(Purchase("u1", units))
    pairs = [u for u in updates if isinstance(u, ZIncrBy) and u.key.startswith("co:")]
    assert len(pairs) == MAX_PAIRED_PRODUCTS * (MAX_PAIRED_PRODUCTS - 1)
    assert len([u for u in updates if isinstance(u, ZIncrBy) and u.key == BEST_KEY]) == 50


def test_new_product_joins_its_category() -> None:
    updates = product_updates(product(), previous_category=None)
    assert updates == [
        SRem("deleted", ("p1",)),
        HSet("product:p1", {"category": "audio", "name": "Thing"}),
        SAdd("cat:audio", ("p1",)),
    ]


def test_category_change_leaves_the_old_set() -> None:
    updates = product_updates(product(category="video"), previous_category="audio")
    assert updates[0] == SRem("cat:audio", ("p1",))
    assert SAdd("cat:video", ("p1",)) in updates


def test_same_category_does_not_remove() -> None:
    updates = product_updates(product(), previous_category="audio")
    assert not any(isinstance(u, SRem) and u.key.startswith("cat:") for u in updates)


def test_deleted_product_is_marked_and_leaves_its_category() -> None:
    updates = product_updates(product(deleted=True), previous_category="audio")
    assert updates == [SRem("cat:audio", ("p1",)), SAdd("deleted", ("p1",))]


def test_uncategorised_product_joins_no_set() -> None:
    updates = product_updates(product(category=""), previous_category=None)
    assert not any(isinstance(u, SAdd) for u in updates)


def test_user_registered_records_a_profile() -> None:
    event = UserRegisteredV1(user_id="u1", email="a@b.c", registered_at=NOW)
    assert user_updates(event) == [HSet("user:u1", {"registered_at": NOW.isoformat()})]


def test_updates_are_deterministic_for_redelivery() -> None:
    event = order(("B", 1), ("A", 2))
    first = purchase_updates(Purchase.from_event(event))
    assert first == purchase_updates(Purchase.from_event(event))


# -- request ---------------------------------------------------------------------------------


def test_request_defaults_and_limits() -> None:
    assert parse_request(None, None).limit == 10
    assert parse_request("p1", "50", "u1") == parse_request(" p1 ", "50", "u1")
    req = parse_request("", "", "")
    assert (req.product_id, req.user_id) == (None, None)


@pytest.mark.parametrize("limit", ["0", "101", "many"])
def test_bad_limit_names_limit(limit: str) -> None:
    with pytest.raises(DomainError) as caught:
        parse_request(None, limit)
    assert [f.field for f in caught.value.fields] == ["limit"]
    assert caught.value.http_status == 400


def test_overlong_product_id_names_product_id() -> None:
    with pytest.raises(DomainError) as caught:
        parse_request("x" * 500, None)
    assert [f.field for f in caught.value.fields] == ["product_id"]


# -- ranking ---------------------------------------------------------------------------------

BEST = [("B1", 100.0), ("B2", 50.0), ("A2", 10.0), ("P", 5.0), ("D", 1.0)]


def ids(recs: list[Recommendation]) -> list[str]:
    return [r.product_id for r in recs]


def test_product_tiers_come_in_order() -> None:
    signals = ProductSignals(
        "P", co_purchased=[("C1", 4.0), ("C2", 2.0)], category_members=["A1", "A2", "P"]
    )
    recs = recommend(limit=10, best_sellers=BEST, product=signals)
    assert ids(recs) == ["C1", "C2", "A2", "A1", "B1", "B2", "D"]


def test_product_never_itself_never_deleted_never_twice() -> None:
    signals = ProductSignals(
        "P",
        co_purchased=[("P", 9.0), ("D", 5.0), ("B1", 3.0), ("C", 1.0)],
        category_members=["B1", "C", "D", "P"],
    )
    recs = recommend(limit=50, best_sellers=BEST, deleted={"D"}, product=signals)
    got = ids(recs)
    assert "P" not in got
    assert "D" not in got
    assert len(got) == len(set(got))
    assert got[:2] == ["B1", "C"]  # the co-purchase tier wins over later tiers


def test_scores_are_in_their_bands_and_decreasing() -> None:
    signals = ProductSignals(
        "P", co_purchased=[("C1", 4.0), ("C2", 2.0)], category_members=["A1", "A2"]
    )
    recs = recommend(limit=10, best_sellers=BEST, product=signals)
    scores = {r.product_id: r.score for r in recs}
    assert scores["C1"] == CO_BAND[1] == 1.0
    assert scores["C2"] == pytest.approx(0.8)
    assert scores["A2"] == SIMILAR_BAND[1]
    assert scores["A1"] == SIMILAR_BAND[0]
    assert scores["B1"] == BEST_BAND[1]
    assert all(0.0 <= s <= 1.0 for s in scores.values())
    assert [r.score for r in recs] == sorted((r.score for r in recs), reverse=True)


def test_limit_is_respected() -> None:
    signals = ProductSignals("P", co_purchased=[(f"C{i}", float(i)) for i in range(20)])
    assert len(recommend(limit=3, best_sellers=BEST, product=signals)) == 3


def test_cold_start_is_best_sellers() -> None:
    recs = recommend(limit=2, best_sellers=BEST)
    assert ids(recs) == ["B1", "B2"]
    assert recs[0].score == BEST_BAND[1]


def test_nothing_known_gives_nothing() -> None:
    assert recommend(limit=10, best_sellers=[]) == []


def test_ties_are_broken_by_id_for_stable_answers() -> None:
    signals = ProductSignals("P", co_purchased=[("Z", 1.0), ("A", 1.0), ("M", 1.0)])
    assert ids(recommend(limit=3, best_sellers=[], product=signals)) == ["A", "M", "Z"]


def test_user_gets_co_purchases_of_what_they_bought_minus_bought() -> None:
    user = UserSignals(
        "u1",
        bought=frozenset({"X", "Y"}),
        co_purchased={"X": [("Y", 9.0), ("R1", 2.0), ("R2", 1.0)], "Y": [("R2", 3.0), ("X", 9.0)]},
    )
    recs = recommend(limit=10, best_sellers=[("X", 99.0), ("B1", 5.0)], user=user)
    assert ids(recs) == ["R2", "R1", "B1"]  # R2: 1 + 3 = 4 beats R1: 2
    assert recs[0].score == 1.0
    assert CO_BAND[0] <= recs[1].score < 1.0


def test_user_and_product_together_excludes_both() -> None:
    user = UserSignals("u1", bought=frozenset({"C1"}))
    signals = ProductSignals("P", co_purchased=[("C1", 5.0), ("C2", 1.0)])
    recs = recommend(limit=10, best_sellers=[], product=signals, user=user)
    assert ids(recs) == ["C2"]


def test_deleted_best_seller_is_skipped() -> None:
    assert ids(recommend(limit=2, best_sellers=BEST, deleted=["B1"])) == ["B2", "A2"]


def test_response_shape() -> None:
    recs = recommend(limit=1, best_sellers=BEST)
    assert response(recs) == {"items": [{"product_id": "B1", "score": 0.2}]}
