"""Every read and write of recommendation-service's features (the kv port).

Writes are the domain's update commands applied one by one (the kv store has no
transactions); reads gather what `domain.recommend` ranks. Key layout: see the domain module.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from emporium.chassis.kv.base import KeyValueStore
from emporium.services.recommendation.domain import (
    BEST_KEY,
    CANDIDATE_DEPTH,
    DELETED_KEY,
    ORDER_TTL_SECONDS,
    HSet,
    ProductSignals,
    Purchase,
    SAdd,
    Scored,
    SRem,
    Update,
    UserSignals,
    ZIncrBy,
    basket_key,
    bought_key,
    category_key,
    co_key,
    counted_key,
    outcome_key,
    product_key,
)

# A user's co-purchases are read for at most this many of the products they bought.
MAX_BOUGHT_READ: Final = 50


class FeatureStore:
    """The feature store of one kv namespace."""

    def __init__(self, kv: KeyValueStore) -> None:
        self.kv = kv

    async def keep_basket(self, order_id: str, purchase: Purchase) -> None:
        await self.kv.set(basket_key(order_id), purchase.to_json(), ttl=ORDER_TTL_SECONDS)

    async def basket(self, order_id: str) -> Purchase | None:
        raw = await self.kv.get(basket_key(order_id))
        return Purchase.from_json(raw) if raw else None

    async def keep_outcome(self, order_id: str, status: str) -> None:
        await self.kv.set(outcome_key(order_id), status, ttl=ORDER_TTL_SECONDS)

    async def outcome(self, order_id: str) -> str | None:
        raw = await self.kv.get(outcome_key(order_id))
        return raw.decode() if raw else None

    async def claim_order(self, order_id: str) -> bool:
        """Mark the order's purchase as counted; False when it already was."""
        return await self.kv.set_if_absent(counted_key(order_id), "1", ttl=ORDER_TTL_SECONDS)

    async def apply(self, updates: Iterable[Update]) -> None:
        for update in updates:
            if isinstance(update, ZIncrBy):
                await self.kv.zincrby(update.key, update.member, update.by)
            elif isinstance(update, SAdd):
                await self.kv.sadd(update.key, *update.members)
            elif isinstance(update, SRem):
                await self.kv.srem(update.key, *update.members)
            elif isinstance(update, HSet):
                await self.kv.hset(update.key, dict(update.mapping))

    async def category_of(self, product_id: str) -> str | None:
        raw = await self.kv.hget(product_key(product_id), "category")
        return raw.decode() if raw else None

    async def best_sellers(self) -> Scored:
        return await self.kv.zrevrange(BEST_KEY, 0, CANDIDATE_DEPTH - 1)

    async def deleted(self) -> set[str]:
        return await self.kv.smembers(DELETED_KEY)

    async def product_signals(self, product_id: str) -> ProductSignals:
        co = await self.kv.zrevrange(co_key(product_id), 0, CANDIDATE_DEPTH - 1)
        category = await self.category_of(product_id)
        members = await self.kv.smembers(category_key(category)) if category else set()
        return ProductSignals(product_id, co, members)

    async def user_signals(self, user_id: str) -> UserSignals:
        bought = await self.kv.smembers(bought_key(user_id))
        co = {
            pid: await self.kv.zrevrange(co_key(pid), 0, CANDIDATE_DEPTH - 1)
            for pid in sorted(bought)[:MAX_BOUGHT_READ]
        }
        return UserSignals(user_id, frozenset(bought), co)
