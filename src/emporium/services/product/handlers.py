"""product-service use cases: one function per command, each in one unit of work.

Who may do what: reads are public (the catalog is the shop window); every write needs the
admin role or a system caller (`require_admin`, checked before any input is looked at, so a
user learns nothing from a write attempt but 403).

Every change records `product.updated` in the outbox of the same unit of work (the whole
product, `deleted=True` on delete), so search, recommendation and cdn see exactly the
committed changes, once each; a change that changes nothing records nothing.

`GetProducts` (order-service's price lookup) lists unknown AND deleted ids in `missing_ids`:
a deleted product cannot be bought, and the order is refused by the caller.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from emporium.chassis import money
from emporium.chassis.db import Database, UnitOfWork
from emporium.chassis.errors import DomainError, ErrorCode, FieldError, invalid, not_found
from emporium.chassis.events.outbox import add_event
from emporium.chassis.rpc.identity import require_admin
from emporium.contracts.events.product_updated import TOPIC, ProductUpdatedV1
from emporium.services.product import store
from emporium.services.product.domain import Product, duplicate_sku

SERVICE = "product"
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
MAX_BATCH_IDS = 500
MAX_ID_LENGTH = 64


@dataclass(frozen=True)
class ProductPage:
    items: list[Product]
    next_cursor: str


@dataclass(frozen=True)
class ProductBatch:
    products: list[Product]
    missing_ids: list[str]


def product_updated(product: Product) -> ProductUpdatedV1:
    """The event of a product's current state, every optional field filled (price in major
    units as the model wants it: exact `Decimal`, never a float)."""
    return ProductUpdatedV1(
        product_id=product.id,
        name=product.name,
        description=product.description,
        category=product.category,
        price=money.from_minor(product.price_minor, product.currency),
        currency=product.currency,
        image_url=product.image_urls[0] if product.image_urls else None,
        deleted=product.deleted,
        sku=product.sku,
        attributes=dict(product.attributes),
        image_urls=list(product.image_urls),
        created_at=product.created_at,
    )


async def _record(uow: UnitOfWork, product: Product) -> None:
    await add_event(uow, TOPIC, product_updated(product), source=SERVICE)  # type: ignore[arg-type]  # ClassVar TOPIC


def _check_id(product_id: str, field: str = "id") -> None:
    if not product_id or len(product_id) > MAX_ID_LENGTH:
        raise invalid("invalid product id", FieldError(field, "must be 1-64 characters"))


class Catalog:
    """The use cases, with their ports; built once by app.py."""

    def __init__(
        self,
        db: Database,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        self.db = db
        self.clock = clock
        self.new_id = new_id

    # -- writes (admin) -------------------------------------------------------------------

    async def create_product(self, fields: Mapping[str, object]) -> Product:
        """Not idempotent by design (a retry gets `duplicate_sku`, the sku being the key)."""
        require_admin()
        product = Product.create(self.new_id(), fields, self.clock())
        async with self.db.unit_of_work() as uow:
            if await store.sku_owner(uow.session, product.sku) is not None:
                raise duplicate_sku(product.sku)
            if not await store.insert_product(uow.session, product):
                raise duplicate_sku(product.sku)  # a concurrent create won the race
            await _record(uow, product)
            await uow.commit()
        return product

    async def update_product(self, product_id: str, changes: Mapping[str, object]) -> Product:
        """Partial update; a no-op (nothing differs) neither bumps the version nor emits."""
        require_admin()
        _check_id(product_id)
        async with self.db.unit_of_work() as uow:
            current = await self._live_for_update(uow, product_id)
            change = current.product.patch(changes, self.clock())
            if change.is_noop:
                return current.product
            if "sku" in change.changed:
                owner = await store.sku_owner(uow.session, change.product.sku)
                if owner is not None and owner != product_id:
                    raise duplicate_sku(change.product.sku)
            await self._save(uow, change.product, current.version)
            await uow.commit()
        return change.product

    async def delete_product(self, product_id: str) -> None:
        """Soft delete; idempotent (deleting a deleted product records nothing more)."""
        require_admin()
        _check_id(product_id)
        async with self.db.unit_of_work() as uow:
            current = await store.get_product(uow.session, product_id, for_update=True)
            if current is None:
                raise not_found(f"product {product_id} not found")
            if current.product.deleted:
                return
            deleted = current.product.delete(self.clock())
            await self._save(uow, deleted, current.version)
            await uow.commit()

    async def add_image(self, product_id: str, url: str) -> Product:
        """Append an image URL cdn-service stored; idempotent by url."""
        require_admin()
        _check_id(product_id, "product_id")
        async with self.db.unit_of_work() as uow:
            current = await self._live_for_update(uow, product_id)
            updated = current.product.add_image(url, self.clock())
            if updated == current.product:
                return updated
            await self._save(uow, updated, current.version)
            await uow.commit()
        return updated

    async def _live_for_update(self, uow: UnitOfWork, product_id: str) -> store.StoredProduct:
        current = await store.get_product(uow.session, product_id, for_update=True)
        if current is None or current.product.deleted:
            raise not_found(f"product {product_id} not found")
        return current

    async def _save(self, uow: UnitOfWork, product: Product, version: int) -> None:
        if not await store.update_product(uow.session, product, version):
            owner = await store.sku_owner(uow.session, product.sku)
            if owner is not None and owner != product.id:
                raise duplicate_sku(product.sku)
            raise DomainError(
                f"product {product.id} changed concurrently, retry",
                ErrorCode.CONFLICT,
                "concurrent_update",
            )
        await _record(uow, product)

    # -- reads (public) -------------------------------------------------------------------

    async def get_product(self, product_id: str) -> Product:
        _check_id(product_id)
        async with self.db.read() as conn:
            stored = await store.get_product(conn, product_id)
        if stored is None or stored.product.deleted:
            raise not_found(f"product {product_id} not found")
        return stored.product

    async def get_products(self, ids: Sequence[str]) -> ProductBatch:
        """Live products in the order asked (duplicates once); the rest in `missing_ids`."""
        unique = list(dict.fromkeys(ids))
        if len(unique) > MAX_BATCH_IDS:
            raise invalid("too many ids", FieldError("ids", f"at most {MAX_BATCH_IDS}"))
        wanted = [i for i in unique if i and len(i) <= MAX_ID_LENGTH]
        async with self.db.read() as conn:
            found = await store.get_products(conn, wanted)
        live = [found[i].product for i in unique if i in found and not found[i].product.deleted]
        live_ids = {p.id for p in live}
        return ProductBatch(live, [i for i in unique if i not in live_ids])

    async def list_products(self, category: str, limit: int, cursor: str) -> ProductPage:
        size, after = _page(limit, cursor)
        async with self.db.read() as conn:
            rows = await store.list_products(conn, category.strip(), size + 1, after)
        items = [row.product for row in rows[:size]]
        more = len(rows) > size
        return ProductPage(items, store.encode_cursor(items[-1]) if more else "")


def _page(limit: int, cursor: str) -> tuple[int, tuple[datetime, str] | None]:
    """(page size, position after which to start); 0 means the default size."""
    errors = []
    if limit < 0 or limit > MAX_PAGE_SIZE:
        errors.append(FieldError("limit", f"must be between 1 and {MAX_PAGE_SIZE}"))
    after = None
    if cursor:
        try:
            after = store.decode_cursor(cursor)
        except store.BadCursor:
            errors.append(FieldError("cursor", "is not a cursor this service issued"))
    if errors:
        raise invalid("invalid page request", *errors)
    return limit or DEFAULT_PAGE_SIZE, after
