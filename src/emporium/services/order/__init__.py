"""order-service: orders, order items and the checkout saga log (relational).

It orchestrates checkout (reserve stock at inventory -> record the order and `order.created`
-> charge at payment -> PAID, with compensations on failure), persisting every saga step so a
restart resumes it. Produces `order.created`; consumes `order.completed`.
"""
