"""Exchange trading sessions in IST and the candle intervals aligned to them. Pure.

Intraday candles start at the session open (NSE 09:15, MCX 09:00, CDS 09:00) and step by the
interval; the last candle of a day ends at the session close even when that cuts it short (an NSE
1h candle opened at 15:15 ends at 15:30). A daily candle spans the whole session of its IST date.
Ticks outside the session (pre-open, after close) belong to no candle.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

IST_OFFSET_MS = (5 * 3600 + 30 * 60) * 1000  # India has no daylight saving time
IST = dt.timezone(dt.timedelta(milliseconds=IST_OFFSET_MS), "IST")
DAY_MS = 86_400_000
MINUTE_MS = 60_000

#: interval name -> length in milliseconds (1d: the whole session)
INTERVALS: dict[str, int] = {
    "1m": MINUTE_MS,
    "3m": 3 * MINUTE_MS,
    "5m": 5 * MINUTE_MS,
    "15m": 15 * MINUTE_MS,
    "30m": 30 * MINUTE_MS,
    "1h": 60 * MINUTE_MS,
    "1d": DAY_MS,
}


@dataclass(frozen=True, slots=True)
class TradingSession:
    """Open and close as milliseconds after IST midnight."""

    open_ms: int
    close_ms: int

    @classmethod
    def hours(cls, open_hhmm: str, close_hhmm: str) -> TradingSession:
        def ms(text: str) -> int:
            hours, minutes = text.split(":")
            return (int(hours) * 60 + int(minutes)) * MINUTE_MS

        return cls(ms(open_hhmm), ms(close_hhmm))


EQUITY = TradingSession.hours("09:15", "15:30")
COMMODITY = TradingSession.hours("09:00", "23:55")  # MCX closes 23:30, or 23:55 while the US is on DST
CURRENCY = TradingSession.hours("09:00", "17:00")
WHOLE_DAY = TradingSession(0, DAY_MS)

SESSIONS: dict[str, TradingSession] = {
    "NSE": EQUITY,
    "BSE": EQUITY,
    "NFO": EQUITY,
    "BFO": EQUITY,
    "NSE_INDEX": EQUITY,
    "BSE_INDEX": EQUITY,
    "MCX": COMMODITY,
    "NCDEX": COMMODITY,
    "CDS": CURRENCY,
    "BCD": CURRENCY,
}


def session_of(exchange: str) -> TradingSession:
    """The exchange's session; an exchange not listed trades the whole IST day."""
    return SESSIONS.get(exchange, EQUITY if exchange.endswith("_INDEX") else WHOLE_DAY)


def interval_ms(name: str) -> int:
    """Length of a named interval; ValueError for names outside INTERVALS."""
    try:
        return INTERVALS[name]
    except KeyError:
        raise ValueError(f"unknown interval {name!r}; use {', '.join(INTERVALS)}") from None


def ist_midnight(epoch_ms: int) -> int:
    """Epoch ms of the IST midnight that starts the IST day of `epoch_ms`."""
    return (epoch_ms + IST_OFFSET_MS) // DAY_MS * DAY_MS - IST_OFFSET_MS


def bucket(epoch_ms: int, interval: int, session: TradingSession) -> tuple[int, int] | None:
    """(start, end) epoch ms of the candle holding `epoch_ms`, or None outside the session."""
    midnight = ist_midnight(epoch_ms)
    opens, closes = midnight + session.open_ms, midnight + session.close_ms
    if not opens <= epoch_ms < closes:
        return None
    if interval >= DAY_MS:
        return opens, closes
    start = opens + (epoch_ms - opens) // interval * interval
    return start, min(start + interval, closes)
