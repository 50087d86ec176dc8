"""Use cases of recommendation-service: fold events into the features, and recommend.

Idempotency (the kv store has no transactions): `order.created` increments counters, so its
handler first claims `seen:{event id}` with `set_if_absent` and skips a redelivery; a crash
between the claim and the increments loses that order's signal (at most once), the lesser
harm for statistics. `product.updated` and `user.registered` only set members and fields, so
applying them twice converges on the same features and needs no claim.
"""

from __future__ import annotations

from typing import Any

from emporium.chassis.rpc.identity import Caller, require_owner_or_admin
from emporium.contracts.events import OrderCreatedV1, ProductUpdatedV1, UserRegisteredV1
from emporium.services.recommendation import domain
from emporium.services.recommendation.store import FeatureStore


async def on_order_created(store: FeatureStore, event_id: str, event: OrderCreatedV1) -> bool:
    """Count the purchase once; False for a redelivery."""
    if not await store.claim(event_id):
        return False
    await store.apply(domain.purchase_updates(domain.Purchase.from_event(event)))
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
