"""The shared money helpers: ISO 4217 exponents, exact minor-unit conversion, display text."""

from __future__ import annotations

from decimal import Decimal

import pytest

from emporium.chassis.money import exponent, format_money, from_minor, to_minor


@pytest.mark.parametrize(
    ("currency", "digits"),
    [("USD", 2), ("EUR", 2), ("JPY", 0), ("KRW", 0), ("KWD", 3), ("CLF", 4), ("jpy", 0)],
)
def test_exponent_follows_iso_4217(currency: str, digits: int) -> None:
    assert exponent(currency) == digits


def test_unknown_currency_has_two_decimals() -> None:
    assert exponent("XYZ") == 2


@pytest.mark.parametrize(
    ("major", "currency", "minor"),
    [
        ("19.99", "USD", 1999),
        ("0.1", "USD", 10),
        ("1500", "JPY", 1500),
        ("1.234", "KWD", 1234),
        ("0.0001", "CLF", 1),
        ("10", "usd", 1000),
        ("0", "EUR", 0),
    ],
)
def test_to_minor_is_exact(major: str, currency: str, minor: int) -> None:
    assert to_minor(Decimal(major), currency) == minor
    assert to_minor(Decimal(major), currency, exact=True) == minor


@pytest.mark.parametrize(
    ("major", "currency", "minor"),
    [("0.125", "USD", 12), ("0.135", "USD", 14), ("0.005", "USD", 0), ("1.5", "JPY", 2)],
)
def test_extra_decimals_round_half_even_by_default(major: str, currency: str, minor: int) -> None:
    assert to_minor(Decimal(major), currency) == minor


@pytest.mark.parametrize(("major", "currency"), [("19.999", "USD"), ("1.5", "JPY")])
def test_exact_refuses_extra_decimals(major: str, currency: str) -> None:
    with pytest.raises(ValueError, match="decimals"):
        to_minor(Decimal(major), currency, exact=True)


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize("exact", [False, True])
def test_non_finite_amounts_are_refused(value: str, exact: bool) -> None:
    with pytest.raises(ValueError, match="finite"):
        to_minor(Decimal(value), "USD", exact=exact)


@pytest.mark.parametrize(
    ("minor", "currency", "major"),
    [(4998, "USD", "49.98"), (500, "JPY", "500"), (1234, "KWD", "1.234"), (5, "EUR", "0.05")],
)
def test_from_minor_is_the_exact_inverse(minor: int, currency: str, major: str) -> None:
    assert from_minor(minor, currency) == Decimal(major)
    assert str(from_minor(minor, currency)) == major
    assert to_minor(from_minor(minor, currency), currency, exact=True) == minor


@pytest.mark.parametrize(
    ("minor", "currency", "text"),
    [
        (1999, "USD", "19.99 USD"),
        (123456789, "USD", "1,234,567.89 USD"),
        (1500, "JPY", "1,500 JPY"),
        (1234, "KWD", "1.234 KWD"),
        (0, "usd", "0.00 USD"),
    ],
)
def test_format_money(minor: int, currency: str, text: str) -> None:
    assert format_money(minor, currency) == text
