"""order-service use cases (`orders`) and the checkout saga runner (`checkout`)."""

from emporium.services.order.handlers.checkout import CheckoutRunner
from emporium.services.order.handlers.orders import OrderPage, Orders, Placed

__all__ = ["CheckoutRunner", "OrderPage", "Orders", "Placed"]
