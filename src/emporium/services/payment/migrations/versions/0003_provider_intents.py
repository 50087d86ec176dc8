"""Payments become a reconciled state machine towards the provider.

New columns for the reconciler (`attempts`, `next_attempt_at`, `last_error`) and
`announced` (an `order.completed` "captured" went out, so a later give-back is announced
too). `needs_reversal` goes: it was stored and never acted on. A payment flagged with it
(captured by the provider after it had been voided here) becomes VOIDING, so the reconciler
now reverses that capture at the provider.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("payments") as batch:
        batch.add_column(
            sa.Column("announced", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("last_error", sa.String(200), nullable=True))
    op.execute(
        "UPDATE payments SET announced = (status IN ('CAPTURED', 'REFUNDED') OR needs_reversal)"
    )
    op.execute("UPDATE payments SET status = 'VOIDING' WHERE needs_reversal")
    with op.batch_alter_table("payments") as batch:
        batch.drop_column("needs_reversal")
        batch.alter_column("announced", server_default=None)
        batch.alter_column("attempts", server_default=None)
    op.create_index(op.f("ix_payments_open_intents"), "payments", ["status", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_payments_open_intents"), table_name="payments")
    with op.batch_alter_table("payments") as batch:
        batch.add_column(
            sa.Column("needs_reversal", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.execute(
        "UPDATE payments SET status = 'VOIDED', needs_reversal = true WHERE status = 'VOIDING'"
    )
    with op.batch_alter_table("payments") as batch:
        batch.drop_column("last_error")
        batch.drop_column("next_attempt_at")
        batch.drop_column("attempts")
        batch.drop_column("announced")
