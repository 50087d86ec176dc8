"""`inventory.low`: produced by inventory-service when the available stock of a SKU falls to
or below its threshold.

Consumed by notification (alert the operators) and analytics. Key: sku.
"""

from __future__ import annotations

from pydantic import Field

from emporium.contracts.events.base import EventModel

TOPIC = "inventory.low"


class InventoryLowV1(EventModel):
    TOPIC = TOPIC
    VERSION = 1
    KEY_FIELD = "sku"

    sku: str = Field(min_length=1)
    available: int = Field(ge=0, description="Units that can still be reserved.")
    threshold: int = Field(ge=0, description="The low-stock threshold that was crossed.")
