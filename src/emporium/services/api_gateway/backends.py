"""The gateway's gRPC channels: one per backend, created on first use, closed at shutdown.

Every outgoing call goes through `chassis.rpc.client.create_channel`, so it has a deadline,
carries the trace context, the request id and the caller identity (set with
`identity.acting_as(caller)` around the call), is retried with jittered backoff when the
method is idempotent (docs/protos.md), and goes through the backend's circuit breaker.

Channels are created lazily because a `grpc.aio` channel belongs to the event loop that
first uses it; building the app (and importing this module) opens nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from emporium.chassis.rpc.client import create_channel
from emporium.contracts.rpc.analytics.v1 import analytics_pb2_grpc
from emporium.contracts.rpc.auth.v1 import auth_pb2_grpc
from emporium.contracts.rpc.cdn.v1 import cdn_pb2_grpc
from emporium.contracts.rpc.inventory.v1 import inventory_pb2_grpc
from emporium.contracts.rpc.notification.v1 import notification_pb2_grpc
from emporium.contracts.rpc.order.v1 import order_pb2_grpc
from emporium.contracts.rpc.product.v1 import product_pb2_grpc
from emporium.contracts.rpc.recommendation.v1 import recommendation_pb2_grpc
from emporium.contracts.rpc.search.v1 import search_pb2_grpc
from emporium.contracts.rpc.user.v1 import user_pb2_grpc

SERVICE_NAME = "api_gateway"
MAX_IMAGE_BYTES = 10 * 1024 * 1024
# The image plus protobuf framing and the other fields, above gRPC's 4 MiB default.
CDN_MAX_MESSAGE_BYTES = 11 * 1024 * 1024
# PlaceOrder runs the checkout saga; order-service answers PENDING when its deadline is near,
# so the gateway gives it more time than a read (REST then says 202).
PLACE_ORDER_TIMEOUT_SECONDS = 5.0
UPLOAD_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class BackendPolicy:
    """How the gateway calls one backend: its default deadline (the SLO of its reads) and
    which methods are safe to retry (docs/protos.md, "idempotent" column)."""

    service: str
    default_timeout: float = 2.0
    idempotent: tuple[str, ...] = ()
    options: tuple[tuple[str, Any], ...] = field(default_factory=tuple)

    def method_names(self) -> list[str]:
        package = f"emporium.{self.service}.v1.{self.service.capitalize()}Service"
        return [f"{package}/{m}" for m in self.idempotent]


POLICIES: dict[str, BackendPolicy] = {
    p.service: p
    for p in (
        BackendPolicy("auth", 2.0, ("Logout", "ValidateToken", "GetJwks", "SetRoles")),
        # AddAddress is idempotent only with a request_id, so it is not retried blindly.
        BackendPolicy(
            "user",
            2.0,
            ("CreateUser", "GetProfile", "UpdateProfile", "ListAddresses", "DeleteAddress"),
        ),
        BackendPolicy(
            "product",
            2.0,
            (
                "GetProduct",
                "GetProducts",
                "UpdateProduct",
                "DeleteProduct",
                "ListProducts",
                "AddProductImage",
            ),
        ),
        BackendPolicy("inventory", 2.0, ("SetStock", "GetStock")),
        # PlaceOrder is idempotent by (user_id, idempotency_key): a retry replays.
        BackendPolicy("order", 2.0, ("PlaceOrder", "GetOrder", "ListOrders", "CancelOrder")),
        BackendPolicy("notification", 2.0, ("ListNotifications",)),
        BackendPolicy("search", 2.0, ("Search",)),
        BackendPolicy("recommendation", 2.0, ("GetRecommendations",)),
        BackendPolicy("analytics", 5.0, ("GetSalesReport", "GetTopProducts", "GetLowStock")),
        BackendPolicy(
            "cdn",
            5.0,
            ("UploadImage", "GetImageMeta"),  # content-addressed: the same bytes, the same id
            (
                ("grpc.max_send_message_length", CDN_MAX_MESSAGE_BYTES),
                ("grpc.max_receive_message_length", CDN_MAX_MESSAGE_BYTES),
            ),
        ),
    )
}


class Backends:
    """Typed stubs over lazily created channels, one channel per backend."""

    def __init__(self, targets: dict[str, str]) -> None:
        self.targets = dict(targets)
        self._channels: dict[str, Any] = {}

    def channel(self, name: str) -> Any:
        channel = self._channels.get(name)
        if channel is None:
            policy = POLICIES[name]
            channel = create_channel(
                self.targets[name],
                service=SERVICE_NAME,
                default_timeout=policy.default_timeout,
                idempotent=policy.method_names(),
                options=policy.options,
            )
            self._channels[name] = channel
        return channel

    async def close(self) -> None:
        channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            await channel.close()

    @property
    def auth(self) -> auth_pb2_grpc.AuthServiceAsyncStub:
        return cast(
            "auth_pb2_grpc.AuthServiceAsyncStub",
            auth_pb2_grpc.AuthServiceStub(self.channel("auth")),
        )

    @property
    def user(self) -> user_pb2_grpc.UserServiceAsyncStub:
        return cast(
            "user_pb2_grpc.UserServiceAsyncStub",
            user_pb2_grpc.UserServiceStub(self.channel("user")),
        )

    @property
    def product(self) -> product_pb2_grpc.ProductServiceAsyncStub:
        return cast(
            "product_pb2_grpc.ProductServiceAsyncStub",
            product_pb2_grpc.ProductServiceStub(self.channel("product")),
        )

    @property
    def inventory(self) -> inventory_pb2_grpc.InventoryServiceAsyncStub:
        return cast(
            "inventory_pb2_grpc.InventoryServiceAsyncStub",
            inventory_pb2_grpc.InventoryServiceStub(self.channel("inventory")),
        )

    @property
    def order(self) -> order_pb2_grpc.OrderServiceAsyncStub:
        return cast(
            "order_pb2_grpc.OrderServiceAsyncStub",
            order_pb2_grpc.OrderServiceStub(self.channel("order")),
        )

    @property
    def notification(self) -> notification_pb2_grpc.NotificationServiceAsyncStub:
        return cast(
            "notification_pb2_grpc.NotificationServiceAsyncStub",
            notification_pb2_grpc.NotificationServiceStub(self.channel("notification")),
        )

    @property
    def search(self) -> search_pb2_grpc.SearchServiceAsyncStub:
        return cast(
            "search_pb2_grpc.SearchServiceAsyncStub",
            search_pb2_grpc.SearchServiceStub(self.channel("search")),
        )

    @property
    def recommendation(self) -> recommendation_pb2_grpc.RecommendationServiceAsyncStub:
        return cast(
            "recommendation_pb2_grpc.RecommendationServiceAsyncStub",
            recommendation_pb2_grpc.RecommendationServiceStub(self.channel("recommendation")),
        )

    @property
    def analytics(self) -> analytics_pb2_grpc.AnalyticsServiceAsyncStub:
        return cast(
            "analytics_pb2_grpc.AnalyticsServiceAsyncStub",
            analytics_pb2_grpc.AnalyticsServiceStub(self.channel("analytics")),
        )

    @property
    def cdn(self) -> cdn_pb2_grpc.CdnServiceAsyncStub:
        return cast(
            "cdn_pb2_grpc.CdnServiceAsyncStub", cdn_pb2_grpc.CdnServiceStub(self.channel("cdn"))
        )
