from __future__ import annotations

import datetime as dt
import fnmatch
import time
import tomllib
from pathlib import Path

import pytest

from openalgo_proxy.brokers.market import (
    DERIVATIVES,
    INDICES,
    IST,
    NIFTY50,
    UNIVERSE,
    Listing,
    SimulatedMarket,
    derivatives,
    future_symbol,
)


def test_universe_has_nifty50_and_indices() -> None:
    names = {lst.symbol for lst in NIFTY50}
    assert len(NIFTY50) == 50
    assert {"RELIANCE", "SBIN", "INFY", "TCS", "HDFCBANK"} <= names
    assert {("NSE_INDEX", "NIFTY"), ("NSE_INDEX", "BANKNIFTY")} <= {(i.exchange, i.symbol) for i in INDICES}


@pytest.mark.parametrize("symbol", ["RELIANCE", "MARUTI", "TATASTEEL"])
def test_prices_move_by_tick_size_volume_grows_book_is_sane(symbol: str) -> None:
    market = SimulatedMarket(seed=5)
    listing = market.listing("NSE", symbol)
    assert listing is not None
    previous_volume = -1
    for _ in range(500):
        tick = market.advance("NSE", symbol)
        steps = tick.ltp / listing.tick_size
        assert abs(steps - round(steps)) < 1e-6, tick.ltp
        assert abs(tick.ltp - listing.price) / listing.price < 0.11
        assert tick.volume > previous_volume
        previous_volume = tick.volume
        assert tick.low <= tick.ltp <= tick.high
        assert tick.bids[0].price < tick.asks[0].price
        assert tick.lower_circuit < tick.ltp < tick.upper_circuit


def test_seeded_market_is_deterministic() -> None:
    a, b = SimulatedMarket(seed=9), SimulatedMarket(seed=9)
    assert [a.advance("NSE", "INFY", 1).ltp for _ in range(20)] == [b.advance("NSE", "INFY", 1).ltp for _ in range(20)]


def test_snapshot_carries_the_exchange_time_of_the_last_change_not_now() -> None:
    market = SimulatedMarket(seed=3)
    moved = market.advance("NSE", "SBIN", now_ms=1_700_000_000_123)
    for _ in range(2):  # asked again later: the same values, the same times
        snap = market.snapshot("NSE", "SBIN")
        assert (snap.exchange_time, snap.ltt) == (1_700_000_000_123, 1_700_000_000_123)
        assert snap == moved  # book included: a snapshot never invents new values
    index = market.advance("NSE_INDEX", "NIFTY", now_ms=1_700_000_000_456)
    assert market.snapshot("NSE_INDEX", "NIFTY").exchange_time == index.exchange_time == 1_700_000_000_456


def test_snapshot_of_an_untraded_instrument_is_stamped_when_the_market_opened() -> None:
    before = int(time.time() * 1000)
    market = SimulatedMarket(seed=3)
    after = int(time.time() * 1000)
    snap = market.snapshot("NSE", "INFY")
    assert before <= snap.exchange_time <= after and snap.ltt == snap.exchange_time
    later = market.advance("NSE", "INFY", now_ms=after + 60_000)
    assert market.snapshot("NSE", "INFY").exchange_time == later.exchange_time == after + 60_000


def test_futures_expiries_follow_the_date_and_are_never_past() -> None:
    assert [lst.symbol for lst in derivatives(dt.date(2025, 12, 6))] == [
        "NIFTY30DEC25FUT",
        "BANKNIFTY30DEC25FUT",
        "CRUDEOIL19DEC25FUT",
        "GOLD05FEB26FUT",
        "USDINR29DEC25FUT",
    ]
    # the day after the December expiries: the January contracts
    assert [lst.symbol for lst in derivatives(dt.date(2025, 12, 31))] == [
        "NIFTY27JAN26FUT",
        "BANKNIFTY27JAN26FUT",
        "CRUDEOIL19JAN26FUT",
        "GOLD05FEB26FUT",
        "USDINR28JAN26FUT",
    ]
    day = dt.date(2026, 1, 1)
    while day < dt.date(2028, 1, 1):
        for lst in derivatives(day):
            expiry = dt.datetime.strptime(lst.expiry, "%d%b%Y").date()
            assert day <= expiry <= day + dt.timedelta(days=62), (day, lst.symbol)
            assert expiry.weekday() < 5, lst.symbol
            assert lst.symbol == f"{lst.name}{expiry:%d}{expiry:%b}".upper() + f"{expiry:%y}FUT"
        day += dt.timedelta(days=1)


def test_the_process_universe_lists_only_live_contracts() -> None:
    today = dt.datetime.now(IST).date()
    for lst in DERIVATIVES:
        assert dt.datetime.strptime(lst.expiry, "%d%b%Y").date() >= today, lst.symbol
    assert future_symbol("NIFTY") == DERIVATIVES[0].symbol


def isin_check_digit(body: str) -> str:
    """The ISIN check digit of the first 11 characters (letters as 10..35, then Luhn)."""
    digits = "".join(str(int(ch, 36)) for ch in body)
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch) * (2 if i % 2 == 0 else 1)
        total += n - 9 if n > 9 else n
    return str((10 - total % 10) % 10)


def test_isin_check_digit() -> None:
    for isin in ("INE002A01018", "INE040A01034", "INE009A01021", "US0378331005"):
        assert isin_check_digit(isin[:11]) == isin[11]
    assert isin_check_digit("INE002A0101") != "9"


def test_every_equity_has_a_real_looking_isin_and_ids_are_unique() -> None:
    isins = [lst.isin for lst in NIFTY50]
    assert all(len(isin) == 12 and isin.startswith("INE") and isin_check_digit(isin[:11]) == isin[11] for isin in isins)
    assert len(set(isins)) == len(isins)
    assert next(lst.isin for lst in NIFTY50 if lst.symbol == "RELIANCE") == "INE002A01018"
    assert not any(lst.isin for lst in INDICES + DERIVATIVES)
    for field in ("angel_token", "kite_token", "dhan_id", "exchange_token"):
        ids = [(lst.exchange, getattr(lst, field)) for lst in UNIVERSE]  # brokers key ids per segment
        assert len(set(ids)) == len(ids), field


def test_blank_ids_in_the_table_follow_the_documented_rules() -> None:
    reliance = next(lst for lst in NIFTY50 if lst.symbol == "RELIANCE")
    assert (reliance.exchange_token, reliance.angel_token, reliance.dhan_id) == ("2885", "2885", "2885")
    assert reliance.kite_token == 2885 * 256 + 1
    crude = next(lst for lst in DERIVATIVES if lst.name == "CRUDEOIL")
    assert crude.kite_token == 450161 * 256 + 7
    nifty = next(lst for lst in INDICES if lst.symbol == "NIFTY")
    ids = (nifty.exchange_token, nifty.angel_token, nifty.kite_token, nifty.dhan_id)
    assert ids == ("26000", "99926000", 256265, "13")
    assert nifty.upstox_key == "NSE_INDEX|Nifty 50"
    made = Listing("X", "NFO", "7000001", 0, 1.0)  # a listing made in code (options): ids from the Angel token
    assert (made.exchange_token, made.dhan_id) == ("7000001", "7000001")


def test_the_market_table_ships_with_the_package() -> None:
    """A wheel (the Docker image installs one) carries market.csv: pyproject's package data names it."""
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    shipped = pyproject["tool"]["setuptools"]["package-data"]["openalgo_proxy"]
    assert any(fnmatch.fnmatch("brokers/market.csv", pattern) for pattern in shipped)
