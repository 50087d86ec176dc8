"""Fixtures of the chaos suite: every scenario runs on both profiles (see support.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.backends import backend_url
from tests.chaos.support import Profile
from tests.events_support import ScratchDatabase, fresh_database


@pytest.fixture(params=["embedded", "production"], ids=["embedded", "production"])
def profile(request: pytest.FixtureRequest, tmp_path: Path) -> Profile:
    if request.param == "embedded":
        return Profile("embedded", "sqlite", "", f"embedded://{tmp_path}/bus.sqlite3")
    return Profile("production", "postgresql", backend_url("postgresql"), backend_url("kafka"))


@pytest.fixture
async def producer_db(profile: Profile, tmp_path: Path) -> AsyncIterator[ScratchDatabase]:
    async with fresh_database(profile.db_kind, tmp_path, profile.pg_url) as db:
        yield db


@pytest.fixture
async def consumer_db(profile: Profile, tmp_path: Path) -> AsyncIterator[ScratchDatabase]:
    async with fresh_database(profile.db_kind, tmp_path, profile.pg_url) as db:
        yield db
