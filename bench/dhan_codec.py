"""Dhan codec throughput: decode_frame + to_tick of Full (code 21) packets on one core.

Run: .venv/bin/python bench/dhan_codec.py [--packets N] [--runs R] [--per-frame K]
Prints packets per second for each run and the median. Target: >= 250,000 Full packets/s.
The packets come from the simulated market (NIFTY 50, moving prices), K packets per frame.
Also the `codec` scenario of `python -m bench` (`run()`).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from openalgo_proxy.brokers.dhan.codec import (
    FullPacket,
    RequestCode,
    Segment,
    decode_frame,
    encode_packet,
    packets_from_tick,
    to_tick,
)
from openalgo_proxy.brokers.market import NIFTY50, SimulatedMarket

TARGET = 250_000


def make_frames(count: int, per_frame: int = 1) -> list[bytes]:
    market = SimulatedMarket(NIFTY50, seed=7)
    packets = []
    for i in range(count):
        listing = NIFTY50[i % len(NIFTY50)]
        tick = market.advance(listing.exchange, listing.symbol)
        (packet,) = packets_from_tick(tick, RequestCode.FULL, Segment.NSE_EQ, int(listing.angel_token))
        packets.append(encode_packet(packet))
    return [b"".join(packets[i : i + per_frame]) for i in range(0, len(packets), per_frame)]


def run_once(frames: list[bytes], clock: Callable[[], float] = time.perf_counter) -> float:
    """Full packets decoded and normalised per second over `frames` (wall clock, or per CPU-second
    with `clock=time.process_time`, which other processes on a shared machine do not inflate)."""
    decode = decode_frame
    convert = to_tick
    full = FullPacket
    count = 0
    start = clock()
    for data in frames:
        for packet in decode(data):
            if type(packet) is full:
                convert(packet, "RELIANCE", "NSE")
                count += 1
    return count / (clock() - start)


def run(seconds: float = 2.0) -> tuple[float, str]:
    """(Full packets decoded + normalised per second, description) for `python -m bench codec`."""
    frames = make_frames(5_000)
    rates: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(rates) < 3:
        rates.append(run_once(frames))
    cpu = statistics.median(run_once(frames, time.process_time) for _ in range(3))
    multi = run_once(make_frames(5_000, per_frame=8))
    return statistics.median(rates), (
        f"decode_frame+to_tick on 162-byte Full packets, one per frame; {cpu:,.0f} per CPU-second;"
        f" 8 per frame {multi:,.0f}/s; target >= {TARGET:,}/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--per-frame", type=int, default=1)
    args = parser.parse_args()
    frames = make_frames(min(args.packets, 5_000), args.per_frame)
    frames = (frames * (args.packets // (len(frames) * args.per_frame) + 1))[: max(1, args.packets // args.per_frame)]
    rates = [run_once(frames) for _ in range(args.runs)]
    for i, rate in enumerate(rates, 1):
        print(f"run {i}: {rate:,.0f} packets/s")  # noqa: T201 (CLI output)
    cpu = statistics.median(run_once(frames, time.process_time) for _ in range(args.runs))
    print(f"per CPU-second: {cpu:,.0f} packets")  # noqa: T201
    median = statistics.median(rates)
    print(f"median: {median:,.0f} Full packets/s (decode_frame + to_tick, one core, {args.per_frame}/frame)")  # noqa: T201


if __name__ == "__main__":
    main()
