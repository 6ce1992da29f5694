"""Broker data sanity: which ticks no market can produce."""

from __future__ import annotations

import math

import pytest

from openalgo_proxy.feed.sanity import MAX_PRICE, TickSanity, impossible
from openalgo_proxy.model import DepthLevel, Mode, Tick

INT64_MAX = 2**63 - 1


def _tick(exchange: str = "NSE", **fields: object) -> Tick:
    base: dict[str, object] = {
        "symbol": "TCS",
        "exchange": exchange,
        "mode": Mode.QUOTE,
        "ltp": 3500.0,
        "close": 3490.0,
    }
    return Tick(**{**base, **fields})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "fields",
    [
        {"ltp": -1.0},
        {"ltp": math.nan},
        {"high": math.inf},
        {"ltp": INT64_MAX / 100},
        {"close": MAX_PRICE * 10},
        {"volume": INT64_MAX},
        {"volume": -5},
        {"oi": -1},
        {"total_buy_quantity": 10**18},
        {"bids": (DepthLevel(3499.0, -10, 1),)},
        {"asks": (DepthLevel(-3501.0, 10, 1),)},
        {"asks": (DepthLevel(3501.0, 10, INT64_MAX),)},
    ],
)
def test_impossible_values_are_named(fields: dict[str, object]) -> None:
    assert impossible(_tick(**fields)) is not None


def test_ordinary_ticks_and_untraded_instruments_pass() -> None:
    assert impossible(_tick()) is None
    assert impossible(_tick(ltp=0.0, close=0.0)) is None  # a contract that never traded
    assert impossible(_tick(volume=2_000_000_000, oi=150_000_000, bids=(DepthLevel(3499.0, 10, 1),))) is None


def test_commodities_may_trade_below_zero_but_not_absurdly() -> None:
    assert impossible(_tick("MCX", ltp=-37.63, low=-40.32)) is None  # crude oil, April 2020
    assert impossible(_tick("NSE", ltp=-37.63)) is not None
    assert impossible(_tick("MCX", ltp=-MAX_PRICE * 2)) is not None


def test_a_tick_that_erases_a_known_price_is_refused_and_everything_refused_is_counted() -> None:
    sanity = TickSanity()
    assert sanity.admit(_tick(ltp=0.0))  # not priced yet: fine
    assert sanity.admit(_tick())
    assert not sanity.admit(_tick(mode=Mode.DEPTH, ltp=0.0, close=0.0))  # e.g. an unsolicited Depth-20
    assert not sanity.admit(_tick(volume=INT64_MAX))
    assert sanity.admit(_tick(symbol="INFY", ltp=0.0))  # another instrument is judged on its own
    assert sanity.rejected == 2 and sanity.reasons == {"erased": 1, "volume": 1}
