"""order-service use cases (`orders`), the checkout saga runner (`checkout`) and the
operator's saga commands (`sagas`)."""

from emporium.services.order.handlers.checkout import CheckoutRunner
from emporium.services.order.handlers.orders import OrderPage, Orders, Placed
from emporium.services.order.handlers.sagas import SagaPage, Sagas

__all__ = ["CheckoutRunner", "OrderPage", "Orders", "Placed", "SagaPage", "Sagas"]
