"""Alembic environment of order-service: its MetaData, run by the shared chassis code
(`emporium.chassis.migrations`), on SQLite and PostgreSQL alike."""

from emporium.chassis.migrations import run_env
from emporium.services.order.store import metadata

run_env(metadata)
