"""Chain mode's normalisation of OpenAlgo's per-broker payload variants into our tick (every key, no nulls)."""

from __future__ import annotations

from typing import Any

import pytest

from openalgo_proxy.brokers.openalgo.codec import epoch_ms, to_tick
from openalgo_proxy.model import Mode
from openalgo_proxy.payload import encode_data


def _message(mode: int, data: dict[str, Any]) -> dict[str, Any]:
    return {"type": "market_data", "symbol": "SBIN", "exchange": "NSE", "mode": mode, "data": data}


ANGEL_STYLE = {
    "ltp": 801.5,
    "timestamp": 1_733_471_400_123,
    "open": 795,
    "high": 805.25,
    "low": 790,
    "close": 798,
    "volume": 12345,
    "average_price": 799.1,
    "last_quantity": 25,
    "total_buy_quantity": 1000,
    "total_sell_quantity": 900,
    "upper_circuit": 877.8,
    "lower_circuit": 718.2,
    "depth": {
        "buy": [{"price": 801.4, "quantity": 10, "orders": 2}],
        "sell": [{"price": 801.6, "quantity": 5, "orders": 1}],
    },
}
ZERODHA_STYLE = {
    "last_price": 801.5,
    "exchange_timestamp": "2024-12-06T13:20:00",  # naive ISO: IST
    "ohlc": {"open": 795, "high": 805.25, "low": 790, "close": 798},
    "volume_traded": 12345,
    "average_price": 799.1,
    "last_quantity": 25,
    "oi": None,
    "bids": [{"price": 801.4, "qty": 10, "order_count": 2}],
    "asks": [{"price": 801.6, "quantity": 5, "orders": 1}],
}


@pytest.mark.parametrize("data", [ANGEL_STYLE, ZERODHA_STYLE], ids=["angel-style", "zerodha-style"])
def test_variants_become_the_same_tick(data: dict[str, Any]) -> None:
    tick = to_tick(_message(3, data))
    assert tick is not None and tick.mode == Mode.DEPTH
    assert (tick.ltp, tick.open, tick.high, tick.low, tick.close) == (801.5, 795.0, 805.25, 790.0, 798.0)
    assert (tick.volume, tick.avg_trade_price, tick.last_trade_quantity, tick.oi) == (12345, 799.1, 25, 0)
    assert tick.bids[0].price == 801.4 and tick.bids[0].quantity == 10 and tick.bids[0].orders == 2
    assert tick.asks[0].quantity == 5 and tick.exchange_time > 1_700_000_000_000
    encoded = encode_data(tick, Mode.DEPTH)
    assert b"null" not in encoded and len(to_tick(_message(3, data)).bids) == 1  # type: ignore[union-attr]


def test_times_and_garbage() -> None:
    assert epoch_ms(1_733_471_400_123) == 1_733_471_400_123
    assert epoch_ms(1_733_471_400) == 1_733_471_400_000
    assert epoch_ms("2024-12-06T07:50:00Z") == epoch_ms("2024-12-06T13:20:00") == 1_733_471_400_000
    assert epoch_ms("yesterday") == epoch_ms(None) == epoch_ms(True) == 0
    tick = to_tick(_message(1, {"ltp": "NaN", "volume": "x", "timestamp": float("inf")}))
    assert tick is not None and (tick.ltp, tick.volume, tick.ltt) == (0.0, 0, 0)
    for bad in (
        {"type": "subscribe"},
        {"type": "market_data", "symbol": "X", "exchange": "NSE", "data": []},
        {"type": "market_data", "exchange": "NSE", "data": {}},
        {"type": "market_data", "symbol": "X", "exchange": "NSE", "mode": 9, "data": {}},
    ):
        assert to_tick(bad) is None
