"""Search rules (pure): request validation naming parameters, cursors bound to their query,
the product.updated -> index mapping, and the response shape."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from emporium.chassis.errors import DomainError, ErrorCode
from emporium.chassis.money import to_minor
from emporium.chassis.search.base import SearchResult
from emporium.contracts.events import ProductUpdatedV1
from emporium.services.search.domain import (
    DEFAULT_LIMIT,
    MAX_WINDOW,
    RemoveDocument,
    SearchRequest,
    UpsertDocument,
    decode_cursor,
    encode_cursor,
    index_change,
    is_stale,
    next_cursor,
    parse_search_request,
    rfc3339,
    search_response,
    to_query,
    tombstone_document,
)

T = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def fields(error: DomainError) -> set[str]:
    return {f.field for f in error.fields}


def bad(params: dict[str, str | None]) -> DomainError:
    with pytest.raises(DomainError) as caught:
        parse_search_request(params)
    assert caught.value.code is ErrorCode.INVALID_ARGUMENT
    assert caught.value.http_status == 400
    return caught.value


# -- request ---------------------------------------------------------------------------------


def test_defaults_when_nothing_is_given() -> None:
    request = parse_search_request({})
    assert request == SearchRequest()
    assert request.limit == DEFAULT_LIMIT == 20
    assert request.sort == "relevance"
    assert request.offset == 0


def test_all_parameters_are_parsed() -> None:
    request = parse_search_request(
        {
            "q": "  headphones  ",
            "category": "audio",
            "min_price": "1000",
            "max_price": "2500",
            "sort": "price_desc",
            "limit": "100",
        }
    )
    assert request == SearchRequest("headphones", "audio", 1000, 2500, "price_desc", 100, 0)


def test_empty_strings_mean_absent() -> None:
    request = parse_search_request(
        {"q": "", "category": " ", "min_price": "", "max_price": None, "sort": "", "limit": ""}
    )
    assert request == SearchRequest()


@pytest.mark.parametrize("value", ["0", "101", "-1", "ten", "2.5"])
def test_limit_out_of_range_names_limit(value: str) -> None:
    assert fields(bad({"limit": value})) == {"limit"}


@pytest.mark.parametrize("value", ["19.99", "-5", "abc", "1e3", "١٢"])
def test_prices_must_be_minor_unit_integers(value: str) -> None:
    assert fields(bad({"min_price": value, "max_price": value})) == {"min_price", "max_price"}


def test_min_price_above_max_price_is_refused() -> None:
    assert fields(bad({"min_price": "500", "max_price": "100"})) == {"max_price"}


def test_equal_min_and_max_is_fine() -> None:
    assert parse_search_request({"min_price": "500", "max_price": "500"}).max_price == 500


def test_unknown_sort_names_sort() -> None:
    assert fields(bad({"sort": "cheapest"})) == {"sort"}


def test_every_problem_is_reported_at_once() -> None:
    error = bad({"q": "x" * 201, "sort": "?", "limit": "0", "min_price": "x"})
    assert fields(error) == {"q", "sort", "limit", "min_price"}


def test_to_query_passes_filters_and_page_to_the_port() -> None:
    request = SearchRequest("tea", "food", 1, 9, "newest", 5, 40)
    query = to_query(request)
    assert (query.text, query.category, query.min_price, query.max_price) == ("tea", "food", 1, 9)
    assert (query.sort, query.limit, query.offset) == ("newest", 5, 40)


def test_to_query_never_reads_past_the_window() -> None:
    query = to_query(SearchRequest(limit=100, offset=MAX_WINDOW - 10))
    assert query.limit == 10


# -- cursor ----------------------------------------------------------------------------------


def test_cursor_round_trip_through_the_request() -> None:
    first = parse_search_request({"q": "lamp", "sort": "price_asc"})
    cursor = encode_cursor(40, first.fingerprint())
    second = parse_search_request({"q": "lamp", "sort": "price_asc", "cursor": cursor})
    assert second.offset == 40


def test_cursor_is_url_safe_and_opaque() -> None:
    cursor = encode_cursor(20, "abcd")
    assert "=" not in cursor
    assert "+" not in cursor
    assert "/" not in cursor


def test_cursor_survives_a_different_limit_and_query_spacing() -> None:
    first = parse_search_request({"q": "desk lamp", "limit": "10"})
    cursor = encode_cursor(10, first.fingerprint())
    again = parse_search_request({"q": "  Desk   LAMP ", "limit": "50", "cursor": cursor})
    assert again.offset == 10


@pytest.mark.parametrize(
    "changed",
    [
        {"q": "other"},
        {"category": "food"},
        {"min_price": "1"},
        {"max_price": "9"},
        {"sort": "newest"},
    ],
)
def test_cursor_from_another_query_is_refused(changed: dict[str, str]) -> None:
    original = {"q": "lamp"}
    cursor = encode_cursor(20, parse_search_request(original).fingerprint())
    error = bad({**original, **changed, "cursor": cursor})
    assert fields(error) == {"cursor"}


def _raw_cursor(body: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "not base64 !!",
        base64.urlsafe_b64encode(b"not json").decode(),
        _raw_cursor([1, 2]),
        _raw_cursor({"o": -1, "h": "x"}),
        _raw_cursor({"o": "5", "h": "x"}),
        _raw_cursor({"o": True, "h": "x"}),
        _raw_cursor({"o": MAX_WINDOW, "h": "x"}),
        "A" * 600,
    ],
)
def test_malformed_cursors_are_a_400_naming_cursor(cursor: str) -> None:
    assert fields(bad({"cursor": cursor})) == {"cursor"}


def test_decode_without_cursor_is_first_page() -> None:
    assert decode_cursor(None, "h") == 0
    assert decode_cursor("", "h") == 0


def test_next_cursor_only_while_more_results_exist() -> None:
    request = SearchRequest(limit=2)
    cursor = next_cursor(request, returned=2, total=5)
    assert cursor is not None
    assert decode_cursor(cursor, request.fingerprint()) == 2
    last = SearchRequest(limit=2, offset=4)
    assert next_cursor(last, returned=1, total=5) is None
    assert next_cursor(SearchRequest(limit=2), returned=2, total=2) is None
    assert next_cursor(SearchRequest(limit=2), returned=0, total=9) is None


def test_no_cursor_beyond_the_result_window() -> None:
    request = SearchRequest(limit=100, offset=MAX_WINDOW - 100)
    assert next_cursor(request, returned=100, total=MAX_WINDOW * 2) is None


# -- response --------------------------------------------------------------------------------


def test_response_shape() -> None:
    created = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    hit = {
        "id": "p1",
        "sku": "S1",
        "name": "Lamp",
        "description": "",
        "category": "home",
        "price_minor": 1999,
        "currency": "USD",
        "created_at": created,
        "updated_at": "2024-05-06T07:08:09Z",
        "score": 3.2,
    }
    result = SearchResult(hits=[hit], total=3, facets={"category": {"home": 2, "garden": 1}})
    request = SearchRequest(q="lamp", limit=1)
    body = search_response(request, result)
    assert set(body) == {"items", "total", "facets", "next_cursor"}
    assert body["total"] == 3
    assert body["facets"] == {"category": {"home": 2, "garden": 1}}
    item = body["items"][0]
    assert "score" not in item
    assert item["created_at"] == "2024-05-06T07:08:09Z"
    assert item["attributes"] == {}
    assert item["image_urls"] == []
    assert decode_cursor(body["next_cursor"], request.fingerprint()) == 1


def test_response_without_hits_or_facets() -> None:
    body = search_response(SearchRequest(), SearchResult(hits=[], total=0))
    assert body == {"items": [], "total": 0, "facets": {"category": {}}, "next_cursor": None}


def test_empty_category_name_is_not_a_facet() -> None:
    result = SearchResult(hits=[], total=0, facets={"category": {"": 4, "toys": 1}})
    assert search_response(SearchRequest(), result)["facets"] == {"category": {"toys": 1}}


# -- product.updated -> index ----------------------------------------------------------------


def product_event(**overrides: object) -> ProductUpdatedV1:
    data: dict[str, object] = {
        "product_id": "p1",
        "name": "Wireless Headphones",
        "description": "Over-ear",
        "category": "audio",
        "price": Decimal("19.99"),
        "currency": "USD",
        "image_url": "http://cdn/p1.jpg",
    }
    data.update(overrides)
    return ProductUpdatedV1.model_validate(data)


def test_product_updated_becomes_an_upsert() -> None:
    change = index_change(product_event(), T)
    assert isinstance(change, UpsertDocument)
    doc = change.document
    assert doc["id"] == "p1"
    assert doc["name"] == "Wireless Headphones"
    assert doc["category"] == "audio"
    assert doc["price_minor"] == 1999
    assert doc["currency"] == "USD"
    assert doc["image_urls"] == ["http://cdn/p1.jpg"]
    assert doc["created_at"] == T
    assert doc["updated_at"] == "2025-01-02T03:04:05Z"


def test_optional_payload_fields_fill_the_document() -> None:
    created = datetime(2024, 5, 6, tzinfo=UTC)
    event = product_event(
        sku="HP-1",
        attributes={"color": "black", "wireless": True},
        image_urls=["http://cdn/a.jpg", "http://cdn/b.jpg"],
        created_at=created,
    )
    change = index_change(event, T)
    assert isinstance(change, UpsertDocument)
    doc = change.document
    assert (doc["sku"], doc["created_at"]) == ("HP-1", created)
    assert doc["attributes"] == {"color": "black", "wireless": True}
    assert doc["image_urls"] == ["http://cdn/a.jpg", "http://cdn/b.jpg"]


def test_deleted_product_is_removed() -> None:
    assert index_change(product_event(deleted=True), T) == RemoveDocument("p1")


def test_redelivery_gives_the_same_document() -> None:
    assert index_change(product_event(), T) == index_change(product_event(), T)


def test_price_conversion_uses_the_currency_exponent() -> None:
    jpy = index_change(product_event(price=Decimal("1500"), currency="JPY"), T)
    kwd = index_change(product_event(price=Decimal("1.234"), currency="KWD"), T)
    assert isinstance(jpy, UpsertDocument)
    assert jpy.document["price_minor"] == 1500
    assert isinstance(kwd, UpsertDocument)
    assert kwd.document["price_minor"] == 1234
    assert to_minor(Decimal("0.125"), "USD") == 12  # half-even
    assert to_minor(Decimal("10"), "usd") == 1000


def test_no_image_gives_an_empty_list() -> None:
    change = index_change(product_event(image_url=None), T)
    assert isinstance(change, UpsertDocument)
    assert change.document["image_urls"] == []


def test_event_time_in_another_zone_is_stored_as_utc_text() -> None:
    local = datetime(2025, 1, 2, 12, 4, 5, tzinfo=timezone(timedelta(hours=9)))
    change = index_change(product_event(), local)
    assert isinstance(change, UpsertDocument)
    assert change.document["updated_at"] == "2025-01-02T03:04:05Z"


def test_stale_events_are_strictly_older_than_the_indexed_document() -> None:
    indexed = {"id": "p1", "updated_at": rfc3339(T)}
    assert is_stale(indexed, T - timedelta(seconds=1))
    assert not is_stale(indexed, T)  # the same event again: applied again, harmlessly
    assert not is_stale(indexed, T + timedelta(seconds=1))
    assert not is_stale(None, T)
    assert not is_stale({"id": "p1"}, T)
    tombstone = tombstone_document("p1", T)
    assert tombstone["deleted"] is True
    assert is_stale(tombstone, T - timedelta(microseconds=1))
