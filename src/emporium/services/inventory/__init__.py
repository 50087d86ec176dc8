"""inventory-service: stock levels and reservations (relational), an availability cache (kv).

Reservations are idempotent by order id and expire by themselves if a saga is abandoned, so
stock is never oversold nor held forever. Produces `inventory.low` once per threshold
crossing; consumes `order.created`.
"""
