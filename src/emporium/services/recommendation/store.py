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
    SEEN_TTL_SECONDS,
    HSet,
    ProductSignals,
    SAdd,
    Scored,
    SRem,
    Update,
    UserSignals,
    ZIncrBy,
    bought_key,
    category_key,
    co_key,
    product_key,
    seen_key,
)

# A user's co-purchases are read for at most this many of the products they bought.
MAX_BOUGHT_READ: Final = 50


class FeatureStore:
    """The feature store of one kv namespace."""

    def __init__(self, kv: KeyValueStore) -> None:
        self.kv = kv

    async def claim(self, event_id: str) -> bool:
        """Mark `event_id` as applied; False when it already was (a redelivery)."""
        return await self.kv.set_if_absent(seen_key(event_id), "1", ttl=SEEN_TTL_SECONDS)

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
