"""auth-service's tables and queries: every SQL statement of the service lives here.

`metadata` is what Alembic compares the migrations against (`migrations/env.py`).
"""

from __future__ import annotations

from sqlalchemy import text

from emporium.chassis.db import Database
from emporium.chassis.migrations import service_metadata

metadata = service_metadata()


async def ping(db: Database) -> bool:
    """Readiness: the database answers a trivial query."""
    async with db.session() as session:
        await session.execute(text("SELECT 1"))
    return True
