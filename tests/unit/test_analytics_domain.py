"""Analytics rules (pure): report parameters, event -> fact rows, SQL shape, responses.
The SQL itself runs against chDB in tests/adapters/test_analytics_sql.py."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from emporium.chassis.errors import DomainError
from emporium.chassis.money import to_minor
from emporium.contracts.events import (
    InventoryLowV1,
    OrderCompletedV1,
    OrderCreatedV1,
    OrderLineV1,
    PaymentStatus,
)
from emporium.services.analytics.domain import (
    LINE_COLUMNS,
    ORDER_COLUMNS,
    PAYMENT_COLUMNS,
    STORE_EARLIEST,
    STORE_LATEST,
    ReportParams,
    Schema,
    buckets,
    low_stock_response,
    parse_report_params,
    sales_response,
    top_products_response,
)

NOW = datetime(2025, 3, 31, 12, 30, tzinfo=UTC)


def bad(params: dict[str, str | None]) -> set[str]:
    with pytest.raises(DomainError) as caught:
        parse_report_params(params, NOW)
    assert caught.value.http_status == 400
    return {f.field for f in caught.value.fields}


# -- parameters ------------------------------------------------------------------------------


def test_defaults_are_the_last_30_days_by_day() -> None:
    report = parse_report_params({}, NOW)
    assert report == ReportParams(NOW - timedelta(days=30), NOW, "day", 20, "USD")


def test_explicit_range_with_offsets_is_converted_to_utc() -> None:
    report = parse_report_params(
        {"from": "2025-03-01T09:00:00+09:00", "to": "2025-03-02T00:00:00Z", "granularity": "hour"},
        NOW,
    )
    assert report.since == datetime(2025, 3, 1, 0, 0, tzinfo=UTC)
    assert report.until == datetime(2025, 3, 2, tzinfo=UTC)
    assert report.granularity == "hour"


def test_unencoded_plus_in_offset_is_understood() -> None:
    report = parse_report_params({"from": "2025-03-01T09:00:00 09:00"}, NOW)
    assert report.since == datetime(2025, 3, 1, tzinfo=UTC)


def test_only_from_given_ends_now_and_only_to_given_starts_30_days_before() -> None:
    assert parse_report_params({"from": "2025-03-30T00:00:00Z"}, NOW).until == NOW
    to = datetime(2025, 2, 1, tzinfo=UTC)
    assert parse_report_params({"to": "2025-02-01T00:00:00Z"}, NOW).since == to - timedelta(30)


def test_from_after_to_names_from() -> None:
    assert bad({"from": "2025-03-02T00:00:00Z", "to": "2025-03-01T00:00:00Z"}) == {"from"}


def test_equal_from_and_to_is_an_empty_range() -> None:
    report = parse_report_params(
        {"from": "2025-03-01T00:00:00Z", "to": "2025-03-01T00:00:00Z"}, NOW
    )
    assert buckets(report) == []


@pytest.mark.parametrize("name", ["from", "to"])
def test_unparsable_time_names_its_field(name: str) -> None:
    assert bad({name: "yesterday"}) == {name}


def test_bad_granularity_limit_and_currency() -> None:
    assert bad({"granularity": "week", "limit": "0", "currency": "dollars"}) == {
        "granularity",
        "limit",
        "currency",
    }


def test_hourly_series_over_a_year_is_refused() -> None:
    with pytest.raises(DomainError) as caught:
        parse_report_params(
            {"from": "2024-01-01T00:00:00Z", "granularity": "hour"}, NOW, bucketed=True
        )
    assert {f.field for f in caught.value.fields} == {"granularity"}
    assert "use day" in caught.value.fields[0].message


def test_a_report_without_a_series_has_no_bucket_cap() -> None:
    """top-products over ten years: no buckets, so no `granularity` 400 (it used to be one)."""
    report = parse_report_params({"from": "2015-01-01T00:00:00Z"}, NOW)
    assert report.since == datetime(2015, 1, 1, tzinfo=UTC)
    with pytest.raises(DomainError) as caught:
        parse_report_params({"from": "2015-01-01T00:00:00Z"}, NOW, bucketed=True)
    assert "use day" not in caught.value.fields[0].message  # it is day already


@pytest.mark.parametrize(
    ("params", "since", "until"),
    [
        # The schemathesis 500: a far-past `to` (the default `from` went below year 1).
        ({"to": "0073-07-18T00:39:32.456Z"}, STORE_EARLIEST, STORE_EARLIEST),
        ({"to": "0001-01-05T00:00:00Z"}, STORE_EARLIEST, STORE_EARLIEST),
        # An odd offset on year 1 (UTC is year 0) and on 9999 (UTC is year 10000).
        ({"from": "0001-01-01T00:00:00+14:15"}, STORE_EARLIEST, NOW),
        ({"from": "2025-01-01T00:00:00Z", "to": "9999-12-31T23:00:00-14:15"}, None, STORE_LATEST),
    ],
)
def test_times_beyond_the_store_are_clamped_never_an_overflow(
    params: dict[str, str | None], since: datetime | None, until: datetime
) -> None:
    report = parse_report_params(params, NOW)
    assert report.since == (since or datetime(2025, 1, 1, tzinfo=UTC))
    assert report.until == until
    assert STORE_EARLIEST <= report.since <= report.until <= STORE_LATEST


def test_limit_bounds() -> None:
    assert parse_report_params({"limit": "100"}, NOW).limit == 100
    assert bad({"limit": "101"}) == {"limit"}
    assert bad({"limit": "x"}) == {"limit"}


def test_bind_gives_every_placeholder_a_value() -> None:
    report = parse_report_params({}, NOW)
    schema = Schema()
    for sql, params in (
        schema.sales_totals(report),
        schema.sales_series(report),
        schema.top_products(report),
        schema.low_stock_report(report),
    ):
        placeholders = set(re.findall(r"\{(\w+):", sql))
        assert placeholders <= set(params), sql
        assert "FINAL" in sql
        assert "'" not in re.sub(r"'UTC'", "", sql)  # no value pasted into the SQL


# -- facts -----------------------------------------------------------------------------------

AT = datetime(2025, 3, 1, 10, tzinfo=UTC)


def test_order_created_facts() -> None:
    event = OrderCreatedV1(
        order_id="o1",
        user_id="u1",
        lines=[
            OrderLineV1(sku="A", quantity=2, unit_price=Decimal("1.50")),
            OrderLineV1(sku="B", quantity=1, unit_price=Decimal("10")),
        ],
        total=Decimal("13.00"),
        currency="USD",
    )
    orders, lines = Schema().order_created("e1", AT, event)
    assert orders.table == "order_facts"
    assert orders.columns == ORDER_COLUMNS
    assert orders.rows == [("e1", AT, "o1", "u1", 1300, "USD", 3)]
    assert lines.table == "order_line_facts"
    assert lines.columns == LINE_COLUMNS
    assert lines.rows == [
        ("e1", 0, AT, "o1", "A", "A", 2, 150, 300, "USD"),
        ("e1", 1, AT, "o1", "B", "B", 1, 1000, 1000, "USD"),
    ]
    assert all(len(r) == len(LINE_COLUMNS) for r in lines.rows)


def test_order_line_facts_use_the_product_id_when_the_payload_has_one() -> None:
    event = OrderCreatedV1(
        order_id="o1",
        user_id="u1",
        lines=[OrderLineV1(sku="A", quantity=1, unit_price=Decimal("2"), product_id="p-A")],
        total=Decimal("2"),
        currency="USD",
    )
    _, lines = Schema().order_created("e1", AT, event)
    assert lines.rows == [("e1", 0, AT, "o1", "p-A", "A", 1, 200, 200, "USD")]


def test_order_completed_fact_keeps_declines_too() -> None:
    event = OrderCompletedV1(
        order_id="o1", payment_id="p1", amount=Decimal("13"), status=PaymentStatus.DECLINED
    )
    (batch,) = Schema().order_completed("e2", AT, event)
    assert batch.columns == PAYMENT_COLUMNS
    assert batch.rows == [("e2", AT, "o1", "p1", "declined", 1300, "USD")]


def test_inventory_low_fact_and_naive_time_taken_as_utc() -> None:
    (batch,) = Schema().inventory_low(
        "e3", datetime(2025, 3, 1, 10), InventoryLowV1(sku="S", available=1, threshold=3)
    )
    assert batch.table == "low_stock_facts"
    assert batch.rows == [("e3", AT, "S", 1, 3)]


def test_prefix_names_every_table_and_must_be_an_identifier() -> None:
    schema = Schema("t_abc_")
    assert all("t_abc_" in stmt for stmt in schema.ddl())
    assert schema.payments == "t_abc_payment_facts"
    with pytest.raises(ValueError):
        Schema("x; DROP TABLE y")


def test_ddl_is_idempotent_replacing_and_monthly() -> None:
    for stmt in Schema().ddl():
        assert stmt.startswith("CREATE TABLE IF NOT EXISTS")
        assert "ReplacingMergeTree" in stmt
        assert "PARTITION BY toYYYYMM(occurred_at)" in stmt
        assert re.search(r"ORDER BY \(occurred_at, event_id", stmt)


def test_to_minor() -> None:
    assert to_minor(Decimal("19.99"), "USD") == 1999
    assert to_minor(Decimal("1500"), "JPY") == 1500
    assert to_minor(Decimal("0.005"), "USD") == 0  # half-even


# -- responses -------------------------------------------------------------------------------


def test_buckets_cover_the_range() -> None:
    report = ReportParams(
        datetime(2025, 3, 1, 10, 30, tzinfo=UTC), datetime(2025, 3, 1, 13, tzinfo=UTC), "hour"
    )
    assert [b.hour for b in buckets(report)] == [10, 11, 12]
    daily = ReportParams(
        datetime(2025, 3, 1, 10, tzinfo=UTC), datetime(2025, 3, 3, 0, 1, tzinfo=UTC), "day"
    )
    assert [b.day for b in buckets(daily)] == [1, 2, 3]


def test_sales_response_fills_empty_buckets() -> None:
    report = ReportParams(
        datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 3, 1, 3, tzinfo=UTC), "hour"
    )
    series = [{"bucket": datetime(2025, 3, 1, 1, tzinfo=UTC), "orders": 2, "revenue_minor": 500}]
    body = sales_response(report, {"orders": 2, "paid_orders": 1, "revenue_minor": 500}, series)
    assert body == {
        "orders": 2,
        "paid_orders": 1,
        "revenue_minor": 500,
        "currency": "USD",
        "series": [
            {"bucket": "2025-03-01T00:00:00Z", "orders": 0, "revenue_minor": 0},
            {"bucket": "2025-03-01T01:00:00Z", "orders": 2, "revenue_minor": 500},
            {"bucket": "2025-03-01T02:00:00Z", "orders": 0, "revenue_minor": 0},
        ],
    }


def test_sales_response_with_null_totals_is_zero() -> None:
    report = ReportParams(AT, AT, "day")
    body = sales_response(report, {"orders": 0, "paid_orders": 0, "revenue_minor": None}, [])
    assert (body["revenue_minor"], body["series"]) == (0, [])


def test_top_products_and_low_stock_shapes() -> None:
    assert top_products_response([{"product_id": "A", "units": 3, "revenue_minor": 450}]) == {
        "items": [{"product_id": "A", "units": 3, "revenue_minor": 450}]
    }
    assert low_stock_response([{"sku": "S", "available": 1, "threshold": 3, "at": AT}]) == {
        "items": [{"sku": "S", "available": 1, "threshold": 3, "at": "2025-03-01T10:00:00Z"}]
    }


def test_a_report_may_set_its_own_limit_bounds() -> None:
    wide = {"default_limit": 100, "max_limit": 1000}
    assert parse_report_params({}, NOW, **wide).limit == 100
    assert parse_report_params({"limit": "1000"}, NOW, **wide).limit == 1000
    with pytest.raises(DomainError) as caught:
        parse_report_params({"limit": "1001"}, NOW, **wide)
    assert [f.field for f in caught.value.fields] == ["limit"]
