"""Alembic environment of user-service: its MetaData, run by the shared chassis code
(`emporium.chassis.migrations`), on SQLite and PostgreSQL alike."""

from emporium.chassis.migrations import run_env
from emporium.services.user.store import metadata

run_env(metadata)
