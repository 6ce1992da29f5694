"""OpenAlgo `market_data` messages -> our Tick, whatever broker adapter produced them upstream.

OpenAlgo's per-broker adapters fill `data` differently: `ltp` or `last_price`; epoch ms, epoch
seconds or ISO-8601 times under `timestamp`, `ltt`, `last_trade_time` or `exchange_timestamp`;
OHLC flat or under `ohlc`; `average_price`/`atp`; `last_quantity`/`ltq`; `total_buy_quantity`/`tbq`;
`upper_circuit`/`upper_limit`; depth as `depth.buy/sell` or `bids/asks` with `quantity`/`qty` and
`orders`/`order_count`. Missing, null or non-finite numbers become 0, so our contract holds: every
key present, numbers never null.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from openalgo_proxy.model import DEPTH_LEVELS, DepthLevel, Mode, Tick

IST = timezone(timedelta(hours=5, minutes=30))


def number(value: object) -> float:
    if isinstance(value, bool) or value is None:
        return 0.0
    if isinstance(value, (int, float)):
        result = float(value)
    elif isinstance(value, str):
        try:
            result = float(value)
        except ValueError:
            return 0.0
    else:
        return 0.0
    return result if math.isfinite(result) else 0.0


def integer(value: object) -> int:
    return int(number(value))


def epoch_ms(value: object) -> int:
    """Epoch ms from epoch ms, epoch seconds or ISO-8601 (naive ISO is taken as IST, as Indian brokers send it)."""
    if isinstance(value, str) and value and not value.replace(".", "", 1).isdigit():
        text = value.strip().replace("Z", "+00:00")
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            return 0
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=IST)
        return int(parsed.timestamp() * 1000)
    raw = number(value)
    if raw <= 0:
        return 0
    if raw >= 1e12:
        return int(raw)
    return int(raw * 1000)


def _first(data: Mapping[str, Any], *keys: str) -> object:
    for key in keys:
        value = data.get(key)
        if value is not None:
            return value
    return None


def _levels(side: object) -> tuple[DepthLevel, ...]:
    if not isinstance(side, list):
        return ()
    levels = []
    for entry in side[:DEPTH_LEVELS]:
        if isinstance(entry, Mapping):
            levels.append(
                DepthLevel(
                    number(entry.get("price")),
                    integer(_first(entry, "quantity", "qty")),
                    integer(_first(entry, "orders", "order_count", "no_of_orders")),
                )
            )
    return tuple(levels)


def to_tick(message: Mapping[str, Any]) -> Tick | None:
    """The tick in one upstream `market_data` message; None for anything else."""
    if message.get("type") != "market_data":
        return None
    data = message.get("data")
    if not isinstance(data, Mapping):
        return None
    symbol = message.get("symbol") or data.get("symbol")
    exchange = message.get("exchange") or data.get("exchange")
    if not isinstance(symbol, str) or not isinstance(exchange, str) or not symbol or not exchange:
        return None
    try:
        mode = Mode.parse(message.get("mode", data.get("mode", 1)))
    except ValueError:
        return None
    ohlc = data.get("ohlc")
    prices: Mapping[str, Any] = ohlc if isinstance(ohlc, Mapping) else data
    depth = data.get("depth")
    buy: object = None
    sell: object = None
    if isinstance(depth, Mapping):
        buy, sell = _first(depth, "buy", "bids"), _first(depth, "sell", "asks")
    if buy is None:
        buy, sell = data.get("bids"), data.get("asks")
    stamp = epoch_ms(_first(data, "timestamp", "exchange_timestamp", "exchange_time"))
    ltt = epoch_ms(_first(data, "ltt", "last_trade_time", "last_traded_time")) or stamp
    return Tick(
        symbol=symbol,
        exchange=exchange,
        mode=mode,
        ltp=number(_first(data, "ltp", "last_price", "last_traded_price")),
        ltt=ltt,
        exchange_time=stamp or ltt,
        open=number(_first(prices, "open", "open_price")),
        high=number(_first(prices, "high", "high_price")),
        low=number(_first(prices, "low", "low_price")),
        close=number(_first(prices, "close", "close_price", "prev_close")),
        volume=integer(_first(data, "volume", "volume_traded", "total_volume")),
        avg_trade_price=number(_first(data, "avg_trade_price", "average_price", "atp")),
        last_trade_quantity=integer(_first(data, "last_trade_quantity", "last_quantity", "ltq")),
        total_buy_quantity=integer(_first(data, "total_buy_quantity", "tbq", "totalbuyqty")),
        total_sell_quantity=integer(_first(data, "total_sell_quantity", "tsq", "totalsellqty")),
        oi=integer(_first(data, "oi", "open_interest")),
        upper_circuit=number(_first(data, "upper_circuit", "upper_limit", "upper_circuit_limit")),
        lower_circuit=number(_first(data, "lower_circuit", "lower_limit", "lower_circuit_limit")),
        bids=_levels(buy),
        asks=_levels(sell),
    )
