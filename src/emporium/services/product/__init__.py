"""product-service: the catalog (relational).

The authority on products and their prices (order-service reads prices here, never from the
client). Produces `product.updated` for every change, deletes included.
"""
