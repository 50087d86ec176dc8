"""Analytics-service rules: the fact tables, the facts each event becomes, the report
parameters, and the report SQL.

Pure: no I/O. Statements are returned as `(sql, params)` for the OLAP port
(`emporium.chassis.olap.base`): values are bound with ClickHouse's `{name:Type}`
placeholders, never pasted into SQL, and the same text runs on chDB and ClickHouse.

Idempotency: every fact table is a `ReplacingMergeTree` whose sorting key ends with the
event id (and the line number for order lines), and every report reads with `FINAL`. A
redelivered event is inserted again with the same key (`occurred_at` is the CloudEvent
`time`, identical on redelivery, so the copy lands in the same monthly partition) and
`FINAL` collapses the copies at read time; background merges remove them for good later.
No inbox table is needed, so inserts stay append-only, which is what ClickHouse is good at.

Money is integer minor units (events carry decimals: converted with the ISO 4217 exponent).
Ranges are half-open: `from <= occurred_at < to`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

from emporium.chassis.errors import FieldError, invalid
from emporium.chassis.money import to_minor
from emporium.contracts.events import (
    InventoryLowV1,
    OrderCompletedV1,
    OrderCreatedV1,
    PaymentStatus,
)

Granularity = Literal["hour", "day"]
GRANULARITIES: Final = ("hour", "day")
DEFAULT_RANGE: Final = timedelta(days=30)
DEFAULT_LIMIT: Final = 20
MAX_LIMIT: Final = 100
MAX_BUCKETS: Final = 24 * 92  # an hourly series over a quarter
# What the fact tables can hold (ClickHouse's DateTime64 spans 1900-2299). No fact is older
# than the epoch, so a range reaching past these bounds is clamped to them: the report is
# the same, and the store is never asked for a time it cannot represent.
STORE_EARLIEST: Final = datetime(1970, 1, 1, tzinfo=UTC)
STORE_LATEST: Final = datetime(2200, 1, 1, tzinfo=UTC)
DEFAULT_CURRENCY: Final = "USD"
# `low-stock` lists alerts, not a ranking: more per page (the gateway allows up to 1000).
LOW_STOCK_DEFAULT_LIMIT: Final = 100
LOW_STOCK_MAX_LIMIT: Final = 1000
TOP_PRODUCTS_DEFAULT_LIMIT: Final = 10
CAPTURED: Final = PaymentStatus.CAPTURED.value
REFUNDED: Final = PaymentStatus.REFUNDED.value
VOIDED: Final = PaymentStatus.VOIDED.value
# A payment fact's effect on revenue: + a capture, - a capture given back, 0 a decline.
_SIGNED_AMOUNT: Final = (
    "multiIf(status = {captured:String}, amount_minor, "
    "status IN ({refunded:String}, {voided:String}), -amount_minor, 0)"
)

Statement = tuple[str, dict[str, Any]]

_TIME: Final = "DateTime64(3, 'UTC')"
_BUCKET_FN: Final[Mapping[str, str]] = {"hour": "toStartOfHour", "day": "toStartOfDay"}
_STEP: Final[Mapping[str, timedelta]] = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
_IN_RANGE: Final = f"occurred_at >= {{since:{_TIME}}} AND occurred_at < {{until:{_TIME}}}"
_PREFIX: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$|^$")
_SPACED_OFFSET: Final = re.compile(r" (\d{2}:\d{2})$")


# -- facts -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FactBatch:
    """Rows for one table, in `columns` order: what the handler passes to `OlapStore.insert`."""

    table: str
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]


def merged(groups: Iterable[Iterable[FactBatch]]) -> list[FactBatch]:
    """The batches of several events as one per (table, columns), rows in event order: what
    turns a fetched batch of events into one insert per table."""
    by_table: dict[tuple[str, tuple[str, ...]], FactBatch] = {}
    for group in groups:
        for batch in group:
            key = (batch.table, batch.columns)
            if key not in by_table:
                by_table[key] = FactBatch(batch.table, batch.columns, [])
            by_table[key].rows.extend(batch.rows)
    return list(by_table.values())


ORDER_COLUMNS: Final = (
    "event_id", "occurred_at", "order_id", "user_id", "total_minor", "currency", "units",
)  # fmt: skip
LINE_COLUMNS: Final = (
    "event_id", "line_no", "occurred_at", "order_id", "product_id", "sku", "quantity",
    "unit_price_minor", "revenue_minor", "currency",
)  # fmt: skip
PAYMENT_COLUMNS: Final = (
    "event_id", "occurred_at", "order_id", "payment_id", "status", "amount_minor", "currency",
)  # fmt: skip
LOW_STOCK_COLUMNS: Final = ("event_id", "occurred_at", "sku", "available", "threshold")


@dataclass(frozen=True)
class Schema:
    """The fact tables; `prefix` lets tests on a shared server use their own tables."""

    prefix: str = ""

    def __post_init__(self) -> None:
        if not _PREFIX.match(self.prefix):
            raise ValueError(f"table prefix must be a plain identifier, got {self.prefix!r}")

    @property
    def orders(self) -> str:
        return f"{self.prefix}order_facts"

    @property
    def lines(self) -> str:
        return f"{self.prefix}order_line_facts"

    @property
    def payments(self) -> str:
        return f"{self.prefix}payment_facts"

    @property
    def low_stock(self) -> str:
        return f"{self.prefix}low_stock_facts"

    def ddl(self) -> list[str]:
        """CREATE TABLE IF NOT EXISTS statements (safe to run at every start)."""
        engine = "ENGINE = ReplacingMergeTree PARTITION BY toYYYYMM(occurred_at)"
        return [
            f"""CREATE TABLE IF NOT EXISTS {self.orders} (
                event_id String, occurred_at {_TIME}, order_id String, user_id String,
                total_minor Int64, currency LowCardinality(String), units UInt32
            ) {engine} ORDER BY (occurred_at, event_id)""",
            f"""CREATE TABLE IF NOT EXISTS {self.lines} (
                event_id String, line_no UInt16, occurred_at {_TIME}, order_id String,
                product_id String, sku String, quantity UInt32, unit_price_minor Int64,
                revenue_minor Int64, currency LowCardinality(String)
            ) {engine} ORDER BY (occurred_at, event_id, line_no)""",
            f"""CREATE TABLE IF NOT EXISTS {self.payments} (
                event_id String, occurred_at {_TIME}, order_id String, payment_id String,
                status LowCardinality(String), amount_minor Int64,
                currency LowCardinality(String)
            ) {engine} ORDER BY (occurred_at, event_id)""",
            f"""CREATE TABLE IF NOT EXISTS {self.low_stock} (
                event_id String, occurred_at {_TIME}, sku String, available Int64,
                threshold Int64
            ) {engine} ORDER BY (occurred_at, event_id)""",
        ]

    # -- event -> facts ----------------------------------------------------------------------

    def order_created(
        self, event_id: str, occurred_at: datetime, event: OrderCreatedV1
    ) -> list[FactBatch]:
        """One order fact plus one fact per line. Lines are attributed to `product_id` when
        the payload carries it (an optional field added later), else to the sku."""
        at, cur = _utc(occurred_at), event.currency
        units = sum(line.quantity for line in event.lines)
        order = (event_id, at, event.order_id, event.user_id, to_minor(event.total, cur), cur)
        lines = []
        for no, line in enumerate(event.lines):
            product = line.product_id or line.sku
            price = to_minor(line.unit_price, cur)
            revenue = price * line.quantity
            ids = (event_id, no, at, event.order_id, product, line.sku)
            lines.append((*ids, line.quantity, price, revenue, cur))
        return [
            FactBatch(self.orders, ORDER_COLUMNS, [(*order, units)]),
            FactBatch(self.lines, LINE_COLUMNS, lines),
        ]

    def order_completed(
        self, event_id: str, occurred_at: datetime, event: OrderCompletedV1
    ) -> list[FactBatch]:
        """One payment fact (captured, declined, refunded or voided: each is a fact)."""
        row = (
            event_id,
            _utc(occurred_at),
            event.order_id,
            event.payment_id,
            event.status.value,
            to_minor(event.amount, event.currency),
            event.currency,
        )
        return [FactBatch(self.payments, PAYMENT_COLUMNS, [row])]

    def inventory_low(
        self, event_id: str, occurred_at: datetime, event: InventoryLowV1
    ) -> list[FactBatch]:
        row = (event_id, _utc(occurred_at), event.sku, event.available, event.threshold)
        return [FactBatch(self.low_stock, LOW_STOCK_COLUMNS, [row])]

    # -- reports -----------------------------------------------------------------------------

    def sales_totals(self, report: ReportParams) -> Statement:
        """One row: `orders` placed, `paid_orders` (captured and not given back) and
        `revenue_minor` (captured minus refunded/reversed) in range."""
        in_range = _IN_RANGE
        sql = f"""SELECT
            (SELECT count() FROM {self.orders} FINAL
              WHERE {in_range} AND currency = {{currency:String}}) AS orders,
            (SELECT uniqExact(order_id) FROM {self.payments} FINAL
              WHERE {in_range} AND currency = {{currency:String}}
                AND status = {{captured:String}}
                AND order_id NOT IN ({self._given_back()})) AS paid_orders,
            (SELECT sum({_SIGNED_AMOUNT}) FROM {self.payments} FINAL
              WHERE {in_range} AND currency = {{currency:String}}) AS revenue_minor"""
        return sql, report.bind()

    def _given_back(self) -> str:
        """Orders whose capture was refunded or reversed (at any time)."""
        return f"""SELECT order_id FROM {self.payments} FINAL
                   WHERE status IN ({{refunded:String}}, {{voided:String}})"""

    def sales_series(self, report: ReportParams) -> Statement:
        """Per bucket (start of hour/day, UTC): orders placed and revenue captured in it.
        Buckets without any fact are absent here; `sales_response` fills them with zeros."""
        bucket = f"{_BUCKET_FN[report.granularity]}(occurred_at, 'UTC')"
        in_range = _IN_RANGE
        sql = f"""SELECT bucket, sum(orders) AS orders, sum(revenue_minor) AS revenue_minor
            FROM (
              SELECT {bucket} AS bucket, count() AS orders, toInt64(0) AS revenue_minor
              FROM {self.orders} FINAL
              WHERE {in_range} AND currency = {{currency:String}}
              GROUP BY bucket
              UNION ALL
              SELECT {bucket} AS bucket, toUInt64(0) AS orders,
                     sum({_SIGNED_AMOUNT}) AS revenue_minor
              FROM {self.payments} FINAL
              WHERE {in_range} AND currency = {{currency:String}}
              GROUP BY bucket
            )
            GROUP BY bucket ORDER BY bucket"""
        return sql, report.bind()

    def top_products(self, report: ReportParams) -> Statement:
        """Products of the orders placed in range that were paid, by units then revenue."""
        sql = f"""SELECT product_id, sum(quantity) AS units, sum(revenue_minor) AS revenue_minor
            FROM {self.lines} FINAL
            WHERE {_IN_RANGE}
              AND currency = {{currency:String}}
              AND order_id IN (SELECT order_id FROM {self.payments} FINAL
                               WHERE status = {{captured:String}})
              AND order_id NOT IN ({self._given_back()})
            GROUP BY product_id
            ORDER BY units DESC, revenue_minor DESC, product_id
            LIMIT {{limit:UInt32}}"""
        return sql, report.bind()

    def low_stock_report(self, report: ReportParams) -> Statement:
        """The latest `inventory.low` per sku in range, most recent first."""
        sql = f"""SELECT sku,
                   argMax(available, occurred_at) AS available,
                   argMax(threshold, occurred_at) AS threshold,
                   max(occurred_at) AS at
            FROM {self.low_stock} FINAL
            WHERE {_IN_RANGE}
            GROUP BY sku
            ORDER BY at DESC, sku
            LIMIT {{limit:UInt32}}"""
        return sql, report.bind()


# -- report parameters -----------------------------------------------------------------------


@dataclass(frozen=True)
class ReportParams:
    """A validated report request: the half-open range [since, until) in UTC."""

    since: datetime
    until: datetime
    granularity: Granularity = "day"
    limit: int = DEFAULT_LIMIT
    currency: str = DEFAULT_CURRENCY

    def bind(self) -> dict[str, Any]:
        """Values for the `{name:Type}` placeholders of every report."""
        return {
            "since": self.since,
            "until": self.until,
            "currency": self.currency,
            "captured": CAPTURED,
            "refunded": REFUNDED,
            "voided": VOIDED,
            "limit": self.limit,
        }


def parse_report_params(
    params: Mapping[str, str | None],
    now: datetime,
    *,
    default_limit: int = DEFAULT_LIMIT,
    max_limit: int = MAX_LIMIT,
    bucketed: bool = False,
) -> ReportParams:
    """`from`, `to` (RFC 3339; default the 30 days up to `now`; clamped to what the store
    holds), `granularity` (`hour`|`day`, default `day`; when `bucketed`, the range may span
    at most MAX_BUCKETS of them), `limit` (1..`max_limit`, default `default_limit`: 1..100
    and 20 unless a report says otherwise), `currency` (ISO 4217, default USD). Every
    problem is reported at once, each naming its query parameter."""
    errors: list[FieldError] = []
    until = _time(params, "to", errors) or _utc(now)
    since = _time(params, "from", errors)
    if since is not None and since > until:
        errors.append(FieldError("from", "must not be after to"))
    until = _clamp(until)
    since = _clamp(until - DEFAULT_RANGE if since is None else since)
    granularity = params.get("granularity") or "day"
    if granularity not in GRANULARITIES:
        errors.append(FieldError("granularity", "one of hour, day"))
    elif bucketed and (until - since) / _STEP[granularity] > MAX_BUCKETS:
        hint = "; use day" if granularity == "hour" else ""
        errors.append(FieldError("granularity", f"at most {MAX_BUCKETS} buckets{hint}"))
    limit = _limit(params.get("limit"), errors, default_limit, max_limit)
    currency = (params.get("currency") or DEFAULT_CURRENCY).upper()
    if not re.fullmatch(r"[A-Z]{3}", currency):
        errors.append(FieldError("currency", "an ISO 4217 code"))
    if errors:
        raise invalid("invalid report parameters", *errors)
    gran: Granularity = "hour" if granularity == "hour" else "day"
    return ReportParams(since, until, gran, limit, currency)


def _clamp(moment: datetime) -> datetime:
    return min(max(moment, STORE_EARLIEST), STORE_LATEST)


def _time(params: Mapping[str, str | None], name: str, errors: list[FieldError]) -> datetime | None:
    raw = (params.get(name) or "").strip()
    if not raw:
        return None
    # An unencoded `+` in a query string arrives as a space: `...T10:00:00 02:00`.
    text = _SPACED_OFFSET.sub(r"+\1", raw).replace("Z", "+00:00").replace("z", "+00:00")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        errors.append(FieldError(name, "an RFC 3339 time, e.g. 2024-03-01T00:00:00Z"))
        return None
    try:
        return _utc(moment)
    except OverflowError:  # year 1 with a positive offset, 9999 with a negative one
        return STORE_EARLIEST if moment.year < STORE_EARLIEST.year else STORE_LATEST


def _limit(raw: str | None, errors: list[FieldError], default: int, maximum: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= maximum:
        errors.append(FieldError("limit", f"an integer between 1 and {maximum}"))
    return value


# -- responses -------------------------------------------------------------------------------


def buckets(report: ReportParams) -> list[datetime]:
    """Every bucket start of the range (UTC), the first one containing `since`; none for an
    empty range."""
    if report.since >= report.until:
        return []
    step = _STEP[report.granularity]
    start = report.since.replace(minute=0, second=0, microsecond=0)
    if report.granularity == "day":
        start = start.replace(hour=0)
    out: list[datetime] = []
    while start < report.until:
        out.append(start)
        start += step
    return out


def sales_response(
    report: ReportParams, totals: Mapping[str, Any], series: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """`{orders, paid_orders, revenue_minor, currency, series: [{bucket, orders,
    revenue_minor}]}` with every bucket of the range present (zeros where nothing happened)."""
    found = {_utc(row["bucket"]): row for row in series}
    return {
        "orders": int(totals.get("orders") or 0),
        "paid_orders": int(totals.get("paid_orders") or 0),
        "revenue_minor": int(totals.get("revenue_minor") or 0),
        "currency": report.currency,
        "series": [
            {
                "bucket": rfc3339(start),
                "orders": int(found[start]["orders"]) if start in found else 0,
                "revenue_minor": int(found[start]["revenue_minor"]) if start in found else 0,
            }
            for start in buckets(report)
        ],
    }


def top_products_response(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {
        "items": [
            {
                "product_id": str(r["product_id"]),
                "units": int(r["units"]),
                "revenue_minor": int(r["revenue_minor"]),
            }
            for r in rows
        ]
    }


def low_stock_response(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {
        "items": [
            {
                "sku": str(r["sku"]),
                "available": int(r["available"]),
                "threshold": int(r["threshold"]),
                "at": rfc3339(r["at"]),
            }
            for r in rows
        ]
    }


def rfc3339(moment: datetime) -> str:
    return _utc(moment).isoformat().replace("+00:00", "Z")


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
