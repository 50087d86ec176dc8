"""Stock levels and reservations.

`stock.version` guards against lost updates next to the row locks; `reservations` is keyed
by order id (the idempotency key of ReserveStock) and indexed for the expiry sweeper.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "stock",
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("on_hand", sa.BigInteger(), nullable=False),
        sa.Column("reserved", sa.BigInteger(), nullable=False),
        sa.Column("low_stock_threshold", sa.BigInteger(), nullable=False),
        sa.Column("low_alerted", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sku", name=op.f("pk_stock")),
    )
    op.create_table(
        "reservations",
        sa.Column("order_id", sa.String(64), nullable=False),
        sa.Column("lines", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("restocked", sa.Boolean(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("order_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("order_id", name=op.f("pk_reservations")),
    )
    op.create_index("ix_reservations_status_expires_at", "reservations", ["status", "expires_at"])


def downgrade() -> None:
    op.drop_index("ix_reservations_status_expires_at", table_name="reservations")
    op.drop_table("reservations")
    op.drop_table("stock")
