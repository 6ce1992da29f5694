"""Option pricing, implied volatility and Greeks against textbook values, parity, and properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openalgo_proxy.chain.pricing import (
    IvStatus,
    black_price,
    bsm_price,
    greeks,
    implied_vol,
)


def test_black_scholes_textbook_call_and_put() -> None:
    # Hull, Options Futures and Other Derivatives: S=42, K=40, r=10%, sigma=20%, T=0.5 -> c=4.76, p=0.81
    assert float(bsm_price(42, 40, 0.5, 0.2, 0.1, 0.1, True)) == pytest.approx(4.76, abs=0.005)
    assert float(bsm_price(42, 40, 0.5, 0.2, 0.1, 0.1, False)) == pytest.approx(0.81, abs=0.005)


def test_black76_textbook_values() -> None:
    # Hull: futures put F=K=20, r=9%, T=4 months, sigma=25% -> 1.12
    assert float(black_price(20, 20, 4 / 12, 0.25, 0.09, False)) == pytest.approx(1.12, abs=0.005)
    # Haug, Complete Guide to Option Pricing Formulas: F=K=19, T=0.75, r=10%, sigma=28% -> 1.7011 (call = put)
    assert float(black_price(19, 19, 0.75, 0.28, 0.10, True)) == pytest.approx(1.7011, abs=1e-4)
    assert float(black_price(19, 19, 0.75, 0.28, 0.10, False)) == pytest.approx(1.7011, abs=1e-4)


def test_dividend_yield_merton() -> None:
    # Hull: index S=930, K=900, r=8%, q=3%, sigma=20%, T=2 months -> call 51.83
    assert float(bsm_price(930, 900, 2 / 12, 0.2, 0.08, 0.08 - 0.03, True)) == pytest.approx(51.83, abs=0.01)


def test_greeks_textbook() -> None:
    # Hull: S=49, K=50, r=5%, sigma=20%, T=0.3846 call: delta 0.522, gamma 0.066, vega 12.1 (per 1.00),
    # theta -4.31 a year
    g = greeks(49, 50, 0.3846, 0.2, 0.05, 0.05, True)
    assert float(g.delta) == pytest.approx(0.522, abs=0.001)
    assert float(g.gamma) == pytest.approx(0.066, abs=0.001)
    assert float(g.vega) * 100 == pytest.approx(12.1, abs=0.05)
    assert float(g.theta) * 365 == pytest.approx(-4.31, abs=0.01)


def test_put_call_parity_and_greek_parity() -> None:
    s, k, t, r, q = 26050.0, np.array([25000.0, 26000.0, 27000.0]), 0.05, 0.065, 0.012
    for sigma in (0.08, 0.15, 0.4):
        call = bsm_price(s, k, t, sigma, r, r - q, True)
        put = bsm_price(s, k, t, sigma, r, r - q, False)
        np.testing.assert_allclose(call - put, s * math.exp(-q * t) - k * math.exp(-r * t), rtol=1e-10, atol=1e-8)
        gc, gp = greeks(s, k, t, sigma, r, r - q, True), greeks(s, k, t, sigma, r, r - q, False)
        np.testing.assert_allclose(gc.delta - gp.delta, math.exp(-q * t), rtol=1e-10)
        np.testing.assert_allclose(gc.gamma, gp.gamma, rtol=1e-10)
        np.testing.assert_allclose(gc.vega, gp.vega, rtol=1e-10)


def test_iv_recovers_the_volatility_of_a_chain_both_legs() -> None:
    f, t, r = 26180.0, 10 / 365, 0.065
    strikes = np.arange(24000.0, 28500.0, 50.0)
    sigma = 0.12 + 0.4 * np.log(strikes / f) ** 2
    for is_call in (True, False):
        price = black_price(f, strikes, t, sigma, r, is_call)
        iv, status = implied_vol(price, f, strikes, t, r, is_call)
        solvable = price * math.exp(r * t) > 1e-9 * f
        assert (status[solvable] == IvStatus.OK).all()
        np.testing.assert_allclose(iv[solvable], sigma[solvable], rtol=1e-6)


def test_iv_edge_cases_say_why_and_never_nan() -> None:
    f, k, t, r = 100.0, np.array([100.0, 100.0, 100.0, 150.0, 60.0, 100.0, 100.0]), 0.1, 0.05
    price = np.array([0.0, -1.0, 5.0, 1e-14, 39.0, 100.0, float("nan")])
    tt = np.array([t, t, 0.0, t, t, t, t])
    iv, status = implied_vol(price, f, k, tt, r, True)
    assert not np.isnan(iv).any()
    assert list(status) == [
        IvStatus.NO_PRICE,
        IvStatus.NO_PRICE,
        IvStatus.EXPIRED,
        IvStatus.NO_SOLUTION,  # worth less than a model price can be
        IvStatus.NO_SOLUTION,  # below intrinsic value (deep ITM call under 40)
        IvStatus.NO_SOLUTION,  # at the forward: no volatility is that high
        IvStatus.NO_PRICE,
    ]
    assert (iv[status != IvStatus.OK] == 0.0).all()


def test_greeks_without_time_or_volatility_are_the_limits() -> None:
    g = greeks(100.0, np.array([90.0, 110.0, 90.0, 110.0]), 0.0, 0.2, 0.05, 0.05, np.array([True, True, False, False]))
    assert list(g.delta) == [1.0, 0.0, 0.0, -1.0]
    assert list(g.gamma) == [0.0] * 4 and list(g.vega) == [0.0] * 4 and list(g.theta) == [0.0] * 4


@settings(max_examples=300, deadline=None)
@given(
    forward=st.floats(1.0, 200_000.0),
    moneyness=st.floats(-1.5, 1.5),
    t=st.floats(1 / (365 * 24 * 4), 3.0),
    sigma=st.floats(0.01, 3.0),
    rate=st.floats(0.0, 0.15),
    is_call=st.booleans(),
)
def test_iv_round_trips_where_a_solution_exists(
    forward: float, moneyness: float, t: float, sigma: float, rate: float, is_call: bool
) -> None:
    strike = forward * math.exp(moneyness)
    price = float(black_price(forward, strike, t, sigma, rate, is_call))
    iv, status = implied_vol(price, forward, strike, t, rate, is_call)
    assert np.isfinite(iv).all()
    if status == IvStatus.OK:
        back = float(black_price(forward, strike, t, float(iv), rate, is_call))
        assert back == pytest.approx(price, abs=1e-7 * forward + 1e-9, rel=1e-7)
    else:
        assert float(iv) == 0.0


@settings(max_examples=300, deadline=None)
@given(
    price=st.floats(allow_nan=True, allow_infinity=True),
    forward=st.floats(allow_nan=True, allow_infinity=True),
    strike=st.floats(allow_nan=True, allow_infinity=True),
    t=st.floats(allow_nan=True, allow_infinity=True),
    rate=st.floats(-1.0, 1.0),
    is_call=st.booleans(),
)
def test_iv_never_raises_or_leaks_nan(
    price: float, forward: float, strike: float, t: float, rate: float, is_call: bool
) -> None:
    iv, status = implied_vol(price, forward, strike, t, rate, is_call)
    assert np.isfinite(iv).all()
    assert int(status) in set(IvStatus)
    g = greeks(forward, strike, t, iv, rate, 0.0, is_call)
    for value in (g.delta, g.gamma, g.theta, g.vega):
        assert np.isfinite(value).all()
