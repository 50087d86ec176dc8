"""recommendation-service: recommendation features (kv).

"Bought together / similar" items, personalised for a user, best sellers as fallback; its
features are built from `user.registered`, `product.updated` and order events.
"""
