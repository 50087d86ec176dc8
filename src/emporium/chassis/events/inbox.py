"""Idempotent consumers: apply an event's effect at most once per consumer group.

The bus delivers at least once (a relay may publish twice, a consumer may crash before it
commits its offset), so every consumer must make a redelivery harmless. How depends on where
the consumer keeps its state:

* `RelationalInbox` (the default, for services with a relational database): the row
  `(consumer group, event id)` is inserted in the same transaction as the handler's effect,
  before it (`INSERT ... ON CONFLICT DO NOTHING`): a duplicate inserts nothing and the
  transaction is rolled back without running the handler. On PostgreSQL a concurrent second
  insert of the same key waits for the first transaction, so even two members handling the
  same event at once during a rebalance apply it once.
* `StoreIdempotentInbox`, for services without one (notification on documents, search on an
  index, recommendation on kv, analytics on OLAP, cdn on objects): the handler is called with
  `None` and its own write must be idempotent, keyed by something in the event: e.g. a
  document whose `_id` is the event id (insert, ignore duplicate key), an index document whose
  id is the product id written only if the event is newer (`time`/version check), a kv
  `SET NX inbox:<group>:<event id>` in the same MULTI as the effect, an OLAP table deduplicated
  by event id (ReplacingMergeTree), an object put under a content-addressed name.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession

from emporium.chassis.db import Database, insert_unless_taken
from emporium.chassis.events.envelope import Event
from emporium.chassis.events.outbox import now_utc
from emporium.chassis.events.tables import INBOX_TABLE

# `async def handle(uow_or_none, event) -> None`: the UnitOfWork of the inbox's transaction
# (relational), or None when the handler's own store is idempotent.
Handler = Callable[[Any, Event], Awaitable[None]]


class Inbox(ABC):
    """Runs a handler for an event at most once per consumer group (commit included)."""

    @abstractmethod
    async def apply_once(self, group: str, event: Event, handler: Handler) -> bool:
        """Run `handler` unless `group` already applied `event`; False for a duplicate.

        Returns only after the effect is durable: the caller commits the bus offset next."""


async def record_event(
    session: AsyncSession, group: str, event_id: str, table: Table = INBOX_TABLE
) -> bool:
    """Insert the inbox row in the session's transaction; False if it was already there."""
    return await insert_unless_taken(
        session, table, consumer=group, event_id=event_id, processed_at=now_utc()
    )


class RelationalInbox(Inbox):
    """The inbox table in the consumer's own database, one transaction with the effect."""

    def __init__(self, database: Database, table: Table = INBOX_TABLE) -> None:
        self.database = database
        self.table = table

    async def apply_once(self, group: str, event: Event, handler: Handler) -> bool:
        async with self.database.unit_of_work() as uow:
            if not await record_event(uow.session, group, event.id, self.table):
                return False  # leaving the block rolls the (empty) transaction back
            await handler(uow, event)
            await uow.commit()
        return True


class StoreIdempotentInbox(Inbox):
    """No inbox table: the handler (called with None) makes its own write idempotent."""

    async def apply_once(self, group: str, event: Event, handler: Handler) -> bool:
        await handler(None, event)
        return True
