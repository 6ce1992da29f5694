from __future__ import annotations

import pytest

from openalgo_proxy.brokers.market import INDICES, NIFTY50, SimulatedMarket


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
