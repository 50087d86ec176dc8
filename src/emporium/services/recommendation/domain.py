"""Recommendation-service rules: the feature model in the kv store, the feature updates each
event causes, and the ranking.

Pure: no I/O. Events become lists of plain update commands (`ZIncrBy`, `SAdd`...) that the
handler applies to the kv port one by one; queries get the features the handler read
(`ProductSignals`, `UserSignals`) and return ranked `Recommendation`s.

Feature keys (all under the service's kv namespace):

| key | kind | holds |
|---|---|---|
| `co:{product}` | sorted set | products bought in one order with `product`, by orders |
| `cat:{category}` | set | ids of the products in `category` |
| `best` | sorted set | products by units sold |
| `user:{id}:bought` | set | products the user ordered |
| `user:{id}` | hash | `registered_at` (cold-start profile) |
| `product:{id}` | hash | `category`, `name` of the product |
| `deleted` | set | ids of deleted products (never recommended) |
| `basket:{order}` | string | the order's `Purchase` (JSON) from `order.created` (TTL) |
| `outcome:{order}` | string | the payment's final status from `order.completed` (TTL) |
| `counted:{order}` | string | claim: the order's purchase was counted (TTL) |

Only paid orders count: a declined payment is no purchase. The lines are only in
`order.created` and the outcome only in `order.completed`, and the two topics carry no order
between them, so each handler first stores what its event says (`basket:`, `outcome:`) and
then tries to settle: whichever of the two arrives second sees both and counts the purchase.
Idempotency: the kv store has no transactions, so settling claims `counted:{order}` with
`set_if_absent` *before* applying the increments: a redelivery (or both handlers seeing both
halves) counts once, and a crash between claim and apply loses that order's increments (at
most once). For statistics that is the better failure: a lost increment changes nothing
visible, a doubled one inflates counts for ever.

Scores are floats in [0, 1] in non-overlapping bands, so a score also tells where a
recommendation came from and the bands keep the order of the tiers:
co-purchase in [0.6, 1.0], same category in [0.3, 0.5], best sellers in [0.0, 0.2]. Inside
a band, the score is linear in the signal normalised by the strongest candidate of that band
(co-purchase count, units sold).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from emporium.chassis.errors import FieldError, invalid
from emporium.contracts.events import OrderCreatedV1, ProductUpdatedV1, UserRegisteredV1
from emporium.contracts.events.order_completed import PaymentStatus

DEFAULT_LIMIT: Final = 10
MAX_LIMIT: Final = 100  # the REST contract's list maximum (gateway and proto agree)
MAX_ID_LENGTH: Final = 128
# How many candidates the handler reads per sorted set: enough to fill MAX_LIMIT after
# excluding deleted, bought and duplicate products.
CANDIDATE_DEPTH: Final = 200
# Pairs are O(n^2) in the distinct products of an order; beyond this many products an order
# is a bulk purchase whose pairs say little, so only the first ones (by id) are paired.
MAX_PAIRED_PRODUCTS: Final = 20
# How long half of an order (its basket or its payment outcome) waits for the other half,
# and how long the counted claim is kept: far longer than any redelivery.
ORDER_TTL_SECONDS: Final = 7 * 24 * 3600

CO_BAND: Final = (0.6, 1.0)
SIMILAR_BAND: Final = (0.3, 0.5)
BEST_BAND: Final = (0.0, 0.2)

BEST_KEY: Final = "best"
DELETED_KEY: Final = "deleted"


def co_key(product_id: str) -> str:
    return f"co:{product_id}"


def category_key(category: str) -> str:
    return f"cat:{category}"


def bought_key(user_id: str) -> str:
    return f"user:{user_id}:bought"


def user_key(user_id: str) -> str:
    return f"user:{user_id}"


def product_key(product_id: str) -> str:
    return f"product:{product_id}"


def basket_key(order_id: str) -> str:
    return f"basket:{order_id}"


def outcome_key(order_id: str) -> str:
    return f"outcome:{order_id}"


def counted_key(order_id: str) -> str:
    return f"counted:{order_id}"


# -- update commands -------------------------------------------------------------------------


@dataclass(frozen=True)
class ZIncrBy:
    key: str
    member: str
    by: float


@dataclass(frozen=True)
class SAdd:
    key: str
    members: tuple[str, ...]


@dataclass(frozen=True)
class SRem:
    key: str
    members: tuple[str, ...]


@dataclass(frozen=True)
class HSet:
    key: str
    mapping: Mapping[str, str]


Update = ZIncrBy | SAdd | SRem | HSet


@dataclass(frozen=True)
class Purchase:
    """What the features need from an order: who bought which products, how many units."""

    user_id: str
    units: Mapping[str, int]  # product id -> units

    @classmethod
    def from_event(cls, event: OrderCreatedV1) -> Purchase:
        """Lines are keyed by `product_id` when the payload carries one (an optional field
        added later), else by `sku`: see docs/engagement.md."""
        units: dict[str, int] = {}
        for line in event.lines:
            product = line.product_id or line.sku
            units[product] = units.get(product, 0) + line.quantity
        return cls(event.user_id, units)

    def to_json(self) -> str:
        return json.dumps({"user_id": self.user_id, "units": dict(self.units)})

    @classmethod
    def from_json(cls, raw: bytes | str) -> Purchase:
        record = json.loads(raw)
        return cls(str(record["user_id"]), {str(p): int(n) for p, n in record["units"].items()})


def counts_as_purchase(outcome: str | None) -> bool:
    """Only a captured payment makes an order a purchase."""
    return outcome == PaymentStatus.CAPTURED.value


def purchase_updates(purchase: Purchase) -> list[Update]:
    """Best-seller units, the user's bought set, and one co-purchase increment per ordered
    pair of distinct products (both directions: `co:a` gains `b` and `co:b` gains `a`)."""
    products = sorted(p for p, n in purchase.units.items() if n > 0)
    updates: list[Update] = [ZIncrBy(BEST_KEY, p, float(purchase.units[p])) for p in products]
    if products:
        updates.append(SAdd(bought_key(purchase.user_id), tuple(products)))
    paired = products[:MAX_PAIRED_PRODUCTS]
    updates.extend(ZIncrBy(co_key(a), b, 1.0) for a in paired for b in paired if a != b)
    return updates


def product_updates(event: ProductUpdatedV1, previous_category: str | None) -> list[Update]:
    """Catalog features from `product.updated`. `previous_category` is what `product:{id}`
    held before (the handler reads it), so a move between categories leaves the old set."""
    pid = event.product_id
    updates: list[Update] = []
    if previous_category and (event.deleted or previous_category != event.category):
        updates.append(SRem(category_key(previous_category), (pid,)))
    if event.deleted:
        updates.append(SAdd(DELETED_KEY, (pid,)))
        return updates
    updates.append(SRem(DELETED_KEY, (pid,)))
    updates.append(HSet(product_key(pid), {"category": event.category, "name": event.name}))
    if event.category:
        updates.append(SAdd(category_key(event.category), (pid,)))
    return updates


def user_updates(event: UserRegisteredV1) -> list[Update]:
    """A cold-start profile: only when the user registered (no personal data is kept)."""
    return [HSet(user_key(event.user_id), {"registered_at": _iso(event.registered_at)})]


def _iso(moment: datetime) -> str:
    return moment.isoformat()


# -- query -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecommendationRequest:
    product_id: str | None
    user_id: str | None
    limit: int


def parse_request(
    product_id: str | None, limit: str | None, user_id: str | None = None
) -> RecommendationRequest:
    """Query parameters of `GET /recommendations` (`user_id` is the caller, if signed in)."""
    errors: list[FieldError] = []
    pid = (product_id or "").strip() or None
    if pid is not None and len(pid) > MAX_ID_LENGTH:
        errors.append(FieldError("product_id", f"at most {MAX_ID_LENGTH} characters"))
    size = DEFAULT_LIMIT
    if limit not in (None, ""):
        try:
            size = int(str(limit))
        except ValueError:
            size = 0
        if not 1 <= size <= MAX_LIMIT:
            errors.append(FieldError("limit", f"an integer between 1 and {MAX_LIMIT}"))
    if errors:
        raise invalid("invalid recommendation request", *errors)
    return RecommendationRequest(pid, user_id or None, size)


@dataclass(frozen=True)
class Recommendation:
    product_id: str
    score: float

    def as_item(self) -> dict[str, Any]:
        return {"product_id": self.product_id, "score": self.score}


Scored = Sequence[tuple[str, float]]  # (product id, raw signal), as zrevrange returns them


@dataclass(frozen=True)
class ProductSignals:
    """Features read for one product: `co_purchased` from `co:{id}`, `category_members`
    from `cat:{category of id}`."""

    product_id: str
    co_purchased: Scored = ()
    category_members: Iterable[str] = ()


@dataclass(frozen=True)
class UserSignals:
    """Features read for one user: `co_purchased[p]` is `co:{p}` for each bought `p`."""

    user_id: str
    bought: frozenset[str] = frozenset()
    co_purchased: Mapping[str, Scored] = field(default_factory=dict)


def recommend(
    *,
    limit: int,
    best_sellers: Scored,
    deleted: Iterable[str] = (),
    product: ProductSignals | None = None,
    user: UserSignals | None = None,
) -> list[Recommendation]:
    """Up to `limit` recommendations, best first.

    For a product: products bought together with it, then others of its category (most
    sold first), then best sellers. For a user without a product: co-purchases of what they
    bought, then best sellers. Never the product itself, never a deleted product, never
    twice; a signed-in user is not shown what they already bought.
    """
    excluded = set(deleted)
    if product is not None:
        excluded.add(product.product_id)
    if user is not None:
        excluded |= user.bought
    units = dict(best_sellers)
    tiers: list[tuple[tuple[float, float], Scored]] = []
    if product is not None:
        tiers.append((CO_BAND, product.co_purchased))
        similar = [(pid, units.get(pid, 0.0)) for pid in sorted(set(product.category_members))]
        tiers.append((SIMILAR_BAND, similar))
    elif user is not None:
        tiers.append((CO_BAND, _merge(user.co_purchased.values())))
    tiers.append((BEST_BAND, best_sellers))
    chosen: dict[str, float] = {}
    for band, candidates in tiers:
        for rec in _scored(band, [(p, s) for p, s in candidates if p not in excluded]):
            if len(chosen) >= limit:
                break
            chosen.setdefault(rec.product_id, rec.score)
    return [Recommendation(pid, score) for pid, score in chosen.items()][:limit]


def _merge(lists: Iterable[Scored]) -> list[tuple[str, float]]:
    """Co-purchase counts summed over several products' lists."""
    total: dict[str, float] = {}
    for scored in lists:
        for pid, signal in scored:
            total[pid] = total.get(pid, 0.0) + signal
    return list(total.items())


def _scored(band: tuple[float, float], candidates: Scored) -> list[Recommendation]:
    """Candidates ordered by signal (ties by id), scored linearly inside `band`."""
    ordered = sorted(candidates, key=lambda c: (-c[1], c[0]))
    strongest = max((signal for _, signal in ordered), default=0.0)
    low, high = band
    return [
        Recommendation(pid, round(low + (high - low) * _fraction(signal, strongest), 6))
        for pid, signal in ordered
    ]


def _fraction(signal: float, strongest: float) -> float:
    """`signal` relative to the strongest one, clamped to [0, 1]."""
    if strongest <= 0:
        return 0.0
    return min(max(signal / strongest, 0.0), 1.0)


def response(recommendations: Sequence[Recommendation]) -> dict[str, Any]:
    """`{items: [{product_id, score}]}`."""
    return {"items": [r.as_item() for r in recommendations]}
