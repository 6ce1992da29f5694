"""Number formatting of the market watches (the web page's format.js follows the same rules)."""

from __future__ import annotations

import pytest

from openalgo_proxy.client import prices


@pytest.mark.parametrize(
    ("value", "decimals", "shown"),
    [
        (127500.0, 2, "1,27,500.00"),
        (1485.05, 2, "1,485.05"),
        (999.35, 2, "999.35"),
        (89.1525, 4, "89.1525"),
        (-0.0001, 2, "0.00"),
        (-1234567.5, 2, "-12,34,567.50"),
        (5240.0, 0, "5,240"),
    ],
)
def test_price(value: float, decimals: int, shown: str) -> None:
    assert prices.price(value, decimals) == shown


@pytest.mark.parametrize(
    ("value", "decimals", "suffix", "shown"),
    [
        (-0.001, 2, "%", "0.00%"),
        (-0.004, 2, "", "0.00"),
        (0.25, 2, "%", "+0.25%"),
        (-3.0025, 4, "", "-3.0025"),
        (1234.5, 2, "", "+1,234.50"),
    ],
)
def test_signed_never_shows_minus_zero(value: float, decimals: int, suffix: str, shown: str) -> None:
    assert prices.signed(value, decimals, suffix) == shown


def test_decimals_follow_tick_size_then_exchange_then_data() -> None:
    assert prices.decimals_for(0.0025, "CDS") == 4
    assert prices.decimals_for(0.05, "NSE") == 2
    assert prices.decimals_for(1.0, "MCX") == 2  # at least two, as Indian terminals show
    assert prices.decimals_for(None, "CDS") == 4
    assert prices.decimals_for(None, "NSE") == 2
    assert prices.widen(2, 12.3425) == 4
    assert prices.widen(4, 12.5) == 4  # never narrows
    assert prices.widen(2, 0.1 + 0.2) == 2  # binary noise is not precision


def test_integer_grouping() -> None:
    assert prices.integer(0) == "0"
    assert prices.integer(999) == "999"
    assert prices.integer(12345678) == "1,23,45,678"
    assert prices.integer(-4500) == "-4,500"
