"""Noren codec throughput: touchline/depth messages decoded, merged and normalised per second, one core.

Run: .venv/bin/python bench/noren_codec.py [--messages N] [--runs R]
The stream comes from the simulated market as a Noren server sends it: one full acknowledgement
(`tk`) per NIFTY 50 instrument, then updates (`tf`) carrying only the changed fields; 10% of the
instruments are on depth (`dk`/`df`). Each message goes through `codec.decode`, `MergeState.apply`
and `codec.to_tick`, the path of the feed's connection. Goal: >= 100,000 messages/s.
Also part of the `codec` scenario of `python -m bench` (`run()`).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from openalgo_proxy.brokers.market import NIFTY50, SimulatedMarket
from openalgo_proxy.brokers.noren import codec

TARGET = 100_000


def make_messages(count: int) -> list[str]:
    market = SimulatedMarket(NIFTY50, seed=7)
    last: dict[str, dict[str, str]] = {}
    out: list[str] = []
    now_s = 1_765_000_000
    i = 0
    while len(out) < count:
        listing = NIFTY50[i % len(NIFTY50)]
        depth = i % len(NIFTY50) < 5
        i += 1
        now_s += i % 3 == 0
        tick = market.advance(listing.exchange, listing.symbol, now_s * 1000)
        fields = codec.tick_fields(tick, 2, depth, now_s, "09:15:00")
        head = {"e": "NSE", "tk": listing.angel_token}
        previous = last.get(listing.symbol)
        if previous is None:
            out.append(codec.encode({"t": "dk" if depth else "tk", **head, "ts": f"{listing.symbol}-EQ", **fields}))
        else:
            changed = codec.changed_fields(previous, fields)
            out.append(codec.encode({"t": "df" if depth else "tf", **head, **changed}))
        last[listing.symbol] = fields
    return out


def run_once(messages: list[str], clock: Callable[[], float] = time.perf_counter) -> float:
    """Messages decoded, merged and normalised per second over `messages`."""
    decode = codec.decode
    convert = codec.to_tick
    merge = codec.MergeState()
    apply = merge.apply
    start = clock()
    for text in messages:
        merged = apply(decode(text))
        if merged is not None:
            convert(merged[1], "RELIANCE", "NSE", 0)
    return len(messages) / (clock() - start)


def run(seconds: float = 2.0) -> tuple[float, str]:
    """(messages per second, description) for `python -m bench codec`."""
    messages = make_messages(20_000)
    rates: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(rates) < 3:
        rates.append(run_once(messages))
    cpu = statistics.median(run_once(messages, time.process_time) for _ in range(3))
    mean_len = sum(map(len, messages)) / len(messages)
    return statistics.median(rates), (
        f"decode+merge+to_tick, tk/tf with 10% dk/df, mean {mean_len:.0f} bytes; {cpu:,.0f} per CPU-second;"
        f" goal >= {TARGET:,}/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    messages = make_messages(args.messages)
    rates = [run_once(messages) for _ in range(args.runs)]
    for i, rate in enumerate(rates, 1):
        print(f"run {i}: {rate:,.0f} messages/s")  # noqa: T201 (CLI output)
    cpu = statistics.median(run_once(messages, time.process_time) for _ in range(args.runs))
    print(f"per CPU-second: {cpu:,.0f} messages")  # noqa: T201
    print(f"median: {statistics.median(rates):,.0f} messages/s (goal >= {TARGET:,})")  # noqa: T201


if __name__ == "__main__":
    main()
