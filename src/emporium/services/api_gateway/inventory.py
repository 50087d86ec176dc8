"""`/api/v1/inventory/{sku}`: stock levels (inventory-service)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from emporium.chassis.rpc.identity import acting_as
from emporium.contracts.rpc.inventory.v1 import inventory_pb2
from emporium.services.api_gateway.schemas import RequestModel, problem_responses
from emporium.services.api_gateway.security import Admin, Gateway

router = APIRouter(prefix="/api/v1/inventory", tags=["inventory"])


class StockBody(RequestModel):
    on_hand: int = Field(ge=0, le=10**9)
    low_stock_threshold: int | None = Field(default=None, ge=0, le=10**9)


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
    responses=problem_responses(401, 403),
)
async def set_stock(sku: str, body: StockBody, caller: Admin, backends: Gateway) -> StockLevel:
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
async def get_stock(sku: str, backends: Gateway) -> StockLevel:
    level = await backends.inventory.GetStock(inventory_pb2.GetStockRequest(sku=sku))
    return _stock(level)
