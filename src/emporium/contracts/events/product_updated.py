"""`product.updated`: produced by product-service whenever a catalog entry is created, changed
or deleted (the whole product, so consumers never need to call back).

Consumed by search (index), recommendation (item features) and cdn (image). Key: product id.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import Field

from emporium.contracts.events.base import EventModel

TOPIC = "product.updated"

AttributeValue = str | int | float | bool | None


class ProductUpdatedV1(EventModel):
    TOPIC = TOPIC
    VERSION = 1
    KEY_FIELD = "product_id"

    product_id: str = Field(min_length=1)
    name: str
    description: str = ""
    category: str = ""
    price: Decimal = Field(ge=0)
    currency: str = Field(default="USD", min_length=3, max_length=3)
    image_url: str | None = None
    deleted: bool = Field(default=False, description="True when the product was removed.")
    # Added later, all optional so payloads written before them still validate.
    sku: str | None = None
    attributes: dict[str, AttributeValue] = Field(default_factory=dict)
    image_urls: list[str] = Field(
        default_factory=list, description="Every image of the product, in display order."
    )
    created_at: datetime | None = Field(default=None, description="When the product was created.")
