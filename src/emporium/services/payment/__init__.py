"""payment-service: payments, refunds and idempotency records (relational).

Charges are idempotent by order id, so a retried or duplicated charge never takes money
twice; no card data is stored, only provider tokens. Produces `order.completed` through its
outbox.
"""
