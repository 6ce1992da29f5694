from __future__ import annotations

import json

import pytest

from openalgo_proxy.brokers.market import UNIVERSE, SimulatedMarket
from openalgo_proxy.model import Mode, Tick
from openalgo_proxy.payload import DEPTH_KEYS, KEYS_BY_MODE, LTP_KEYS, QUOTE_KEYS, encode_data, iso_millis


def _decode(tick: Tick, mode: Mode) -> dict[str, object]:
    data: dict[str, object] = json.loads(encode_data(tick, mode))
    return data


def test_mode_key_sets_nest_and_match_design() -> None:
    assert LTP_KEYS == ("symbol", "exchange", "ltp", "ltt", "timestamp")
    assert QUOTE_KEYS[: len(LTP_KEYS)] == LTP_KEYS
    assert set(QUOTE_KEYS) - set(LTP_KEYS) == {
        "open", "high", "low", "close", "change", "change_percent", "volume", "avg_trade_price",
        "last_trade_quantity", "total_buy_quantity", "total_sell_quantity", "oi",
    }  # fmt: skip
    assert set(DEPTH_KEYS) - set(QUOTE_KEYS) == {"depth", "upper_circuit", "lower_circuit"}


@pytest.mark.parametrize("mode", list(Mode))
def test_every_key_present_numeric_never_null_for_every_instrument(mode: Mode) -> None:
    market = SimulatedMarket(seed=3)
    for listing in UNIVERSE:
        tick = market.advance(listing.exchange, listing.symbol)
        data = _decode(tick, mode)
        assert tuple(data) == KEYS_BY_MODE[mode], "exactly the keys of the mode, no larger payload"
        for key, value in data.items():
            assert value is not None, key
            if key in ("symbol", "exchange", "timestamp"):
                assert isinstance(value, str)
            elif key == "depth":
                assert isinstance(value, dict)
            else:
                assert isinstance(value, (int, float)) and not isinstance(value, bool), key


def test_depth_is_five_levels_best_first_with_bid_below_ask() -> None:
    market = SimulatedMarket(seed=11)
    for _ in range(200):
        data = _decode(market.advance("NSE", "SBIN"), Mode.DEPTH)
        depth = data["depth"]
        assert isinstance(depth, dict)
        buy, sell = depth["buy"], depth["sell"]
        assert len(buy) == 5 and len(sell) == 5
        assert all(set(level) == {"price", "quantity", "orders"} for level in buy + sell)
        assert [lv["price"] for lv in buy] == sorted((lv["price"] for lv in buy), reverse=True)
        assert [lv["price"] for lv in sell] == sorted(lv["price"] for lv in sell)
        assert buy[0]["price"] < sell[0]["price"]


def test_change_is_ltp_minus_close_and_percent_of_close() -> None:
    tick = Tick(symbol="X", exchange="NSE", mode=Mode.QUOTE, ltp=95.5, close=100.0, exchange_time=1_700_000_000_000)
    data = _decode(tick, Mode.QUOTE)
    assert data["change"] == pytest.approx(-4.5)
    assert data["change_percent"] == pytest.approx(-4.5)


def test_missing_values_are_zero_and_depth_padded() -> None:
    tick = Tick(symbol="X", exchange="NSE", mode=Mode.LTP, ltp=10.0)
    data = _decode(tick, Mode.DEPTH)
    assert data["close"] == 0 and data["change"] == 0 and data["change_percent"] == 0
    depth = data["depth"]
    assert isinstance(depth, dict)
    assert depth["buy"] == [{"price": 0.0, "quantity": 0, "orders": 0}] * 5


def test_timestamp_is_iso_utc_with_milliseconds() -> None:
    assert iso_millis(1744799445123) == "2025-04-16T10:30:45.123Z"
    assert iso_millis(1744799445007) == "2025-04-16T10:30:45.007Z"
    assert iso_millis(1744799446000) == "2025-04-16T10:30:46.000Z"
