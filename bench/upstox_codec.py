"""Upstox codec throughput: protobuf decode + merge + normalisation of full-feed messages on one core.

Run: .venv/bin/python bench/upstox_codec.py [--messages N] [--runs R] [--per-message K]
Prints messages per second for each run and the median. Target: >= 100,000 full-feed messages/s.
Each message is one `live_feed` FeedResponse of K instruments (1 by default) in `full` mode (LTPC,
five-level book, day and minute candles, ATP, volume, OI, totals), from the simulated market (NIFTY
50, moving prices); decoding runs the generated module on protobuf's upb runtime, then the
per-instrument merge and the conversion to our tick. Also the `codec` scenario of `python -m bench`
(`run()`).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from openalgo_proxy.brokers.market import NIFTY50, SimulatedMarket
from openalgo_proxy.brokers.upstox import codec
from openalgo_proxy.brokers.upstox.codec import FeedMerger
from openalgo_proxy.brokers.upstox.instruments import listing_key
from openalgo_proxy.model import Instrument

TARGET = 100_000
INSTRUMENTS = {listing_key(lst): Instrument(lst.symbol, lst.exchange, lst.angel_token) for lst in NIFTY50}


def make_messages(count: int, per_message: int = 1) -> list[bytes]:
    market = SimulatedMarket(NIFTY50, seed=7)
    out = []
    for i in range(count):
        feeds = {}
        for j in range(per_message):
            listing = NIFTY50[(i * per_message + j) % len(NIFTY50)]
            tick = market.advance(listing.exchange, listing.symbol)
            feeds[listing_key(listing)] = codec.feed_of(tick, codec.FULL)
        out.append(codec.response_bytes(codec.LIVE_FEED, feeds, 1_765_000_000_000 + i))
    return out


def run_once(messages: list[bytes], clock: Callable[[], float] = time.perf_counter) -> float:
    """Messages decoded, merged and normalised per second over `messages` (wall clock, or per
    CPU-second with `clock=time.process_time`, which other processes on a shared machine do not inflate)."""
    decode = codec.decode
    merger = FeedMerger()
    apply = merger.apply
    names = INSTRUMENTS.get
    count = 0
    start = clock()
    for data in messages:
        apply(decode(data), names)
        count += 1
    return count / (clock() - start)


def run(seconds: float = 2.0) -> tuple[float, str]:
    """(full-feed messages per second, description) for `python -m bench codec`."""
    messages = make_messages(5_000)
    rates: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(rates) < 3:
        rates.append(run_once(messages))
    cpu = statistics.median(run_once(messages, time.process_time) for _ in range(3))
    batched = run_once(make_messages(1_000, per_message=10)) * 10
    return statistics.median(rates), (
        f"decode+merge+to_tick of one-instrument `full` FeedResponses on upb; {cpu:,.0f} per CPU-second;"
        f" 10 instruments per message {batched:,.0f} feeds/s; target >= {TARGET:,}/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--per-message", type=int, default=1)
    args = parser.parse_args()
    messages = make_messages(min(args.messages, 5_000), args.per_message)
    messages = (messages * (args.messages // len(messages) + 1))[: args.messages]
    rates = [run_once(messages) for _ in range(args.runs)]
    for i, rate in enumerate(rates, 1):
        print(f"run {i}: {rate:,.0f} messages/s")  # noqa: T201 (CLI output)
    cpu = statistics.median(run_once(messages, time.process_time) for _ in range(args.runs))
    print(f"per CPU-second: {cpu:,.0f} messages")  # noqa: T201
    median = statistics.median(rates)
    print(  # noqa: T201
        f"median: {median:,.0f} full-feed messages/s ({args.per_message} instrument(s) each; decode + merge + to_tick)"
    )


if __name__ == "__main__":
    main()
