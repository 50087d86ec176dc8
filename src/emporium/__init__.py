"""Emporium: an e-commerce microservices platform."""
