"""Why a parked saga is parked (`emporium sagas list` shows it to the operator).

Orders of sagas started before this version that were still reserving stock had no `orders`
row yet; the runner now writes the row when it is missing (store.save_order), so no backfill
is needed here.

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
    with op.batch_alter_table("checkout_sagas") as batch:
        batch.add_column(sa.Column("parked_reason", sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("checkout_sagas") as batch:
        batch.drop_column("parked_reason")
