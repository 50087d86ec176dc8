"""`/api/v1/products`: the catalog (product-service) and image uploads (cdn-service)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Response, UploadFile
from pydantic import BaseModel, Field, StringConstraints

from emporium.chassis.errors import DomainError, ErrorCode, FieldError, invalid
from emporium.chassis.rpc.identity import acting_as
from emporium.contracts.rpc.cdn.v1 import cdn_pb2
from emporium.contracts.rpc.product.v1 import product_pb2
from emporium.services.api_gateway.backends import MAX_IMAGE_BYTES, UPLOAD_TIMEOUT_SECONDS
from emporium.services.api_gateway.convert import (
    JsonScalar,
    fill_attributes,
    next_cursor,
    product_to_json,
)
from emporium.services.api_gateway.schemas import (
    DEFAULT_LIMIT,
    Cursor,
    Limit,
    Product,
    ProductPage,
    RequestModel,
    problem_responses,
)
from emporium.services.api_gateway.security import Admin, Gateway

router = APIRouter(prefix="/api/v1/products", tags=["catalog"])

Sku = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Description = Annotated[str, StringConstraints(max_length=5000)]
Category = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
PriceMinor = Annotated[int, Field(ge=0, le=10**12, description="price in minor units")]
UPLOAD_CHUNK_BYTES = 1024 * 1024


class ProductBody(RequestModel):
    sku: Sku
    name: Name
    description: Description = ""
    category: Category
    price_minor: PriceMinor
    currency: Currency
    attributes: dict[str, JsonScalar] = Field(default_factory=dict)


class ProductPatch(RequestModel):
    """Any product field but `id` (sending `id` is a 400 naming it)."""

    sku: Sku | None = None
    name: Name | None = None
    description: Description | None = None
    category: Category | None = None
    price_minor: PriceMinor | None = None
    currency: Currency | None = None
    attributes: dict[str, JsonScalar] | None = None
    image_urls: list[str] | None = None


class ImageUrl(BaseModel):
    url: str


@router.post(
    "",
    status_code=201,
    response_model=Product,
    summary="Create a product (admin)",
    responses=problem_responses(401, 403, 409),
)
async def create_product(body: ProductBody, caller: Admin, backends: Gateway) -> dict[str, Any]:
    request = product_pb2.CreateProductRequest(
        sku=body.sku,
        name=body.name,
        description=body.description,
        category=body.category,
        price_minor=body.price_minor,
        currency=body.currency,
    )
    fill_attributes(request.attributes, body.attributes)
    with acting_as(caller):
        product = await backends.product.CreateProduct(request)
    return product_to_json(product)


@router.get(
    "",
    response_model=ProductPage,
    summary="A page of products, optionally of one category",
    responses=problem_responses(),
)
async def list_products(
    backends: Gateway,
    category: str | None = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> dict[str, Any]:
    page = await backends.product.ListProducts(
        product_pb2.ListProductsRequest(category=category or "", limit=limit, cursor=cursor or "")
    )
    return {
        "items": [product_to_json(p) for p in page.items],
        "next_cursor": next_cursor(page.next_cursor),
    }


@router.get(
    "/{id}",
    response_model=Product,
    summary="One product",
    responses=problem_responses(404),
)
async def get_product(id: str, backends: Gateway) -> dict[str, Any]:
    product = await backends.product.GetProduct(product_pb2.GetProductRequest(id=id))
    return product_to_json(product)


@router.patch(
    "/{id}",
    response_model=Product,
    summary="Change a product (admin; only the fields sent change)",
    responses=problem_responses(401, 403, 404, 409),
)
async def update_product(
    id: str, body: ProductPatch, caller: Admin, backends: Gateway
) -> dict[str, Any]:
    request = product_pb2.UpdateProductRequest(id=id)
    for name in ("sku", "name", "description", "category", "price_minor", "currency"):
        value = getattr(body, name)
        if value is not None:
            setattr(request, name, value)
    if body.attributes is not None:
        request.attributes.SetInParent()
        fill_attributes(request.attributes.values, body.attributes)
    if body.image_urls is not None:
        request.image_urls.SetInParent()
        request.image_urls.urls.extend(body.image_urls)
    with acting_as(caller):
        product = await backends.product.UpdateProduct(request)
    return product_to_json(product)


@router.delete(
    "/{id}",
    status_code=204,
    response_class=Response,
    summary="Delete a product (admin; it leaves search within seconds)",
    responses=problem_responses(401, 403, 404),
)
async def delete_product(id: str, caller: Admin, backends: Gateway) -> Response:
    with acting_as(caller):
        await backends.product.DeleteProduct(product_pb2.DeleteProductRequest(id=id))
    return Response(status_code=204)


async def read_limited(upload: UploadFile, limit: int) -> bytes:
    """The upload's bytes; 413 as soon as it exceeds `limit` (nothing larger is kept)."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await upload.read(UPLOAD_CHUNK_BYTES):
        size += len(chunk)
        if size > limit:
            raise DomainError(
                f"the image is larger than {limit // (1024 * 1024)} MiB",
                ErrorCode.PAYLOAD_TOO_LARGE,
                "too_large",
                [FieldError("file", "too large")],
            )
        chunks.append(chunk)
    if size == 0:
        raise invalid("the file is empty", FieldError("file", "empty file"))
    return b"".join(chunks)


@router.post(
    "/{id}/images",
    status_code=201,
    response_model=ImageUrl,
    summary="Upload a product image (admin; JPEG, PNG or WebP, at most 10 MiB)",
    responses=problem_responses(401, 403, 404, 413, 415),
)
async def upload_image(
    id: str,
    caller: Admin,
    backends: Gateway,
    file: Annotated[UploadFile, File(description="the image (JPEG, PNG or WebP)")],
) -> ImageUrl:
    content = await read_limited(file, MAX_IMAGE_BYTES)
    with acting_as(caller):
        # 404 before storing anything for a product that does not exist.
        await backends.product.GetProduct(product_pb2.GetProductRequest(id=id))
        # cdn decides "is this an image" from the bytes, not the declared type (415).
        image = await backends.cdn.UploadImage(
            cdn_pb2.UploadImageRequest(
                content=content,
                content_type=file.content_type or "",
                filename=file.filename or "",
                product_id=id,
            ),
            timeout=UPLOAD_TIMEOUT_SECONDS,
        )
        await backends.product.AddProductImage(
            product_pb2.AddProductImageRequest(product_id=id, url=image.url)
        )
    return ImageUrl(url=image.url)
