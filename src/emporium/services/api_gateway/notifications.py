"""`GET /api/v1/notifications`: the caller's notifications (notification-service)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from emporium.chassis.rpc.identity import acting_as
from emporium.contracts.rpc.notification.v1 import notification_pb2
from emporium.services.api_gateway.convert import next_cursor, rfc3339
from emporium.services.api_gateway.schemas import (
    CURSOR_RULE,
    DEFAULT_LIMIT,
    Cursor,
    Limit,
    problem_responses,
    semantic_fields,
)
from emporium.services.api_gateway.security import Gateway, User

router = APIRouter(prefix="/api/v1/notifications", tags=["engagement"])


class Notification(BaseModel):
    id: str
    channel: str
    kind: str
    status: str
    subject: str
    created_at: str | None


class NotificationPage(BaseModel):
    items: list[Notification]
    next_cursor: str | None


@router.get(
    "",
    response_model=NotificationPage,
    summary="The caller's notifications, newest first (welcome, order_confirmation, ...)",
    responses=problem_responses(401),
    openapi_extra=semantic_fields({"cursor": CURSOR_RULE}),
)
async def list_notifications(
    caller: User, backends: Gateway, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> dict[str, Any]:
    with acting_as(caller):
        page = await backends.notification.ListNotifications(
            notification_pb2.ListNotificationsRequest(
                user_id=caller.user_id, limit=limit, cursor=cursor or ""
            )
        )
    items = [
        {
            "id": n.id,
            "channel": n.channel,
            "kind": n.kind,
            "status": n.status,
            "subject": n.subject,
            "created_at": rfc3339(n.created_at),
        }
        for n in page.items
    ]
    return {"items": items, "next_cursor": next_cursor(page.next_cursor)}
