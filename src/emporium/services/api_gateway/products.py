"""`/api/v1/products`: the catalog (product-service) and image uploads (cdn-service)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Path, Response, UploadFile
from pydantic import BaseModel, Field, StringConstraints

from emporium.chassis.errors import DomainError, ErrorCode, FieldError, invalid
from emporium.chassis.rpc.identity import acting_as
from emporium.contracts.rpc.cdn.v1 import cdn_pb2
from emporium.contracts.rpc.product.v1 import product_pb2
from emporium.services.api_gateway.backends import MAX_IMAGE_BYTES, UPLOAD_TIMEOUT_SECONDS
from emporium.services.api_gateway.constraints import (
    JSON_INTEGER,
    MAX_PRICE_MINOR,
    MAX_PRODUCT_ID_LENGTH,
    MAX_SAFE_INTEGER,
    Sku,
    no_space,
    product_text,
)
from emporium.services.api_gateway.convert import (
    fill_attributes,
    next_cursor,
    product_to_json,
)
from emporium.services.api_gateway.schemas import (
    CURSOR_RULE,
    DEFAULT_LIMIT,
    Cursor,
    Limit,
    Product,
    ProductPage,
    RequestModel,
    link,
    problem_responses,
    semantic_fields,
)
from emporium.services.api_gateway.security import Admin, Gateway

router = APIRouter(prefix="/api/v1/products", tags=["catalog"])

# product-service's field rules (product/domain.py).
Name = Annotated[str, product_text(200)]
Description = Annotated[str, product_text(5000, required=False)]
Category = Annotated[str, product_text(100)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$"), Field(description="ISO 4217")]
PriceMinor = Annotated[
    int,
    Field(ge=0, le=MAX_PRICE_MINOR, description="price in minor units (1999 = 19.99)"),
    JSON_INTEGER,
]
AttributeKey = Annotated[str, StringConstraints(min_length=1, max_length=64)]
AttributeValue = (
    Annotated[str, StringConstraints(max_length=1000)]
    | Annotated[int, Field(ge=-MAX_SAFE_INTEGER, le=MAX_SAFE_INTEGER), JSON_INTEGER]
    | Annotated[float, Field(allow_inf_nan=False)]  # json.loads reads `NaN`, JSON has none
    | bool
    | None
)
Attributes = Annotated[
    dict[AttributeKey, AttributeValue],
    Field(max_length=50, description="at most 50 JSON scalars, keys of 1-64 characters"),
]
ImageLink = Annotated[str, no_space(2048)]
ProductId = Annotated[str, Path(min_length=1, max_length=MAX_PRODUCT_ID_LENGTH)]
UPLOAD_CHUNK_BYTES = 1024 * 1024
PRODUCT_PATH = "/api/v1/products/{id}"
INVENTORY_PATH = "/api/v1/inventory/{sku}"


def product_links(pointer: str, *, writes: bool = True) -> dict[str, Any]:
    """Links from a response holding a product at `pointer` (`""` for the body itself);
    `writes`: also to the admin's changes of that product (not from listings, whose
    products a follower did not create)."""
    id_ = {"id": f"$response.body#{pointer}/id"}
    sku = {"sku": f"$response.body#{pointer}/sku"}
    changes = {
        "UpdateProduct": link("patch", PRODUCT_PATH, id_),
        "DeleteProduct": link("delete", PRODUCT_PATH, id_),
        "UploadImage": link("post", PRODUCT_PATH + "/images", id_),
        "SetStock": link("put", INVENTORY_PATH, sku),
    }
    return {
        "GetProduct": link("get", PRODUCT_PATH, id_),
        **(changes if writes else {}),
        "GetStock": link("get", INVENTORY_PATH, sku),
        "Recommend": link("get", "/api/v1/recommendations", {"product_id": id_["id"]}),
        "Order": link(
            "post",
            "/api/v1/orders",
            body={
                "items": [{"product_id": id_["id"], "quantity": 1}],
                "payment_token": "tok_visa",
                "shipping_address": {
                    "line1": "1 Analytical St",
                    "city": "London",
                    "postal_code": "N1 9GU",
                    "country": "GB",
                },
            },
        ),
    }


class ProductBody(RequestModel):
    sku: Sku
    name: Name
    description: Description = ""
    category: Category
    price_minor: PriceMinor
    currency: Currency
    attributes: Attributes = Field(default_factory=dict)


class ProductPatch(RequestModel):
    """Any product field but `id` (sending `id` is a 400 naming it)."""

    sku: Sku | None = None
    name: Name | None = None
    description: Description | None = None
    category: Category | None = None
    price_minor: PriceMinor | None = None
    currency: Currency | None = None
    attributes: Attributes | None = None
    image_urls: Annotated[list[ImageLink], Field(max_length=20)] | None = None


class ImageUrl(BaseModel):
    url: str


@router.post(
    "",
    status_code=201,
    response_model=Product,
    summary="Create a product (admin)",
    responses={
        201: {"links": product_links("")},
        **problem_responses(401, 403, 413, described={409: "`duplicate_sku`"}),
    },
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
    responses={
        200: {
            "links": {
                **product_links("/items/0", writes=False),
                "NextPage": link(
                    "get", "/api/v1/products", {"cursor": "$response.body#/next_cursor"}
                ),
            }
        },
        **problem_responses(),
    },
    openapi_extra=semantic_fields({"cursor": CURSOR_RULE}),
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
    responses={200: {"links": product_links("", writes=False)}, **problem_responses(404)},
)
async def get_product(id: ProductId, backends: Gateway) -> dict[str, Any]:
    product = await backends.product.GetProduct(product_pb2.GetProductRequest(id=id))
    return product_to_json(product)


@router.patch(
    "/{id}",
    response_model=Product,
    summary="Change a product (admin; only the fields sent change)",
    responses={
        200: {"links": product_links("")},
        **problem_responses(401, 403, 404, 413, described={409: "`duplicate_sku`"}),
    },
)
async def update_product(
    id: ProductId, body: ProductPatch, caller: Admin, backends: Gateway
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
async def delete_product(id: ProductId, caller: Admin, backends: Gateway) -> Response:
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
    openapi_extra=semantic_fields({"file": "must be a JPEG, PNG or WebP image (else 415)"}),
)
async def upload_image(
    id: ProductId,
    caller: Admin,
    backends: Gateway,
    file: Annotated[
        UploadFile,
        File(description="the image (JPEG, PNG or WebP)", json_schema_extra={"minLength": 1}),
    ],
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
