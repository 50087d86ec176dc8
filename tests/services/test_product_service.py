"""product-service over a real gRPC server on migrated SQLite and PostgreSQL: admin-only
writes, field errors, duplicate skus, soft deletes, the batch read order-service uses,
cursor pagination, and one `product.updated` (the whole product) in the outbox per change;
and, with a real auth-service beside it, JWKS verification of the forwarded token."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from emporium.chassis.db import Database
from emporium.chassis.errors import DomainError, ErrorCode
from emporium.chassis.kv.factory import open_kv
from emporium.chassis.migrations import migrate
from emporium.chassis.rpc.client import create_channel, domain_error_from_rpc
from emporium.chassis.rpc.identity import Caller
from emporium.chassis.rpc.jwks import JwksTokenVerifier
from emporium.chassis.rpc.server import create_server
from emporium.contracts.events import ProductUpdatedV1
from emporium.contracts.rpc.auth.v1 import auth_pb2, auth_pb2_grpc
from emporium.contracts.rpc.product.v1 import product_pb2, product_pb2_grpc
from emporium.services.auth import store as auth_store
from emporium.services.auth.domain import Argon2Parameters, KeySet, PasswordHashing
from emporium.services.auth.handlers import Auth
from emporium.services.auth.rpc import AuthServicer, LocalTokenVerifier
from emporium.services.product import store
from emporium.services.product.handlers import Catalog
from emporium.services.product.rpc import ProductServicer, fill_attribute
from tests.backends import backend_url

ADMIN = Caller("the-admin", frozenset({"admin", "user"}))
SHOPPER = Caller("u-shopper", frozenset({"user"}))
ANONYMOUS = Caller.anonymous()


async def fresh_database_url(service: str, kind: str, tmp_path: Path) -> AsyncIterator[str]:
    """A migrated database: a SQLite file, or a new PostgreSQL database dropped after."""
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path}/{service}.sqlite3"
        await migrate(service, url)
        yield url
        return
    admin = make_url(backend_url("postgresql"))
    name = f"emporium_{service}_{uuid.uuid4().hex}"
    dsn = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
        url = admin.set(database=name).render_as_string(hide_password=False)
        await migrate(service, url)
        yield url
    finally:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


async def rpc_error(call: Awaitable[Any]) -> DomainError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return domain_error_from_rpc(caught.value)


def create_request(sku: str = "", **overrides: Any) -> Any:
    attributes = overrides.pop("attributes", {"color": "black", "wireless": True, "weight_g": 250})
    fields: dict[str, Any] = {
        "sku": sku or f"SKU-{uuid.uuid4().hex[:8]}",
        "name": "Wireless Headphones",
        "description": "Over-ear, noise cancelling",
        "category": "audio",
        "price_minor": 1999,
        "currency": "USD",
    }
    fields.update(overrides)
    request = product_pb2.CreateProductRequest(**fields)
    for key, value in attributes.items():
        fill_attribute(request.attributes[key], value)
    return request


@dataclass
class CatalogWorld:
    db: Database
    target: str
    channels: list[Any]

    def stub(self, caller: Caller = ADMIN) -> Any:
        channel = create_channel(self.target, service="test", caller=caller)
        self.channels.append(channel)
        return product_pb2_grpc.ProductServiceStub(channel)

    async def create(self, sku: str = "", **overrides: Any) -> Any:
        return await self.stub(ADMIN).CreateProduct(create_request(sku, **overrides))

    async def events(self) -> list[ProductUpdatedV1]:
        async with self.db.session() as session:
            rows = (
                await session.execute(
                    select(store.outbox.c.aggregateid, store.outbox.c.payload)
                    .where(store.outbox.c.topic == "product.updated")
                    .order_by(store.outbox.c.seq)
                )
            ).all()
        events = [ProductUpdatedV1.model_validate(json.loads(row[1])) for row in rows]
        assert [row[0] for row in rows] == [e.product_id for e in events]  # key = product id
        return events


@pytest.fixture(params=["sqlite", "postgresql"], ids=["sqlite", "postgresql"])
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[CatalogWorld]:
    urls = fresh_database_url("product", request.param, tmp_path)
    db = Database(await anext(urls))
    server = create_server("test")
    product_pb2_grpc.add_ProductServiceServicer_to_server(ProductServicer(Catalog(db)), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    world = CatalogWorld(db, f"127.0.0.1:{port}", [])
    try:
        yield world
    finally:
        for channel in world.channels:
            await channel.close()
        await server.stop(None)
        await db.close()
        await urls.aclose()


# --- CreateProduct --------------------------------------------------------------------------


async def test_create_returns_the_product_and_records_the_whole_product_event(
    world: CatalogWorld,
) -> None:
    product = await world.create("HEAD-1")
    assert (product.sku, product.name, product.category) == (
        "HEAD-1",
        "Wireless Headphones",
        "audio",
    )
    assert (product.price_minor, product.currency) == (1999, "USD")
    assert product.attributes["wireless"].bool_value is True
    assert product.attributes["weight_g"].int_value == 250
    assert product.id
    assert product.created_at.seconds > 0

    fetched = await world.stub(ANONYMOUS).GetProduct(product_pb2.GetProductRequest(id=product.id))
    assert fetched == product

    [event] = await world.events()
    assert event.product_id == product.id
    assert (event.sku, event.name, event.category) == ("HEAD-1", product.name, "audio")
    assert (event.price, event.currency, event.deleted) == (Decimal("19.99"), "USD", False)
    assert event.attributes == {"color": "black", "wireless": True, "weight_g": 250}
    assert (event.image_urls, event.image_url) == ([], None)
    assert event.created_at is not None
    assert int(event.created_at.timestamp()) == product.created_at.seconds


async def test_writes_need_the_admin_role(world: CatalogWorld) -> None:
    product = await world.create()
    user = world.stub(SHOPPER)
    denied = [
        await rpc_error(user.CreateProduct(create_request())),
        await rpc_error(
            user.UpdateProduct(product_pb2.UpdateProductRequest(id=product.id, name="Mine"))
        ),
        await rpc_error(user.DeleteProduct(product_pb2.DeleteProductRequest(id=product.id))),
        await rpc_error(
            user.AddProductImage(
                product_pb2.AddProductImageRequest(product_id=product.id, url="http://x/y.png")
            )
        ),
    ]
    assert [e.code for e in denied] == [ErrorCode.PERMISSION_DENIED] * 4
    anonymous = await rpc_error(world.stub(ANONYMOUS).CreateProduct(create_request()))
    assert anonymous.code == ErrorCode.UNAUTHENTICATED
    system = world.stub(Caller.system("demo-loader"))
    assert (await system.CreateProduct(create_request())).id
    assert len(await world.events()) == 2  # the admin's and the system caller's creates only


async def test_invalid_fields_are_named_and_nothing_is_written(world: CatalogWorld) -> None:
    error = await rpc_error(
        world.stub().CreateProduct(
            create_request("bad sku!", name="  ", currency="usd", category="", price_minor=-1)
        )
    )
    assert error.code == ErrorCode.INVALID_ARGUMENT
    assert {f.field for f in error.fields} == {"sku", "name", "currency", "category", "price_minor"}
    assert await world.events() == []


async def test_a_duplicate_sku_is_already_exists(world: CatalogWorld) -> None:
    await world.create("DUP-1")
    error = await rpc_error(world.create("DUP-1", name="Another"))
    assert (error.code, error.reason, error.http_status) == (
        ErrorCode.ALREADY_EXISTS,
        "duplicate_sku",
        409,
    )
    assert [f.field for f in error.fields] == ["sku"]
    assert len(await world.events()) == 1


# --- GetProduct / GetProducts --------------------------------------------------------------


async def test_unknown_and_deleted_products_are_not_found(world: CatalogWorld) -> None:
    product = await world.create()
    await world.stub().DeleteProduct(product_pb2.DeleteProductRequest(id=product.id))
    reader = world.stub(ANONYMOUS)
    for product_id in ("no-such-product", product.id):
        error = await rpc_error(reader.GetProduct(product_pb2.GetProductRequest(id=product_id)))
        assert error.code == ErrorCode.NOT_FOUND


async def test_batch_read_lists_unknown_and_deleted_ids_as_missing(world: CatalogWorld) -> None:
    first, second, gone = await world.create(), await world.create(), await world.create()
    await world.stub().DeleteProduct(product_pb2.DeleteProductRequest(id=gone.id))
    answer = await world.stub(Caller.system("order")).GetProducts(
        product_pb2.GetProductsRequest(ids=[second.id, "nope", first.id, gone.id, second.id])
    )
    assert [p.id for p in answer.products] == [second.id, first.id]
    assert answer.products[0].price_minor == 1999
    assert list(answer.missing_ids) == ["nope", gone.id]


# --- UpdateProduct / DeleteProduct / AddProductImage ---------------------------------------


async def test_partial_update_changes_only_what_is_set_and_emits_once(world: CatalogWorld) -> None:
    product = await world.create("UPD-1")
    request = product_pb2.UpdateProductRequest(
        id=product.id, name="Studio Headphones", price_minor=2500
    )
    request.attributes.SetInParent()
    fill_attribute(request.attributes.values["color"], "white")
    updated = await world.stub().UpdateProduct(request)
    assert (updated.name, updated.price_minor, updated.sku) == ("Studio Headphones", 2500, "UPD-1")
    assert (updated.description, updated.category) == (product.description, product.category)
    assert dict(updated.attributes).keys() == {"color"}
    assert updated.attributes["color"].string_value == "white"

    same = await world.stub().UpdateProduct(
        product_pb2.UpdateProductRequest(id=product.id, name="Studio Headphones")
    )
    assert same.updated_at == updated.updated_at  # nothing changed: no new version

    created, changed = await world.events()
    assert (created.name, changed.name) == ("Wireless Headphones", "Studio Headphones")
    assert (changed.price, changed.attributes, changed.sku) == (
        Decimal("25.00"),
        {"color": "white"},
        "UPD-1",
    )


async def test_update_validation_sku_clash_and_unknown_product(world: CatalogWorld) -> None:
    await world.create("TAKEN-1")
    product = await world.create("MINE-1")
    admin = world.stub()
    invalid = await rpc_error(
        admin.UpdateProduct(product_pb2.UpdateProductRequest(id=product.id, currency="dollars"))
    )
    assert (invalid.code, [f.field for f in invalid.fields]) == (
        ErrorCode.INVALID_ARGUMENT,
        ["currency"],
    )
    clash = await rpc_error(
        admin.UpdateProduct(product_pb2.UpdateProductRequest(id=product.id, sku="TAKEN-1"))
    )
    assert (clash.code, clash.reason) == (ErrorCode.ALREADY_EXISTS, "duplicate_sku")
    missing = await rpc_error(
        admin.UpdateProduct(product_pb2.UpdateProductRequest(id="nope", name="x"))
    )
    assert missing.code == ErrorCode.NOT_FOUND
    assert len(await world.events()) == 2


async def test_delete_is_soft_idempotent_and_announced(world: CatalogWorld) -> None:
    product = await world.create("DEL-1")
    admin = world.stub()
    await admin.DeleteProduct(product_pb2.DeleteProductRequest(id=product.id))
    await admin.DeleteProduct(product_pb2.DeleteProductRequest(id=product.id))  # no-op
    _created, deleted = await world.events()
    assert (deleted.product_id, deleted.deleted, deleted.sku) == (product.id, True, "DEL-1")
    page = await world.stub(ANONYMOUS).ListProducts(product_pb2.ListProductsRequest())
    assert product.id not in [p.id for p in page.items]
    unknown = await rpc_error(admin.DeleteProduct(product_pb2.DeleteProductRequest(id="nope")))
    assert unknown.code == ErrorCode.NOT_FOUND
    # The sku stays taken by the deleted product (old orders still resolve it).
    assert (await rpc_error(world.create("DEL-1"))).reason == "duplicate_sku"


async def test_add_image_appends_once_per_url(world: CatalogWorld) -> None:
    product = await world.create()
    admin = world.stub()
    url = "http://127.0.0.1:8061/images/abc.png"
    request = product_pb2.AddProductImageRequest(product_id=product.id, url=url)
    with_image = await admin.AddProductImage(request)
    again = await admin.AddProductImage(request)
    assert list(with_image.image_urls) == list(again.image_urls) == [url]
    _, event = await world.events()
    assert (event.image_url, event.image_urls) == (url, [url])
    bad = await rpc_error(
        admin.AddProductImage(product_pb2.AddProductImageRequest(product_id=product.id, url=""))
    )
    assert (bad.code, [f.field for f in bad.fields]) == (ErrorCode.INVALID_ARGUMENT, ["url"])


# --- ListProducts ---------------------------------------------------------------------------


async def test_pages_walk_every_product_once_in_a_stable_order(world: CatalogWorld) -> None:
    audio = [(await world.create(category="audio")).id for _ in range(5)]
    video = [(await world.create(category="video")).id for _ in range(2)]
    reader = world.stub(ANONYMOUS)
    seen: list[str] = []
    cursor = ""
    for _ in range(10):
        page = await reader.ListProducts(
            product_pb2.ListProductsRequest(category="audio", limit=2, cursor=cursor)
        )
        assert len(page.items) <= 2
        seen += [p.id for p in page.items]
        cursor = page.next_cursor
        if not cursor:
            break
    assert sorted(seen) == sorted(audio)
    assert len(seen) == len(set(seen))
    everything = await reader.ListProducts(product_pb2.ListProductsRequest())
    assert {p.id for p in everything.items} == set(audio + video)  # one page: default size 20
    assert everything.next_cursor == ""
    again = await reader.ListProducts(product_pb2.ListProductsRequest())
    assert [p.id for p in again.items] == [p.id for p in everything.items]


async def test_bad_page_requests_name_the_field(world: CatalogWorld) -> None:
    reader = world.stub(ANONYMOUS)
    too_big = await rpc_error(reader.ListProducts(product_pb2.ListProductsRequest(limit=101)))
    assert [f.field for f in too_big.fields] == ["limit"]
    forged = await rpc_error(reader.ListProducts(product_pb2.ListProductsRequest(cursor="!!bogus")))
    assert (forged.code, [f.field for f in forged.fields]) == (
        ErrorCode.INVALID_ARGUMENT,
        ["cursor"],
    )
    assert (await reader.ListProducts(product_pb2.ListProductsRequest(limit=100))).next_cursor == ""


# --- with a real auth-service: the bearer token decides, not the forwarded roles ----------

CHEAP = PasswordHashing(Argon2Parameters(time_cost=1, memory_cost_kib=1024, parallelism=1))


async def test_a_forged_admin_role_next_to_a_user_token_is_denied(tmp_path: Path) -> None:
    auth_urls = fresh_database_url("auth", "sqlite", tmp_path / "auth")
    product_urls = fresh_database_url("product", "sqlite", tmp_path / "product")
    auth_db, product_db = Database(await anext(auth_urls)), Database(await anext(product_urls))
    kv = open_kv("memory://", namespace="auth")
    auth = Auth(auth_db, kv, KeySet(auth_store.signing_key_from({}, tmp_path)), hashing=CHEAP)
    auth_server = create_server("auth", LocalTokenVerifier(auth))
    auth_pb2_grpc.add_AuthServiceServicer_to_server(AuthServicer(auth), auth_server)
    auth_target = f"127.0.0.1:{auth_server.add_insecure_port('127.0.0.1:0')}"
    await auth_server.start()
    verifier = JwksTokenVerifier(auth_target, service="product")
    server = create_server("product", verifier)
    product_pb2_grpc.add_ProductServiceServicer_to_server(
        ProductServicer(Catalog(product_db)), server
    )
    world = CatalogWorld(product_db, f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}", [])
    await server.start()
    auth_channel = create_channel(auth_target, service="test", caller=ANONYMOUS)
    try:
        auth_stub = auth_pb2_grpc.AuthServiceStub(auth_channel)
        await auth.ensure_admin("admin@emporium.local", "admin-password-0123")
        await auth_stub.Register(
            auth_pb2.RegisterRequest(
                email="eve@example.com", password="eve-password-0123", name="Eve"
            )
        )
        tokens = {}
        for email, password in [
            ("admin@emporium.local", "admin-password-0123"),
            ("eve@example.com", "eve-password-0123"),
        ]:
            pair = await auth_stub.Login(auth_pb2.LoginRequest(email=email, password=password))
            tokens[email] = (pair.user_id, pair.access_token)
        eve_id, eve_token = tokens["eve@example.com"]
        forged = world.stub(Caller(eve_id, frozenset({"admin"}), eve_token))
        denied = await rpc_error(forged.CreateProduct(create_request()))
        assert denied.code == ErrorCode.PERMISSION_DENIED
        admin_id, admin_token = tokens["admin@emporium.local"]
        admin = world.stub(Caller(admin_id, frozenset({"user"}), admin_token))
        assert (await admin.CreateProduct(create_request("REAL-ADMIN"))).sku == "REAL-ADMIN"
        assert [e.sku for e in await world.events()] == ["REAL-ADMIN"]
    finally:
        for channel in [*world.channels, auth_channel]:
            await channel.close()
        await verifier.close()
        await server.stop(None)
        await auth_server.stop(None)
        await kv.close()
        await auth_db.close()
        await product_db.close()
        await auth_urls.aclose()
        await product_urls.aclose()
