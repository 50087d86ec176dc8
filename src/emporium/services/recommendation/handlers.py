"""Use cases of recommendation-service: fold events into the features, and recommend.

A purchase is counted when both halves of a paid order have arrived, `order.created` (the
lines) and `order.completed` (the payment's outcome), in either order; `settle` claims
`counted:{order}` first so a redelivery never counts twice (see the domain module).
`product.updated` and `user.registered` only set members and fields, so applying them twice
converges on the same features and needs no claim.
"""

from __future__ import annotations

from typing import Any

from emporium.chassis.rpc.identity import Caller, require_owner_or_admin
from emporium.contracts.events import (
    OrderCompletedV1,
    OrderCreatedV1,
    ProductUpdatedV1,
    UserRegisteredV1,
)
from emporium.services.recommendation import domain
from emporium.services.recommendation.store import FeatureStore


async def on_order_created(store: FeatureStore, event: OrderCreatedV1) -> bool:
    """Keep the order's basket; count it if its payment already succeeded."""
    await store.keep_basket(event.order_id, domain.Purchase.from_event(event))
    return await settle(store, event.order_id)


async def on_order_completed(store: FeatureStore, event: OrderCompletedV1) -> bool:
    """Keep the payment's outcome; count the basket if it is here and the payment succeeded."""
    await store.keep_outcome(event.order_id, event.status.value)
    return await settle(store, event.order_id)


async def settle(store: FeatureStore, order_id: str) -> bool:
    """Count a paid order's purchase exactly once both halves are known; True if this call
    counted it. Each handler writes its half before reading the other, so the second of the
    two always sees both."""
    if not domain.counts_as_purchase(await store.outcome(order_id)):
        return False
    purchase = await store.basket(order_id)
    if purchase is None or not await store.claim_order(order_id):
        return False
    await store.apply(domain.purchase_updates(purchase))
    return True


async def on_product_updated(store: FeatureStore, event: ProductUpdatedV1) -> None:
    previous = await store.category_of(event.product_id)
    await store.apply(domain.product_updates(event, previous))


async def on_user_registered(store: FeatureStore, event: UserRegisteredV1) -> None:
    await store.apply(domain.user_updates(event))


async def recommend(
    store: FeatureStore, caller: Caller, product_id: str, user_id: str, limit: str | None
) -> dict[str, Any]:
    """`GET /api/v1/recommendations`: `{items: [{product_id, score}]}`.

    Personalised for `user_id` when given (the caller itself, or anyone for an admin), else
    for the signed-in caller; anonymous callers get the product's neighbours and best sellers.
    """
    if user_id:
        require_owner_or_admin(user_id)
    elif caller.is_authenticated and not caller.is_system:
        user_id = caller.user_id
    request = domain.parse_request(product_id, limit, user_id)
    product = await store.product_signals(request.product_id) if request.product_id else None
    user = await store.user_signals(request.user_id) if request.user_id else None
    recommendations = domain.recommend(
        limit=request.limit,
        best_sellers=await store.best_sellers(),
        deleted=await store.deleted(),
        product=product,
        user=user,
    )
    return domain.response(recommendations)
