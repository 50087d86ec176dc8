"""Which services may call product-service's RPCs (`chassis.rpc.acl`: enforced by the server
interceptor; a method missing here is refused to everybody)."""

from __future__ import annotations

from emporium.chassis.rpc.acl import GATEWAY, CallerTable
from emporium.contracts.rpc.product.v1 import product_pb2

CALLERS = [
    CallerTable.of(
        product_pb2.DESCRIPTOR.services_by_name["ProductService"],
        {
            "CreateProduct": {GATEWAY},
            "GetProduct": {GATEWAY},
            "UpdateProduct": {GATEWAY},
            "DeleteProduct": {GATEWAY},
            "ListProducts": {GATEWAY},
            "AddProductImage": {GATEWAY},
            # authoritative prices for a checkout
            "GetProducts": {"order"},
        },
    )
]
