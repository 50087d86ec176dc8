"""`/api/v1/inventory/{sku}`: stock levels (inventory-service)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from emporium.chassis.rpc.identity import acting_as
from emporium.contracts.rpc.inventory.v1 import inventory_pb2
from emporium.services.api_gateway.constraints import (
    JSON_INTEGER,
    MAX_COUNT,
    SKU_DESCRIPTION,
    SKU_PATTERN,
)
from emporium.services.api_gateway.schemas import RequestModel, problem_responses
from emporium.services.api_gateway.security import Admin, Gateway

router = APIRouter(prefix="/api/v1/inventory", tags=["inventory"])


Count = Annotated[int, Field(ge=0, le=MAX_COUNT), JSON_INTEGER]
SkuPath = Annotated[str, Path(pattern=SKU_PATTERN, description=SKU_DESCRIPTION)]


class StockBody(RequestModel):
    on_hand: Count
    low_stock_threshold: Count | None = None


class StockLevel(BaseModel):
    sku: str
    on_hand: int
    reserved: int
    available: int
    low_stock_threshold: int


def _stock(level: inventory_pb2.StockLevel) -> StockLevel:
    return StockLevel(
        sku=level.sku,
        on_hand=level.on_hand,
        reserved=level.reserved,
        available=level.available,
        low_stock_threshold=level.low_stock_threshold,
    )


@router.put(
    "/{sku}",
    response_model=StockLevel,
    summary="Set the absolute stock of a sku (admin)",
    responses=problem_responses(
        401, 403, 413, described={409: "`on_hand` below the units reserved for open orders"}
    ),
)
async def set_stock(sku: SkuPath, body: StockBody, caller: Admin, backends: Gateway) -> StockLevel:
    request = inventory_pb2.SetStockRequest(sku=sku, on_hand=body.on_hand)
    if body.low_stock_threshold is not None:
        request.low_stock_threshold = body.low_stock_threshold
    with acting_as(caller):
        level = await backends.inventory.SetStock(request)
    return _stock(level)


@router.get(
    "/{sku}",
    response_model=StockLevel,
    summary="The stock of a sku (available = on_hand - reserved)",
    responses=problem_responses(404),
)
async def get_stock(sku: SkuPath, backends: Gateway) -> StockLevel:
    level = await backends.inventory.GetStock(inventory_pb2.GetStockRequest(sku=sku))
    return _stock(level)
