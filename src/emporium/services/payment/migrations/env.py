"""Alembic environment of payment-service: its MetaData, run by the shared chassis code
(`emporium.chassis.migrations`), on SQLite and PostgreSQL alike."""

from emporium.chassis.migrations import run_env
from emporium.services.payment.store import metadata

run_env(metadata)
