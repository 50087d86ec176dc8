"""Contract suite of the OLAP port: the same SQL on chDB (in-process) and on a real ClickHouse
server (skipped when none is configured: no server can be installed from this machine's
registries, see tests/backends.py)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from emporium.chassis.olap import OlapError, OlapStore, open_olap
from tests.backends import backend_url

T0 = datetime(2024, 3, 1, 10, 15, tzinfo=UTC)


@pytest.fixture(params=["chdb", "clickhouse"], ids=["chdb", "clickhouse"])
async def olap(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[OlapStore]:
    url = f"chdb://{tmp_path}/olap" if request.param == "chdb" else backend_url("clickhouse")
    store = open_olap(url)
    await store.ping()
    yield store
    await store.close()


@pytest.fixture
async def orders_table(olap: OlapStore) -> AsyncIterator[str]:
    """A fresh fact table (names are unique: servers are shared between runs)."""
    name = f"orders_{uuid.uuid4().hex[:12]}"
    await olap.execute(
        f"""CREATE TABLE {name} (
              event_id String,
              occurred_at DateTime64(3, 'UTC'),
              category LowCardinality(String),
              amount_minor Int64,
              amount Decimal(12, 2)
            ) ENGINE = MergeTree ORDER BY (occurred_at, event_id)"""
    )
    yield name
    await olap.execute(f"DROP TABLE IF EXISTS {name}")


async def _load(olap: OlapStore, table: str) -> None:
    rows = [
        ("e1", T0, "books", 1000, Decimal("10.00")),
        ("e2", T0 + timedelta(minutes=30), "books", 250, Decimal("2.50")),
        ("e3", T0 + timedelta(hours=1, minutes=5), "games", 4000, Decimal("40.00")),
        ("e4", T0 + timedelta(days=1), "books", 99, Decimal("0.99")),
        # a naive datetime is taken as UTC; an aware one in another zone is converted
        ("e5", datetime(2024, 3, 2, 12, 0), "games", 1, Decimal("0.01")),
        (
            "e6",
            datetime(2024, 3, 2, 14, 0, tzinfo=timezone(timedelta(hours=2))),
            "games",
            2,
            Decimal("0.02"),
        ),
    ]
    await olap.insert(
        table, ["event_id", "occurred_at", "category", "amount_minor", "amount"], rows
    )


async def test_insert_and_read_back_python_values(olap: OlapStore, orders_table: str) -> None:
    await _load(olap, orders_table)
    rows = await olap.query(
        f"SELECT event_id, occurred_at, category, amount_minor, amount, toDate(occurred_at) AS d "
        f"FROM {orders_table} ORDER BY event_id"
    )
    assert [r["event_id"] for r in rows] == ["e1", "e2", "e3", "e4", "e5", "e6"]
    first = rows[0]
    assert first["occurred_at"] == T0
    assert first["occurred_at"].utcoffset() == timedelta(0)
    assert first["amount_minor"] == 1000
    assert first["amount"] == Decimal("10.00")
    assert first["d"] == date(2024, 3, 1)
    assert rows[4]["occurred_at"] == datetime(2024, 3, 2, 12, 0, tzinfo=UTC)
    assert rows[5]["occurred_at"] == datetime(2024, 3, 2, 12, 0, tzinfo=UTC)


async def test_hourly_and_daily_buckets(olap: OlapStore, orders_table: str) -> None:
    await _load(olap, orders_table)
    hourly = await olap.query(
        f"""SELECT toStartOfHour(occurred_at) AS bucket, count() AS orders,
                   sum(amount_minor) AS revenue_minor
            FROM {orders_table} GROUP BY bucket ORDER BY bucket LIMIT 2"""
    )
    assert hourly == [
        {"bucket": T0.replace(minute=0), "orders": 2, "revenue_minor": 1250},
        {"bucket": T0.replace(hour=11, minute=0), "orders": 1, "revenue_minor": 4000},
    ]
    daily = await olap.query(
        f"""SELECT toStartOfDay(occurred_at) AS day, category, count() AS orders,
                   sum(amount_minor) AS revenue_minor
            FROM {orders_table} GROUP BY day, category ORDER BY day, category"""
    )
    assert [(r["day"], r["category"], r["orders"], r["revenue_minor"]) for r in daily] == [
        (datetime(2024, 3, 1, tzinfo=UTC), "books", 2, 1250),
        (datetime(2024, 3, 1, tzinfo=UTC), "games", 1, 4000),
        (datetime(2024, 3, 2, tzinfo=UTC), "books", 1, 99),
        (datetime(2024, 3, 2, tzinfo=UTC), "games", 2, 3),
    ]


async def test_parameterised_time_range_and_values_are_bound_not_pasted(
    olap: OlapStore, orders_table: str
) -> None:
    await _load(olap, orders_table)
    rows = await olap.query(
        f"""SELECT count() AS n, sum(amount_minor) AS total FROM {orders_table}
            WHERE occurred_at >= {{since:DateTime64(3, 'UTC')}}
              AND occurred_at < {{until:DateTime64(3, 'UTC')}}
              AND category = {{category:String}}""",
        {"since": T0, "until": T0 + timedelta(hours=2), "category": "books"},
    )
    assert rows == [{"n": 2, "total": 1250}]
    # a hostile string is a value, not SQL
    hostile = "books' OR 1=1 --"
    rows = await olap.query(
        f"SELECT count() AS n FROM {orders_table} WHERE category = {{c:String}}", {"c": hostile}
    )
    assert rows == [{"n": 0}]
    rows = await olap.query("SELECT {s:String} AS s, {i:Int64} AS i", {"s": hostile, "i": -7})
    assert rows == [{"s": hostile, "i": -7}]


async def test_replacing_merge_tree_counts_a_redelivered_event_once(olap: OlapStore) -> None:
    """Consumers are idempotent: a redelivered event inserted twice counts once with FINAL
    (and with uniqExact on any MergeTree)."""
    table = f"events_{uuid.uuid4().hex[:12]}"
    await olap.execute(
        f"""CREATE TABLE {table} (event_id String, occurred_at DateTime64(3, 'UTC'),
              amount_minor Int64)
            ENGINE = ReplacingMergeTree ORDER BY event_id"""
    )
    try:
        cols = ["event_id", "occurred_at", "amount_minor"]
        await olap.insert(table, cols, [("a", T0, 100), ("b", T0, 200)])
        await olap.insert(table, cols, [("a", T0, 100)])  # redelivery, separate batch
        final = await olap.query(f"SELECT count() AS n, sum(amount_minor) AS s FROM {table} FINAL")
        assert final == [{"n": 2, "s": 300}]
        unique = await olap.query(f"SELECT uniqExact(event_id) AS n FROM {table}")
        assert unique == [{"n": 2}]
    finally:
        await olap.execute(f"DROP TABLE IF EXISTS {table}")


async def test_empty_result_and_errors(olap: OlapStore, orders_table: str) -> None:
    assert await olap.query(f"SELECT * FROM {orders_table}") == []
    await olap.insert(orders_table, ["event_id"], [])  # an empty batch is a no-op
    with pytest.raises(OlapError):
        await olap.query("SELECT * FROM no_such_table_here")
    with pytest.raises(OlapError):
        await olap.insert("bad name; DROP", ["event_id"], [("x",)])
    with pytest.raises(OlapError):
        await olap.insert(orders_table, ["event_id`"], [("x",)])
