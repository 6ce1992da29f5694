"""Candles from ticks, pure: one `CandleBuilder` per (instrument, interval), fed ticks in order.

OHLC come from the last traded price of each tick, volume from the change of the day's cumulative
volume between consecutive ticks (a fall means the counter was reset, e.g. a new day or a feed
restart: the new value counts from zero), OI is the last one seen in the candle. An interval in
which nothing traded has no candle. A candle completes when a tick of a later interval arrives or
when the clock (`advance`, injectable time) passes its end; either way it is completed once, and a
tick arriving late for it (its exchange time inside a completed candle) counts for no candle.

`rebuild` computes the completed candles of a recorded tick sequence in one pass, independently of
the builder, so the two can be checked against each other.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from openalgo_proxy.history.sessions import TradingSession, bucket


@dataclass(frozen=True, slots=True)
class TickPoint:
    """What a candle needs of a tick: exchange time (epoch ms), price, cumulative volume, OI."""

    time: int
    ltp: float
    volume: int = 0
    oi: int = 0


@dataclass(frozen=True, slots=True)
class Candle:
    start: int  # epoch ms, IST-session aligned
    end: int  # epoch ms, exclusive
    open: float
    high: float
    low: float
    close: float
    volume: int
    oi: int
    completed: bool = False


def volume_step(previous: int | None, current: int) -> int:
    """Traded quantity between two cumulative-volume readings (a reset counts from zero)."""
    if previous is None:
        return 0
    return current - previous if current >= previous else current


class CandleBuilder:
    """Live candles of one instrument at one interval."""

    def __init__(self, interval: int, session: TradingSession) -> None:
        self.interval = interval
        self.session = session
        self.forming: Candle | None = None
        self.last_volume: int | None = None
        self.last_time = 0
        self.closed_until = 0  # end of the last candle completed: a late tick cannot reopen it

    def add(self, tick: TickPoint) -> tuple[Candle | None, Candle | None]:
        """Apply one tick: (the candle this completed or None, the forming candle if it changed or None).
        Ticks older than the last one applied, and ticks without a price, change nothing."""
        if tick.ltp <= 0 or tick.time < self.last_time:
            return None, None
        self.last_time = tick.time
        step = volume_step(self.last_volume, tick.volume)
        self.last_volume = tick.volume
        span = bucket(tick.time, self.interval, self.session)
        completed = None
        forming = self.forming
        if forming is not None and (span is None or span[0] >= forming.end):
            completed = replace(forming, completed=True)
            forming = self.forming = None
        if completed is not None:
            self.closed_until = completed.end
        if span is None or span[0] < self.closed_until:
            return completed, None
        if forming is None:
            self.forming = Candle(span[0], span[1], tick.ltp, tick.ltp, tick.ltp, tick.ltp, step, tick.oi)
        else:
            self.forming = Candle(
                forming.start,
                forming.end,
                forming.open,
                max(forming.high, tick.ltp),
                min(forming.low, tick.ltp),
                tick.ltp,
                forming.volume + step,
                tick.oi,
            )
        return completed, self.forming

    def advance(self, now: int) -> Candle | None:
        """The clock reached `now` (epoch ms): the forming candle, completed, if its end has passed."""
        forming = self.forming
        if forming is None or now < forming.end:
            return None
        self.forming = None
        self.closed_until = forming.end
        return replace(forming, completed=True)


def rebuild(ticks: Iterable[TickPoint], interval: int, session: TradingSession, until: int) -> list[Candle]:
    """Completed candles of a recorded sequence: those whose end is at or before `until` (epoch ms)."""
    candles: dict[int, list[float | int]] = {}  # start -> [end, open, high, low, close, volume, oi]
    previous: int | None = None
    last_time = 0
    for tick in ticks:
        if tick.ltp <= 0 or tick.time < last_time:
            continue
        last_time = tick.time
        step = volume_step(previous, tick.volume)
        previous = tick.volume
        span = bucket(tick.time, interval, session)
        if span is None:
            continue
        row = candles.get(span[0])
        if row is None:
            candles[span[0]] = [span[1], tick.ltp, tick.ltp, tick.ltp, tick.ltp, step, tick.oi]
        else:
            row[2] = max(row[2], tick.ltp)
            row[3] = min(row[3], tick.ltp)
            row[4] = tick.ltp
            row[5] += step
            row[6] = tick.oi
    return [
        Candle(start, int(r[0]), float(r[1]), float(r[2]), float(r[3]), float(r[4]), int(r[5]), int(r[6]), True)
        for start, r in sorted(candles.items())
        if r[0] <= until
    ]
