"""The event tables inside an Alembic revision: every service's first migration calls these.

The columns come from `tables.py`, so a migration and the MetaData a service queries through
can never disagree.
"""

from __future__ import annotations

from typing import Any

from emporium.chassis.events.tables import (
    INBOX,
    LEASE,
    OUTBOX,
    inbox_columns,
    lease_columns,
    outbox_columns,
)


def create_event_tables(op: Any) -> None:
    """Create outbox (with its unpublished-rows index), inbox and lease tables via `alembic.op`."""
    op.create_table(OUTBOX, *outbox_columns(OUTBOX))
    op.create_table(INBOX, *inbox_columns(INBOX))
    op.create_table(LEASE, *lease_columns(LEASE))


def drop_event_tables(op: Any) -> None:
    """Undo `create_event_tables` (the outbox index goes with its table)."""
    op.drop_table(LEASE)
    op.drop_table(INBOX)
    op.drop_table(OUTBOX)
