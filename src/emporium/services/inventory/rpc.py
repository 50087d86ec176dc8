"""gRPC entrypoint of inventory-service: translates requests and delegates to handlers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from emporium.chassis.db import answers_unavailable_when_the_database_is_down
from emporium.contracts.rpc.inventory.v1 import inventory_pb2, inventory_pb2_grpc
from emporium.services.inventory.domain import Reservation, ReservationStatus
from emporium.services.inventory.handlers import Inventory
from emporium.services.inventory.store import StoredStock

SERVICE_NAME: str = inventory_pb2.DESCRIPTOR.services_by_name["InventoryService"].full_name

_STATUS = {
    ReservationStatus.HELD: inventory_pb2.RESERVATION_STATUS_HELD,
    ReservationStatus.COMMITTED: inventory_pb2.RESERVATION_STATUS_COMMITTED,
    ReservationStatus.RELEASED: inventory_pb2.RESERVATION_STATUS_RELEASED,
    ReservationStatus.EXPIRED: inventory_pb2.RESERVATION_STATUS_EXPIRED,
}


def _timestamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def stock_level(stored: StoredStock) -> inventory_pb2.StockLevel:
    item = stored.item
    return inventory_pb2.StockLevel(
        sku=item.sku,
        on_hand=item.on_hand,
        reserved=item.reserved,
        available=item.available,
        low_stock_threshold=item.low_stock_threshold,
        updated_at=_timestamp(stored.updated_at),
    )


def reservation_message(reservation: Reservation) -> inventory_pb2.Reservation:
    return inventory_pb2.Reservation(
        order_id=reservation.order_id,
        status=_STATUS[reservation.status],
        lines=[
            inventory_pb2.ReservationLine(sku=line.sku, quantity=line.quantity)
            for line in reservation.lines
        ],
        expires_at=_timestamp(reservation.expires_at),
        created_at=_timestamp(reservation.created_at),
    )


class InventoryServicer(inventory_pb2_grpc.InventoryServiceServicer):
    """`InventoryService` (inventory.proto)."""

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory

    @answers_unavailable_when_the_database_is_down
    async def SetStock(self, request: Any, context: Any) -> inventory_pb2.StockLevel:
        threshold = request.low_stock_threshold if request.HasField("low_stock_threshold") else None
        stored = await self.inventory.set_stock(request.sku, request.on_hand, threshold)
        return stock_level(stored)

    @answers_unavailable_when_the_database_is_down
    async def GetStock(self, request: Any, context: Any) -> inventory_pb2.StockLevel:
        return stock_level(await self.inventory.get_stock(request.sku))

    @answers_unavailable_when_the_database_is_down
    async def ReserveStock(self, request: Any, context: Any) -> inventory_pb2.Reservation:
        lines = [(line.sku, line.quantity) for line in request.lines]
        reservation = await self.inventory.reserve(request.order_id, lines, request.ttl_seconds)
        return reservation_message(reservation)

    @answers_unavailable_when_the_database_is_down
    async def ReleaseStock(self, request: Any, context: Any) -> inventory_pb2.Reservation:
        reservation = await self.inventory.release(request.order_id, request.reason)
        return reservation_message(reservation)

    @answers_unavailable_when_the_database_is_down
    async def CommitStock(self, request: Any, context: Any) -> inventory_pb2.Reservation:
        return reservation_message(await self.inventory.commit(request.order_id))
