"""The pure candle builder against hand-made tick sequences with known answers, and against `rebuild`."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from openalgo_proxy.history.candles import Candle, CandleBuilder, TickPoint, rebuild
from openalgo_proxy.history.sessions import COMMODITY, CURRENCY, EQUITY, INTERVALS, bucket, session_of
from openalgo_proxy.history.timerange import parse_instant

M = 60_000
DAY = parse_instant("2026-12-07")  # a Monday, IST midnight
NSE_OPEN = parse_instant("2026-12-07T09:15")


def at(hhmmss: str) -> int:
    return parse_instant(f"2026-12-07T{hhmmss}")


def feed(builder: CandleBuilder, ticks: list[TickPoint]) -> list[Candle]:
    done = []
    for tick in ticks:
        completed, _ = builder.add(tick)
        if completed is not None:
            done.append(completed)
    return done


def test_a_candle_holds_its_interval_and_completes_at_the_first_tick_of_the_next() -> None:
    builder = CandleBuilder(M, EQUITY)
    done = feed(
        builder,
        [
            TickPoint(at("09:15:00"), 100.0, 1000, 7),
            TickPoint(at("09:15:30"), 103.0, 1200, 8),
            TickPoint(at("09:15:59.999"), 99.0, 1500, 9),
            TickPoint(at("09:16:00"), 101.0, 1600, 10),
        ],
    )
    assert done == [Candle(NSE_OPEN, NSE_OPEN + M, 100.0, 103.0, 99.0, 99.0, 500, 9, True)]
    assert builder.forming == Candle(NSE_OPEN + M, NSE_OPEN + 2 * M, 101.0, 101.0, 101.0, 101.0, 100, 10)


def test_intervals_without_trades_have_no_candle() -> None:
    builder = CandleBuilder(M, EQUITY)
    done = feed(builder, [TickPoint(at("09:15:10"), 100.0, 10), TickPoint(at("09:18:10"), 105.0, 30)])
    assert [c.start for c in done] == [NSE_OPEN]
    assert builder.forming is not None and builder.forming.start == NSE_OPEN + 3 * M
    assert builder.forming.volume == 20


def test_a_falling_cumulative_volume_is_a_reset_counted_from_zero() -> None:
    builder = CandleBuilder(5 * M, EQUITY)
    feed(
        builder,
        [
            TickPoint(at("09:15:01"), 100.0, 1000),
            TickPoint(at("09:15:02"), 100.0, 1500),
            TickPoint(at("09:15:03"), 100.0, 200),  # the counter restarted: 200 traded since
            TickPoint(at("09:15:04"), 100.0, 300),
        ],
    )
    assert builder.forming is not None and builder.forming.volume == 500 + 200 + 100


def test_session_boundaries_nse() -> None:
    builder = CandleBuilder(60 * M, EQUITY)
    completed, forming = builder.add(TickPoint(at("09:14:59"), 100.0, 1))  # pre-open: no candle
    assert (completed, forming) == (None, None)
    feed(builder, [TickPoint(at("15:20:00"), 100.0, 5), TickPoint(at("15:29:59"), 101.0, 9)])
    assert builder.forming is not None
    assert builder.forming.start == at("15:15") and builder.forming.end == at("15:30")  # cut at the close
    completed, forming = builder.add(TickPoint(at("15:30:00"), 102.0, 12))  # after the close
    assert completed is not None and completed.close == 101.0 and completed.completed
    assert forming is None and builder.forming is None


def test_other_sessions_align_to_their_own_open() -> None:
    assert bucket(at("09:02"), 5 * M, session_of("MCX")) == (at("09:00"), at("09:05"))
    assert bucket(at("09:02"), 5 * M, session_of("NSE")) is None
    assert bucket(at("16:59"), 30 * M, session_of("CDS")) == (at("16:30"), at("17:00"))
    assert bucket(at("17:00"), 30 * M, CURRENCY) is None
    assert bucket(at("23:54"), INTERVALS["1h"], COMMODITY) == (at("23:00"), at("23:55"))
    assert bucket(at("12:00"), INTERVALS["1d"], EQUITY) == (at("09:15"), at("15:30"))
    assert bucket(at("10:00"), 15 * M, session_of("NSE_INDEX")) == (at("10:00"), at("10:15"))


def test_the_clock_completes_a_candle_once_at_its_end() -> None:
    builder = CandleBuilder(3 * M, EQUITY)
    builder.add(TickPoint(at("09:16:00"), 100.0, 10, 3))
    assert builder.advance(at("09:17:59.999")) is None
    completed = builder.advance(at("09:18:00"))
    assert completed == Candle(at("09:15"), at("09:18"), 100.0, 100.0, 100.0, 100.0, 0, 3, True)
    assert builder.advance(at("09:19")) is None
    late, forming = builder.add(TickPoint(at("09:18:30"), 99.0, 20, 4))
    assert late is None and forming is not None and forming.volume == 10


def test_old_ticks_and_ticks_without_price_change_nothing() -> None:
    builder = CandleBuilder(M, EQUITY)
    builder.add(TickPoint(at("09:20:00"), 100.0, 10))
    assert builder.add(TickPoint(at("09:19:00"), 90.0, 20)) == (None, None)
    assert builder.add(TickPoint(at("09:20:01"), 0.0, 30)) == (None, None)
    assert builder.forming is not None and builder.forming.low == 100.0


# -- live equals rebuilt --------------------------------------------------------------------------------
steps = st.lists(
    st.tuples(
        st.integers(0, 5 * M),  # time step
        st.floats(1.0, 1000.0, allow_nan=False).map(lambda p: round(p, 2)),
        st.integers(0, 500),  # volume added
        st.integers(0, 9).map(lambda n: n == 0),  # a cumulative-volume reset, one tick in ten
        st.integers(0, 10_000),  # oi
        st.booleans(),  # a clock event before this tick
    ),
    max_size=120,
)


def sequence(draw: list[tuple[int, float, int, bool, int, bool]], start: int) -> list[tuple[TickPoint, bool]]:
    t, volume, out = start, 0, []
    for step, price, added, reset, oi, clock in draw:
        t += step
        volume = added if reset else volume + added
        out.append((TickPoint(t, price, volume, oi), clock))
    return out


@settings(max_examples=150, deadline=None)
@given(
    steps, st.sampled_from(sorted(INTERVALS)), st.sampled_from(["NSE", "MCX", "CDS", "XYZ"]), st.integers(0, 20 * 60)
)
def test_live_candles_equal_candles_rebuilt_from_the_same_ticks(
    draw: list[tuple[int, float, int, bool, int, bool]], name: str, exchange: str, minute: int
) -> None:
    interval, session = INTERVALS[name], session_of(exchange)
    ticks = sequence(draw, DAY + minute * M)
    builder = CandleBuilder(interval, session)
    live: list[Candle] = []
    for tick, clock in ticks:
        if clock:
            done = builder.advance(tick.time)
            if done is not None:
                live.append(done)
        completed, _ = builder.add(tick)
        if completed is not None:
            live.append(completed)
    end = (ticks[-1][0].time if ticks else DAY) + 2 * INTERVALS["1d"]
    final = builder.advance(end)
    if final is not None:
        live.append(final)
    assert live == rebuild([tick for tick, _ in ticks], interval, session, end)
    assert len({c.start for c in live}) == len(live)  # each completed once


def test_a_late_tick_cannot_reopen_a_candle_the_clock_completed() -> None:
    builder = CandleBuilder(M, EQUITY)
    builder.add(TickPoint(at("09:20:10"), 100.0, 10))
    assert builder.advance(at("09:21:00")) is not None
    assert builder.add(TickPoint(at("09:20:59"), 101.0, 20)) == (None, None)  # exchange time in the closed candle
    _, forming = builder.add(TickPoint(at("09:21:01"), 102.0, 25))
    assert forming is not None and forming.start == at("09:21") and forming.volume == 5
