"""The tables of the event plumbing, added by each service to its own MetaData.

The outbox columns follow Debezium's outbox event router (`id`, `aggregatetype`,
`aggregateid`, `type`, `payload`) so log-tailing CDC can replace the built-in relay without a
migration (`topic` is the router's `route.by.field`); `seq` gives the relay a monotonic
publish order, `headers` carries the CloudEvents source and the trace context,
`published_at` is what the relay sets once the broker acknowledged the row.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.sql.schema import SchemaItem

OUTBOX = "outbox"
INBOX = "inbox"
LEASE = "event_lease"

# SQLite only auto-increments an INTEGER PRIMARY KEY, PostgreSQL wants 64 bits for a log.
SEQ_TYPE = BigInteger().with_variant(Integer, "sqlite")


def outbox_columns(name: str = OUTBOX) -> list[SchemaItem]:
    """Fresh column objects (a Column belongs to one table, so build them per call)."""
    return [
        Column("seq", SEQ_TYPE, primary_key=True, autoincrement=True),
        Column("id", String(36), nullable=False, unique=True),
        Column("topic", String(128), nullable=False),
        Column("aggregatetype", String(64), nullable=False),
        Column("aggregateid", String(128), nullable=False),
        Column("type", String(128), nullable=False),
        Column("payload", Text, nullable=False),
        Column("headers", Text, nullable=False, default="{}"),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("published_at", DateTime(timezone=True), nullable=True),
        # The relay's only query: unpublished rows in seq order. A partial index stays as small
        # as the backlog however long published rows are kept.
        Index(
            f"ix_{name}_unpublished",
            "seq",
            postgresql_where=text("published_at IS NULL"),
            sqlite_where=text("published_at IS NULL"),
        ),
    ]


def inbox_columns(name: str = INBOX) -> list[SchemaItem]:
    return [
        Column("consumer", String(128), nullable=False),
        Column("event_id", String(64), nullable=False),
        Column("processed_at", DateTime(timezone=True), nullable=False),
        PrimaryKeyConstraint("consumer", "event_id", name=f"pk_{name}"),
    ]


def lease_columns(name: str = LEASE) -> list[SchemaItem]:
    return [
        Column("name", String(128), primary_key=True),
        Column("holder", String(128), nullable=False),
        Column("expires_at", DateTime(timezone=True), nullable=False),
    ]


def outbox_table(metadata: MetaData, name: str = OUTBOX) -> Table:
    """The transactional outbox: one row per event, written in the state change's transaction."""
    return Table(name, metadata, *outbox_columns(name))


def inbox_table(metadata: MetaData, name: str = INBOX) -> Table:
    """Events a consumer has applied, keyed by (consumer, event id): redeliveries are no-ops."""
    return Table(name, metadata, *inbox_columns(name))


def lease_table(metadata: MetaData, name: str = LEASE) -> Table:
    """Named leases with an expiry: the relay's single-active guard on SQLite."""
    return Table(name, metadata, *lease_columns(name))


# The default tables, for code that only needs to read and write them (`add_event`, the relay,
# the inbox): a schema definition, not a connection, so it is safe to build at import time.
# A service adds its own copies to its MetaData with `outbox_table(metadata)` etc. (or its
# Alembic migration calls `migration.create_event_tables`); both describe the same tables.
EVENT_METADATA = MetaData()
OUTBOX_TABLE = outbox_table(EVENT_METADATA)
INBOX_TABLE = inbox_table(EVENT_METADATA)
LEASE_TABLE = lease_table(EVENT_METADATA)
