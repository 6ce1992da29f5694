"""History queries over the tick store: recorded ticks, and candles rebuilt from them. Blocking.

Rows are plain JSON-ready dicts (the `history` action and the CLI print them as they are). Candles
use the ticks of the richest mode recorded for the instrument (LTP-only recordings give candles
without volume and OI).
"""

from __future__ import annotations

import datetime as dt
import time

from openalgo_proxy.history import reader
from openalgo_proxy.history.candles import Candle, TickPoint, rebuild
from openalgo_proxy.history.sessions import IST, interval_ms, session_of

TICK_COLUMNS = ("received", "timestamp", "ltp", "ltt", "volume", "oi", "mode")


def ist_text(epoch_ms: int) -> str:
    return dt.datetime.fromtimestamp(epoch_ms / 1000, IST).isoformat(timespec="milliseconds")


def _richest_mode(root: str, exchange: str, symbol: str, start: int, end: int) -> int | None:
    modes = [m for e, s, m in reader.instruments(root, reader.TickQuery(start, end, exchange, symbol)) if m <= 3]
    return max(modes) if modes else None


def ticks_between(
    root: str, exchange: str, symbol: str, start: int, end: int, *, limit: int, offset: int = 0
) -> list[dict[str, object]]:
    """Recorded ticks of the richest mode, in arrival order, rows [offset, offset + limit)."""
    mode = _richest_mode(root, exchange, symbol, start, end)
    if mode is None:
        return []
    table = reader.read_ticks(root, reader.TickQuery(start, end, exchange, symbol, mode), columns=list(TICK_COLUMNS))
    table = table.slice(offset, limit)
    received = reader.epoch_ms(table.column("received"))
    stamps = reader.epoch_ms(table.column("timestamp").fill_null(0))
    cols = {name: table.column(name).to_pylist() for name in ("ltp", "ltt", "volume", "oi", "mode")}
    return [
        {
            "time": ist_text(received[i]),
            "received": received[i],
            "exchange_time": stamps[i],
            "ltp": cols["ltp"][i],
            "ltt": cols["ltt"][i] or 0,
            "volume": cols["volume"][i] or 0,
            "oi": cols["oi"][i] or 0,
            "mode": cols["mode"][i],
        }
        for i in range(table.num_rows)
    ]


def recorded_points(root: str, exchange: str, symbol: str, start: int, end: int) -> list[TickPoint]:
    """The instrument's recorded ticks as candle inputs, in arrival order (exchange trade times)."""
    mode = _richest_mode(root, exchange, symbol, start, end)
    if mode is None:
        return []
    columns = ["ltt", "timestamp", "ltp", "volume", "oi"]
    table = reader.read_ticks(root, reader.TickQuery(start, end, exchange, symbol, mode), columns=columns)
    stamps = reader.epoch_ms(table.column("timestamp").fill_null(0))
    ltt, ltp, volume, oi = (table.column(n).to_pylist() for n in ("ltt", "ltp", "volume", "oi"))
    return [TickPoint(ltt[i] or stamps[i], ltp[i] or 0.0, volume[i] or 0, oi[i] or 0) for i in range(table.num_rows)]


def candle_row(candle: Candle) -> dict[str, object]:
    return {
        "time": ist_text(candle.start),
        "timestamp": candle.start,
        "open": candle.open,
        "high": candle.high,
        "low": candle.low,
        "close": candle.close,
        "volume": candle.volume,
        "oi": candle.oi,
    }


def completed_candles(
    root: str, exchange: str, symbol: str, interval: str, start: int, end: int, now: int | None = None
) -> list[Candle]:
    """Completed candles starting in [start, end), rebuilt from the recording."""
    length = interval_ms(interval)
    points = recorded_points(root, exchange, symbol, start, end)
    until = min(end, int(time.time() * 1000) if now is None else now)
    return [c for c in rebuild(points, length, session_of(exchange), until) if start <= c.start < end]


def candles_between(
    root: str, exchange: str, symbol: str, interval: str, start: int, end: int, *, limit: int, offset: int = 0
) -> list[dict[str, object]]:
    candles = completed_candles(root, exchange, symbol, interval, start, end)
    return [candle_row(c) for c in candles[offset : offset + limit]]
