"""The data contract (DESIGN section 5): a Tick encoded as the `data` object of one mode.

Every key is always present, every number is a number. Encoded once per tick per mode by the
feed; the proxy splices these bytes into the client envelope without decoding them.
"""

from __future__ import annotations

import time

import msgspec

from openalgo_proxy.model import DEPTH_LEVELS, EMPTY_LEVEL, DepthLevel, Mode, Tick


class LtpData(msgspec.Struct, gc=False):
    symbol: str
    exchange: str
    ltp: float
    ltt: int
    timestamp: str


class QuoteData(LtpData, gc=False):
    open: float
    high: float
    low: float
    close: float
    change: float
    change_percent: float
    volume: int
    avg_trade_price: float
    last_trade_quantity: int
    total_buy_quantity: int
    total_sell_quantity: int
    oi: int


class Depth(msgspec.Struct, gc=False):
    buy: tuple[DepthLevel, ...]
    sell: tuple[DepthLevel, ...]


class DepthData(QuoteData, gc=False):
    depth: Depth
    upper_circuit: float
    lower_circuit: float


LTP_KEYS = tuple(LtpData.__struct_fields__)
QUOTE_KEYS = tuple(QuoteData.__struct_fields__)
DEPTH_KEYS = tuple(DepthData.__struct_fields__)
KEYS_BY_MODE = {Mode.LTP: LTP_KEYS, Mode.QUOTE: QUOTE_KEYS, Mode.DEPTH: DEPTH_KEYS}

_encode = msgspec.json.Encoder().encode

_iso_second = -1
_iso_prefix = ""


def iso_millis(epoch_ms: int) -> str:
    """ISO-8601 UTC with milliseconds, e.g. 2025-04-16T10:30:45.123Z (cached per second)."""
    global _iso_second, _iso_prefix
    second, millis = divmod(epoch_ms, 1000)
    if second != _iso_second:
        _iso_prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _iso_second = second
    return f"{_iso_prefix}.{millis:03d}Z"


def _side(levels: tuple[DepthLevel, ...], depth: int = DEPTH_LEVELS) -> tuple[DepthLevel, ...]:
    """Exactly `depth` levels: the book's, then empty ones."""
    if len(levels) == depth:
        return levels
    if len(levels) > depth:
        return levels[:depth]
    return levels + (EMPTY_LEVEL,) * (depth - len(levels))


def to_data(tick: Tick, mode: Mode) -> LtpData:
    """The typed data object of `mode` for `tick`."""
    ltt = tick.ltt or tick.exchange_time
    timestamp = iso_millis(tick.exchange_time or ltt)
    if mode == Mode.LTP:
        return LtpData(tick.symbol, tick.exchange, tick.ltp, ltt, timestamp)
    close = tick.close
    change = round(tick.ltp - close, 6) if close else 0.0
    change_percent = round(change * 100.0 / close, 4) if close else 0.0
    quote = (
        tick.symbol,
        tick.exchange,
        tick.ltp,
        ltt,
        timestamp,
        tick.open,
        tick.high,
        tick.low,
        close,
        change,
        change_percent,
        tick.volume,
        tick.avg_trade_price,
        tick.last_trade_quantity,
        tick.total_buy_quantity,
        tick.total_sell_quantity,
        tick.oi,
    )
    if mode == Mode.QUOTE:
        return QuoteData(*quote)
    depth = Depth(_side(tick.bids, tick.depth), _side(tick.asks, tick.depth))
    return DepthData(*quote, depth, tick.upper_circuit, tick.lower_circuit)


def encode_data(tick: Tick, mode: Mode) -> bytes:
    """UTF-8 JSON of the data object of `mode`."""
    return _encode(to_data(tick, mode))
