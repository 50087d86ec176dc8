"""Money arithmetic shared by every service: ISO 4217 exponents and exact minor-unit conversion.

Why one module: stored amounts are integer minor units (`price_minor`), while events carry
major-unit decimals (`"19.99"`), so producers and consumers all convert between the two. Each
service used to carry its own exponent table, and the copies had drifted (some knew CLF and
UYW, some did not). Pure: stdlib only, no I/O, so domain modules may import it.

Conventions:
- A currency code is looked up case-insensitively; a code not in the table has the usual
  two decimals (the table lists only the ISO 4217 exceptions).
- `to_minor` never goes through `float`. An amount with more decimals than the currency
  allows is rounded half-even (banker's rounding, the `decimal` default) when it comes from
  an event, because a consumer must not reject a producer's payload over a sub-cent digit;
  with `exact=True` it is refused with `ValueError` instead, which a domain that validates
  user input turns into its own field error. Non-finite amounts (NaN, infinity) are always
  refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Final

DEFAULT_EXPONENT: Final = 2

# ISO 4217 minor-unit exponents that differ from the usual 2.
CURRENCY_EXPONENTS: Final[Mapping[str, int]] = {
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0,
    "PYG": 0, "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0,
    "XPF": 0, "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
    "CLF": 4, "UYW": 4,
}  # fmt: skip


def exponent(currency: str) -> int:
    """Digits after the decimal point for `currency` (JPY 0, USD 2, KWD 3, CLF 4)."""
    return CURRENCY_EXPONENTS.get(currency.upper(), DEFAULT_EXPONENT)


def to_minor(amount: Decimal, currency: str, *, exact: bool = False) -> int:
    """A major-unit amount (`Decimal("19.99")`) as integer minor units (1999).

    Extra decimals are rounded half-even (`0.125 USD -> 12`), or refused with `ValueError`
    when `exact` is true (`19.999 USD`). NaN and infinity raise `ValueError` either way.
    """
    if not amount.is_finite():
        raise ValueError(f"amount must be a finite number, not {amount}")
    scaled = amount.scaleb(exponent(currency))
    whole = scaled.to_integral_value(rounding=ROUND_HALF_EVEN)
    if exact and whole != scaled:
        raise ValueError(f"{currency.upper()} allows at most {exponent(currency)} decimals")
    return int(whole)


def from_minor(amount_minor: int, currency: str) -> Decimal:
    """Integer minor units as an exact major-unit decimal (`1999 USD -> Decimal("19.99")`)."""
    return Decimal(amount_minor).scaleb(-exponent(currency))


def format_money(amount_minor: int, currency: str) -> str:
    """Human text for messages, grouped thousands and the currency's own decimals:
    `1234567, "USD"` -> `12,345.67 USD`; `1500, "JPY"` -> `1,500 JPY`."""
    digits = exponent(currency)
    return f"{from_minor(amount_minor, currency):,.{digits}f} {currency.upper()}"
