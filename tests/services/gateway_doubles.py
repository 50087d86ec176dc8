"""Test doubles of the gateway's backends, served by ONE real in-process gRPC server.

The real backends are tested in their own service tests; here the gateway is the unit
under test, so each double implements just enough of its proto to check the REST contract:
it records every request with the caller identity it arrived with, and raises the same
`DomainError`s the real service documents (docs/protos.md), so the chassis server
interceptor turns them into real gRPC statuses + error trailers, exactly as in production.
RPCs the gateway never calls are left out (the generated base answers UNIMPLEMENTED).
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from google.protobuf.timestamp_pb2 import Timestamp

from emporium.chassis.catalog import BACKENDS
from emporium.chassis.errors import (
    DomainError,
    ErrorCode,
    FieldError,
    conflict,
    invalid,
    not_found,
    unauthenticated,
)
from emporium.chassis.rpc.identity import (
    Caller,
    current_caller,
    require_admin,
    require_authenticated,
    require_owner_or_admin,
)
from emporium.chassis.rpc.server import create_server
from emporium.contracts.rpc.analytics.v1 import analytics_pb2, analytics_pb2_grpc
from emporium.contracts.rpc.auth.v1 import auth_pb2, auth_pb2_grpc
from emporium.contracts.rpc.cdn.v1 import cdn_pb2, cdn_pb2_grpc
from emporium.contracts.rpc.inventory.v1 import inventory_pb2, inventory_pb2_grpc
from emporium.contracts.rpc.notification.v1 import notification_pb2, notification_pb2_grpc
from emporium.contracts.rpc.order.v1 import order_pb2, order_pb2_grpc
from emporium.contracts.rpc.product.v1 import product_pb2, product_pb2_grpc
from emporium.contracts.rpc.recommendation.v1 import (
    recommendation_pb2,
    recommendation_pb2_grpc,
)
from emporium.contracts.rpc.search.v1 import search_pb2, search_pb2_grpc
from emporium.contracts.rpc.user.v1 import user_pb2, user_pb2_grpc
from emporium.services.api_gateway.app import close_api, create_api
from emporium.services.api_gateway.forwarded import TrustedProxies
from emporium.services.api_gateway.ratelimit import RateLimits

ADMIN_TOKEN = "admin-token"
SHOPPER_TOKEN = "shopper-token"
OTHER_TOKEN = "other-token"
ADMIN_ID, SHOPPER_ID, OTHER_ID = "admin-1", "user-1", "user-2"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MAX_IMAGE = 10 * 1024 * 1024
MESSAGE_LIMIT = 12 * 1024 * 1024


def now() -> Timestamp:
    ts = Timestamp()
    ts.FromSeconds(1_714_564_800)  # 2024-05-01T12:00:00Z
    return ts


@dataclass
class Recorder:
    """Every call a double received: (method, request, caller)."""

    calls: list[tuple[str, Any, Caller]] = field(default_factory=list)

    def record(self, method: str, request: Any) -> None:
        self.calls.append((method, request, current_caller()))

    def last(self, method: str) -> tuple[Any, Caller]:
        for name, request, caller in reversed(self.calls):
            if name == method:
                return request, caller
        raise AssertionError(f"{method} was never called")

    def count(self, method: str) -> int:
        return sum(1 for name, _, _ in self.calls if name == method)


class AuthDouble(auth_pb2_grpc.AuthServiceServicer):
    """Accounts and opaque tokens in memory; refresh rotation with reuse detection."""

    def __init__(self, rec: Recorder) -> None:
        self.rec = rec
        self.ids = itertools.count(100)
        self.accounts: dict[str, tuple[str, str]] = {
            "shopper@example.com": (SHOPPER_ID, "correct horse battery")
        }
        self.tokens: dict[str, tuple[str, tuple[str, ...]]] = {
            ADMIN_TOKEN: (ADMIN_ID, ("admin", "user")),
            SHOPPER_TOKEN: (SHOPPER_ID, ("user",)),
            OTHER_TOKEN: (OTHER_ID, ("user",)),
        }
        self.refresh_tokens: dict[str, str] = {}  # token -> user id (current ones)
        self.sessions: dict[str, str] = {}  # refresh token -> its access token
        self.used_refresh: set[str] = set()
        self.failed_logins_limit = 1000

    async def Register(self, request: Any, context: Any) -> auth_pb2.RegisterResponse:
        self.rec.record("Register", request)
        if len(request.password) < 10:
            raise invalid("weak password", FieldError("password", "at least 10 characters"))
        email = request.email.strip().lower()
        if email in self.accounts:
            raise DomainError("email taken", ErrorCode.ALREADY_EXISTS, "email_taken")
        user_id = f"u-{next(self.ids)}"
        self.accounts[email] = (user_id, request.password)
        return auth_pb2.RegisterResponse(user_id=user_id, email=email, roles=["user"])

    async def Login(self, request: Any, context: Any) -> auth_pb2.TokenPair:
        self.rec.record("Login", request)
        if self.rec.count("Login") > self.failed_logins_limit:
            raise DomainError(
                "locked", ErrorCode.RESOURCE_EXHAUSTED, "too_many_attempts", retry_after=123.4
            )
        account = self.accounts.get(request.email.strip().lower())
        if account is None or account[1] != request.password:
            raise unauthenticated("invalid email or password")
        return self._pair(account[0])

    def _pair(self, user_id: str) -> auth_pb2.TokenPair:
        n = next(self.ids)
        access, refresh = f"at-{n}", f"rt-{n}"
        self.tokens[access] = (user_id, ("user",))
        self.refresh_tokens[refresh] = user_id
        self.sessions[refresh] = access
        return auth_pb2.TokenPair(
            access_token=access, refresh_token=refresh, token_type="bearer", expires_in=900
        )

    async def Refresh(self, request: Any, context: Any) -> auth_pb2.TokenPair:
        self.rec.record("Refresh", request)
        token = request.refresh_token
        if token in self.used_refresh:
            raise DomainError("reused", ErrorCode.UNAUTHENTICATED, "refresh_token_reused")
        user_id = self.refresh_tokens.pop(token, None)
        if user_id is None:
            raise unauthenticated("unknown refresh token")
        self.used_refresh.add(token)
        return self._pair(user_id)

    async def Logout(self, request: Any, context: Any) -> auth_pb2.LogoutResponse:
        self.rec.record("Logout", request)
        if request.refresh_token:
            if request.refresh_token not in self.refresh_tokens:
                raise DomainError("invalid", ErrorCode.UNAUTHENTICATED, "refresh_token_invalid")
            self.refresh_tokens.pop(request.refresh_token)
            self.tokens.pop(self.sessions.pop(request.refresh_token, ""), None)
        elif request.access_token not in self.tokens:
            raise DomainError("invalid token", ErrorCode.UNAUTHENTICATED, "token_invalid")
        self.tokens.pop(request.access_token, None)
        return auth_pb2.LogoutResponse()

    async def ValidateToken(self, request: Any, context: Any) -> auth_pb2.ValidateTokenResponse:
        self.rec.record("ValidateToken", request)
        found = self.tokens.get(request.access_token)
        if found is None:
            raise DomainError("invalid token", ErrorCode.UNAUTHENTICATED, "token_invalid")
        return auth_pb2.ValidateTokenResponse(user_id=found[0], roles=list(found[1]))


class UserDouble(user_pb2_grpc.UserServiceServicer):
    def __init__(self, rec: Recorder) -> None:
        self.rec = rec
        self.users: dict[str, user_pb2.User] = {
            SHOPPER_ID: user_pb2.User(id=SHOPPER_ID, email="shopper@example.com", name="Sam")
        }
        self.addresses: list[user_pb2.Address] = []

    async def CreateUser(self, request: Any, context: Any) -> user_pb2.User:
        self.rec.record("CreateUser", request)
        require_owner_or_admin(request.user_id)
        user = user_pb2.User(id=request.user_id, email=request.email, name=request.name)
        return self.users.setdefault(request.user_id, user)

    def _profile(self, user_id: str) -> user_pb2.User:
        require_owner_or_admin(user_id)
        if user_id not in self.users:
            raise not_found("no such user")
        return self.users[user_id]

    async def GetProfile(self, request: Any, context: Any) -> user_pb2.User:
        self.rec.record("GetProfile", request)
        return self._profile(request.user_id)

    async def UpdateProfile(self, request: Any, context: Any) -> user_pb2.User:
        self.rec.record("UpdateProfile", request)
        user = self._profile(request.user_id)
        if request.HasField("name"):
            user.name = request.name
        return user

    async def ListAddresses(self, request: Any, context: Any) -> user_pb2.ListAddressesResponse:
        self.rec.record("ListAddresses", request)
        require_owner_or_admin(request.user_id)
        mine = [a for a in self.addresses if a.user_id == request.user_id]
        return user_pb2.ListAddressesResponse(items=mine)

    async def AddAddress(self, request: Any, context: Any) -> user_pb2.Address:
        self.rec.record("AddAddress", request)
        require_owner_or_admin(request.user_id)
        address = user_pb2.Address(
            id=f"addr-{len(self.addresses) + 1}",
            user_id=request.user_id,
            line1=request.line1,
            line2=request.line2,
            city=request.city,
            postal_code=request.postal_code,
            country=request.country,
            created_at=now(),
        )
        self.addresses.append(address)
        return address


class ProductDouble(product_pb2_grpc.ProductServiceServicer):
    def __init__(self, rec: Recorder) -> None:
        self.rec = rec
        self.products: dict[str, product_pb2.Product] = {}

    async def CreateProduct(self, request: Any, context: Any) -> product_pb2.Product:
        self.rec.record("CreateProduct", request)
        require_admin()
        if any(p.sku == request.sku for p in self.products.values()):
            raise DomainError("sku taken", ErrorCode.ALREADY_EXISTS, "duplicate_sku")
        product = product_pb2.Product(
            id=f"p-{len(self.products) + 1}",
            sku=request.sku,
            name=request.name,
            description=request.description,
            category=request.category,
            price_minor=request.price_minor,
            currency=request.currency,
            created_at=now(),
            updated_at=now(),
        )
        for key, value in request.attributes.items():
            product.attributes[key].CopyFrom(value)
        self.products[product.id] = product
        return product

    def _get(self, product_id: str) -> product_pb2.Product:
        if product_id not in self.products:
            raise not_found("no such product")
        return self.products[product_id]

    async def GetProduct(self, request: Any, context: Any) -> product_pb2.Product:
        self.rec.record("GetProduct", request)
        return self._get(request.id)

    async def ListProducts(self, request: Any, context: Any) -> product_pb2.ListProductsResponse:
        self.rec.record("ListProducts", request)
        matching = [
            p
            for p in self.products.values()
            if not request.category or p.category == request.category
        ]
        start = int(request.cursor or 0)
        end = start + (request.limit or 20)
        cursor = str(end) if end < len(matching) else ""
        return product_pb2.ListProductsResponse(items=matching[start:end], next_cursor=cursor)

    async def UpdateProduct(self, request: Any, context: Any) -> product_pb2.Product:
        self.rec.record("UpdateProduct", request)
        require_admin()
        product = self._get(request.id)
        for name in ("sku", "name", "description", "category", "price_minor", "currency"):
            if request.HasField(name):
                setattr(product, name, getattr(request, name))
        if request.HasField("attributes"):
            product.ClearField("attributes")
            for key, value in request.attributes.values.items():
                product.attributes[key].CopyFrom(value)
        return product

    async def DeleteProduct(self, request: Any, context: Any) -> product_pb2.DeleteProductResponse:
        self.rec.record("DeleteProduct", request)
        require_admin()
        self._get(request.id)
        del self.products[request.id]
        return product_pb2.DeleteProductResponse()

    async def AddProductImage(self, request: Any, context: Any) -> product_pb2.Product:
        self.rec.record("AddProductImage", request)
        require_admin()
        product = self._get(request.product_id)
        if request.url not in product.image_urls:
            product.image_urls.append(request.url)
        return product


class CdnDouble(cdn_pb2_grpc.CdnServiceServicer):
    """Decides "is it an image" from the bytes (PNG magic only, for the test)."""

    def __init__(self, rec: Recorder) -> None:
        self.rec = rec

    async def UploadImage(self, request: Any, context: Any) -> cdn_pb2.ImageMeta:
        self.rec.record("UploadImage", request)
        require_admin()
        if len(request.content) > MAX_IMAGE:
            raise DomainError("too large", ErrorCode.PAYLOAD_TOO_LARGE, "too_large")
        if not request.content.startswith(PNG_MAGIC):
            raise DomainError("not an image", ErrorCode.UNSUPPORTED_MEDIA_TYPE, "not_an_image")
        url = f"http://cdn.test/images/{len(request.content)}.png"
        return cdn_pb2.ImageMeta(image_id="abc", url=url, content_type="image/png")


class InventoryDouble(inventory_pb2_grpc.InventoryServiceServicer):
    def __init__(self, rec: Recorder) -> None:
        self.rec = rec
        self.levels: dict[str, inventory_pb2.StockLevel] = {}

    async def SetStock(self, request: Any, context: Any) -> inventory_pb2.StockLevel:
        self.rec.record("SetStock", request)
        require_admin()
        level = self.levels.setdefault(request.sku, inventory_pb2.StockLevel(sku=request.sku))
        level.on_hand = request.on_hand
        level.available = level.on_hand - level.reserved
        if request.HasField("low_stock_threshold"):
            level.low_stock_threshold = request.low_stock_threshold
        return level

    async def GetStock(self, request: Any, context: Any) -> inventory_pb2.StockLevel:
        self.rec.record("GetStock", request)
        if request.sku not in self.levels:
            raise not_found("unknown sku")
        return self.levels[request.sku]


class OrderDouble(order_pb2_grpc.OrderServiceServicer):
    """The saga's outcome is chosen by the token: `tok_visa` PAID, `tok_chargeDeclined`
    CANCELLED/DECLINED, `tok_slow` still PENDING; product `p-out` is out of stock."""

    def __init__(self, rec: Recorder) -> None:
        self.rec = rec
        self.orders: dict[str, order_pb2.Order] = {}
        self.by_key: dict[tuple[str, str], str] = {}

    async def PlaceOrder(self, request: Any, context: Any) -> order_pb2.PlaceOrderResponse:
        self.rec.record("PlaceOrder", request)
        caller = require_owner_or_admin(request.user_id)
        replay = self.by_key.get((caller.user_id, request.idempotency_key))
        if replay:
            return order_pb2.PlaceOrderResponse(order=self.orders[replay], replayed=True)
        if any(line.product_id == "p-out" for line in request.items):
            err = conflict("not enough stock", "out_of_stock")
            err.fields.append(FieldError("SKU-OUT", "only 0 available"))
            raise err
        status, payment = {
            "tok_visa": (order_pb2.ORDER_STATUS_PAID, ("SUCCEEDED", "")),
            "tok_chargeDeclined": (order_pb2.ORDER_STATUS_CANCELLED, ("DECLINED", "card_declined")),
            "tok_slow": (order_pb2.ORDER_STATUS_PENDING, ("", "")),
        }[request.payment_token]
        order = order_pb2.Order(
            id=f"o-{len(self.orders) + 1}",
            user_id=request.user_id,
            status=status,
            items=[
                order_pb2.OrderItem(
                    product_id=line.product_id,
                    sku=f"SKU-{line.product_id}",
                    name="Headphones",
                    quantity=line.quantity,
                    unit_price_minor=1999,
                )
                for line in request.items
            ],
            total_minor=1999 * sum(line.quantity for line in request.items),
            currency="USD",
            payment=order_pb2.PaymentSummary(status=payment[0], reason=payment[1]),
            shipping_address=request.shipping_address,
            created_at=now(),
            updated_at=now(),
        )
        self.orders[order.id] = order
        self.by_key[(caller.user_id, request.idempotency_key)] = order.id
        return order_pb2.PlaceOrderResponse(order=order)

    def _visible(self, order_id: str) -> order_pb2.Order:
        caller = require_authenticated()
        order = self.orders.get(order_id)
        if order is None or (order.user_id != caller.user_id and not caller.is_admin):
            raise not_found("no such order")
        return order

    async def GetOrder(self, request: Any, context: Any) -> order_pb2.Order:
        self.rec.record("GetOrder", request)
        return self._visible(request.order_id)

    async def ListOrders(self, request: Any, context: Any) -> order_pb2.ListOrdersResponse:
        self.rec.record("ListOrders", request)
        require_owner_or_admin(request.user_id)
        mine = [o for o in reversed(self.orders.values()) if o.user_id == request.user_id]
        return order_pb2.ListOrdersResponse(items=mine)

    async def CancelOrder(self, request: Any, context: Any) -> order_pb2.Order:
        self.rec.record("CancelOrder", request)
        order = self._visible(request.order_id)
        order.status = order_pb2.ORDER_STATUS_CANCELLED
        if order.payment.status == "SUCCEEDED":
            order.payment.status = "REFUNDED"
        return order


class NotificationDouble(notification_pb2_grpc.NotificationServiceServicer):
    def __init__(self, rec: Recorder) -> None:
        self.rec = rec

    async def ListNotifications(self, request: Any, context: Any) -> Any:
        self.rec.record("ListNotifications", request)
        require_owner_or_admin(request.user_id)
        item = notification_pb2.Notification(
            id="n-1",
            user_id=request.user_id,
            channel="email",
            kind="welcome",
            status="sent",
            subject="Welcome to Emporium",
            created_at=now(),
        )
        return notification_pb2.ListNotificationsResponse(items=[item], next_cursor="")


class SearchDouble(search_pb2_grpc.SearchServiceServicer):
    def __init__(self, rec: Recorder) -> None:
        self.rec = rec

    async def Search(self, request: Any, context: Any) -> search_pb2.SearchResponse:
        self.rec.record("Search", request)
        hit = search_pb2.Product(
            id="p-9",
            sku="HEAD-1",
            name="Wireless headphones",
            category="audio",
            price_minor=4999,
            currency="USD",
            created_at=now(),
            updated_at=now(),
        )
        hit.attributes["wireless"].bool_value = True
        answer = search_pb2.SearchResponse(items=[hit], total=3, next_cursor="c-2")
        answer.facets["category"].counts["audio"] = 3
        return answer


class RecommendationDouble(recommendation_pb2_grpc.RecommendationServiceServicer):
    def __init__(self, rec: Recorder) -> None:
        self.rec = rec

    async def GetRecommendations(self, request: Any, context: Any) -> Any:
        self.rec.record("GetRecommendations", request)
        return recommendation_pb2.GetRecommendationsResponse(
            items=[recommendation_pb2.Recommendation(product_id="p-2", score=0.75)]
        )


class AnalyticsDouble(analytics_pb2_grpc.AnalyticsServiceServicer):
    def __init__(self, rec: Recorder) -> None:
        self.rec = rec

    async def GetSalesReport(self, request: Any, context: Any) -> analytics_pb2.SalesReport:
        self.rec.record("GetSalesReport", request)
        require_admin()
        bucket = analytics_pb2.SalesBucket(bucket=now(), orders=2, revenue_minor=3998)
        return analytics_pb2.SalesReport(
            orders=3, paid_orders=2, revenue_minor=3998, currency="USD", series=[bucket]
        )

    async def GetTopProducts(self, request: Any, context: Any) -> Any:
        self.rec.record("GetTopProducts", request)
        require_admin()
        top = analytics_pb2.TopProduct(product_id="p-1", units=2, revenue_minor=3998)
        return analytics_pb2.GetTopProductsResponse(items=[top])

    async def GetLowStock(self, request: Any, context: Any) -> Any:
        self.rec.record("GetLowStock", request)
        require_admin()
        low = analytics_pb2.LowStockItem(sku="HEAD-1", available=2, threshold=5, at=now())
        return analytics_pb2.GetLowStockResponse(items=[low])


@dataclass
class Doubles:
    rec: Recorder
    auth: AuthDouble
    user: UserDouble
    product: ProductDouble
    order: OrderDouble
    target: str

    def targets(self, **overrides: str) -> dict[str, str]:
        return {b.name: overrides.get(b.name, self.target) for b in BACKENDS}


@contextlib.asynccontextmanager
async def serve_doubles() -> AsyncIterator[Doubles]:
    """One gRPC server (the chassis one: identity, error trailers) hosting every double."""
    rec = Recorder()
    server = create_server(
        "doubles",
        options=[
            ("grpc.max_receive_message_length", MESSAGE_LIMIT),
            ("grpc.max_send_message_length", MESSAGE_LIMIT),
        ],
    )
    auth, user, product, order = (
        AuthDouble(rec),  # type: ignore[abstract]
        UserDouble(rec),  # type: ignore[abstract]
        ProductDouble(rec),  # type: ignore[abstract]
        OrderDouble(rec),
    )
    auth_pb2_grpc.add_AuthServiceServicer_to_server(auth, server)
    user_pb2_grpc.add_UserServiceServicer_to_server(user, server)
    product_pb2_grpc.add_ProductServiceServicer_to_server(product, server)
    order_pb2_grpc.add_OrderServiceServicer_to_server(order, server)
    cdn_pb2_grpc.add_CdnServiceServicer_to_server(CdnDouble(rec), server)  # type: ignore[abstract]
    inventory_pb2_grpc.add_InventoryServiceServicer_to_server(
        InventoryDouble(rec),  # type: ignore[abstract]
        server,
    )
    notification_pb2_grpc.add_NotificationServiceServicer_to_server(NotificationDouble(rec), server)
    search_pb2_grpc.add_SearchServiceServicer_to_server(SearchDouble(rec), server)
    recommendation_pb2_grpc.add_RecommendationServiceServicer_to_server(
        RecommendationDouble(rec), server
    )
    analytics_pb2_grpc.add_AnalyticsServiceServicer_to_server(AnalyticsDouble(rec), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield Doubles(rec, auth, user, product, order, f"127.0.0.1:{port}")
    finally:
        await server.stop(None)


@contextlib.asynccontextmanager
async def gateway_client(
    targets: dict[str, str],
    limits: RateLimits | None = None,
    trusted_proxies: TrustedProxies | None = None,
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to `create_api(targets)` in-process (httpx over ASGI; the
    peer address is 127.0.0.1)."""
    api = create_api(targets, limits, trusted_proxies)
    transport = httpx.ASGITransport(app=api)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield client
    finally:
        await close_api(api)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
