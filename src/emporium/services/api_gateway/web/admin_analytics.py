"""The console's reports at `/admin/analytics`: sales over time, top products and low
stock (API.md's three analytics endpoints), for a date range chosen in a form, drawn as
inline SVG charts (`charts.py`)."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from emporium.services.api_gateway.web import charts
from emporium.services.api_gateway.web.client import ApiSession
from emporium.services.api_gateway.web.console import admins_only, error_of
from emporium.services.api_gateway.web.picks import products_by_id
from emporium.services.api_gateway.web.render import Renderer, money

DEFAULT_DAYS = 30
TOP = 10
LOW_SHOWN = 15  # the chart's rows; the table under it lists every low SKU
GRANULARITIES = ("day", "hour")


def date_range(query: Any) -> tuple[date, date]:
    """The form's inclusive [from, to] days; the last 30 days by default. ValueError when
    a day is not YYYY-MM-DD or `from` is after `to`."""
    today = datetime.now(UTC).date()
    until = date.fromisoformat(query["to"]) if query.get("to") else today
    since = (
        date.fromisoformat(query["from"])
        if query.get("from")
        else until - timedelta(days=DEFAULT_DAYS - 1)
    )
    if since > until:
        raise ValueError("from after to")
    return since, until


def api_range(since: date, until: date) -> dict[str, str]:
    """The API's [from, to) times: midnight UTC of `since` to the midnight after `until`."""
    return {"from": f"{since.isoformat()}T00:00:00Z", "to": f"{until + timedelta(1)}T00:00:00Z"}


def latest_alerts(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One alert per SKU (its latest: a SKU can cross its threshold again after a refill),
    the emptiest first."""
    latest: dict[str, dict[str, Any]] = {}
    for alert in alerts:
        seen = latest.get(alert["sku"])
        if seen is None or (alert["at"] or "") > (seen["at"] or ""):
            latest[alert["sku"]] = alert
    return sorted(latest.values(), key=lambda a: (a["available"], a["sku"]))


def bucket_label(bucket: str | None, granularity: str) -> str:
    if not bucket:
        return ""
    return bucket[5:10] if granularity == "day" else f"{bucket[5:10]} {bucket[11:13]}h"


async def reports(api: ApiSession, times: dict[str, str], granularity: str) -> dict[str, Any]:
    sales, top, low = await asyncio.gather(
        api.call("GET", "/api/v1/analytics/sales", params={**times, "granularity": granularity}),
        api.call("GET", "/api/v1/analytics/top-products", params={**times, "limit": TOP}),
        api.call("GET", "/api/v1/analytics/low-stock"),
    )
    for answer in (sales, top, low):
        if answer.status_code != 200:
            return {"error": error_of(answer, "The reports could not be made.")}
    report = sales.json()
    currency = report.get("currency") or "USD"
    series = [
        (bucket_label(b["bucket"], granularity), b["revenue_minor"]) for b in report["series"]
    ]
    best = top.json()["items"]
    named = {p["id"]: p["name"] for p in await products_by_id(api, [b["product_id"] for b in best])}
    top_rows = [
        (
            named.get(b["product_id"], b["product_id"]),
            b["units"],
            f"{b['units']} · {money(b['revenue_minor'], currency)}",
        )
        for b in best
    ]
    alerts = latest_alerts(low.json()["items"])
    low_rows = [(a["sku"], a["available"], f"{a['available']} / {a['threshold']}") for a in alerts]
    shown = alerts[:LOW_SHOWN]
    return {
        "sales": report,
        "currency": currency,
        "sales_chart": charts.columns(
            series, lambda v: money(v, currency), lambda v: f"{v // 100} {currency}"
        ),
        "series": series,
        "top_chart": charts.rows(top_rows),
        "top_rows": top_rows,
        "low_chart": charts.rows(low_rows[:LOW_SHOWN], [a["threshold"] for a in shown]),
        "low_rows": low_rows,
        "alerts": alerts,
    }


async def analytics(request: Request, api: ApiSession, render: Renderer) -> Response:
    query = request.query_params
    asked = query.get("granularity", "day")
    granularity = asked if asked in GRANULARITIES else "day"
    try:
        since, until = date_range(query)
    except ValueError:
        today = datetime.now(UTC).date()
        return render.page(
            request,
            api,
            "admin_analytics.html",
            400,
            since=query.get("from", ""),
            until=query.get("to", today.isoformat()),
            granularity=granularity,
            granularities=GRANULARITIES,
            error="Choose two days (YYYY-MM-DD), the first not after the second.",
            section="analytics",
        )
    found = await reports(api, api_range(since, until), granularity)
    return render.page(
        request,
        api,
        "admin_analytics.html",
        400 if "error" in found else 200,
        since=since.isoformat(),
        until=until.isoformat(),
        granularity=granularity,
        granularities=GRANULARITIES,
        section="analytics",
        **found,
    )


ROUTES = (("/admin/analytics", admins_only(analytics), ["GET"]),)
