"""notification-service: notifications and delivery attempts (documents).

It turns `user.registered`, `order.created`, `order.completed` and `inventory.low` into
messages to users (welcome, order confirmation, payment receipt) and lists them.
"""
