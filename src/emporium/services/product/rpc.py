"""gRPC entrypoint of product-service: translates requests and delegates to handlers.

Proto3 scalars have no "absent": for CreateProduct every field is passed to the domain
(an empty name is reported as blank); for UpdateProduct only the fields that are set
(`optional`, or the `attributes`/`image_urls` wrapper messages) are changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from emporium.chassis.db import answers_unavailable_when_the_database_is_down
from emporium.contracts.rpc.product.v1 import product_pb2, product_pb2_grpc
from emporium.services.product.domain import AttributeValue, Product
from emporium.services.product.handlers import Catalog

SERVICE_NAME: str = product_pb2.DESCRIPTOR.services_by_name["ProductService"].full_name
SCALAR_FIELDS = ("sku", "name", "description", "category", "price_minor", "currency")


def _timestamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def attribute_from_proto(value: Any) -> AttributeValue:
    kind = value.WhichOneof("kind")
    if kind is None or kind == "null_value":
        return None
    result: AttributeValue = getattr(value, kind)
    return result


def attributes_from_proto(values: Mapping[str, Any]) -> dict[str, AttributeValue]:
    return {key: attribute_from_proto(value) for key, value in values.items()}


def fill_attribute(target: Any, value: AttributeValue) -> None:
    """Set the oneof member that keeps the JSON type (bool is checked before int)."""
    if value is None:
        target.null_value = True
    elif isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int):
        target.int_value = value
    elif isinstance(value, float):
        target.double_value = value
    else:
        target.string_value = str(value)


def product_to_proto(product: Product) -> product_pb2.Product:
    message = product_pb2.Product(
        id=product.id,
        sku=product.sku,
        name=product.name,
        description=product.description,
        category=product.category,
        price_minor=product.price_minor,
        currency=product.currency,
        image_urls=list(product.image_urls),
        created_at=_timestamp(product.created_at),
        updated_at=_timestamp(product.updated_at),
    )
    for key, value in product.attributes.items():
        fill_attribute(message.attributes[key], value)
    return message


def update_fields(request: Any) -> dict[str, object]:
    changes: dict[str, object] = {
        name: getattr(request, name) for name in SCALAR_FIELDS if request.HasField(name)
    }
    if request.HasField("attributes"):
        changes["attributes"] = attributes_from_proto(request.attributes.values)
    if request.HasField("image_urls"):
        changes["image_urls"] = list(request.image_urls.urls)
    return changes


class ProductServicer(product_pb2_grpc.ProductServiceServicer):
    """`ProductService` (product.proto)."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    @answers_unavailable_when_the_database_is_down
    async def CreateProduct(self, request: Any, context: Any) -> product_pb2.Product:
        fields: dict[str, object] = {name: getattr(request, name) for name in SCALAR_FIELDS}
        fields["attributes"] = attributes_from_proto(request.attributes)
        return product_to_proto(await self.catalog.create_product(fields))

    @answers_unavailable_when_the_database_is_down
    async def GetProduct(self, request: Any, context: Any) -> product_pb2.Product:
        return product_to_proto(await self.catalog.get_product(request.id))

    @answers_unavailable_when_the_database_is_down
    async def GetProducts(self, request: Any, context: Any) -> product_pb2.GetProductsResponse:
        batch = await self.catalog.get_products(list(request.ids))
        return product_pb2.GetProductsResponse(
            products=[product_to_proto(p) for p in batch.products],
            missing_ids=batch.missing_ids,
        )

    @answers_unavailable_when_the_database_is_down
    async def UpdateProduct(self, request: Any, context: Any) -> product_pb2.Product:
        product = await self.catalog.update_product(request.id, update_fields(request))
        return product_to_proto(product)

    @answers_unavailable_when_the_database_is_down
    async def DeleteProduct(self, request: Any, context: Any) -> product_pb2.DeleteProductResponse:
        await self.catalog.delete_product(request.id)
        return product_pb2.DeleteProductResponse()

    @answers_unavailable_when_the_database_is_down
    async def ListProducts(self, request: Any, context: Any) -> product_pb2.ListProductsResponse:
        page = await self.catalog.list_products(request.category, request.limit, request.cursor)
        return product_pb2.ListProductsResponse(
            items=[product_to_proto(p) for p in page.items], next_cursor=page.next_cursor
        )

    @answers_unavailable_when_the_database_is_down
    async def AddProductImage(self, request: Any, context: Any) -> product_pb2.Product:
        product = await self.catalog.add_image(request.product_id, request.url)
        return product_to_proto(product)
