"""analytics-service: event fact tables (OLAP).

Stores `order.created`, `order.completed` and `inventory.low` as facts and answers the admin
reports (sales, top products, low stock).
"""
