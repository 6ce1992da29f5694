"""Kite codec throughput: decode_frame + to_tick of full (184-byte) packets in multi-packet frames.

Run: .venv/bin/python bench/zerodha_codec.py [--packets N] [--per-frame K] [--runs R]
Prints packets per second for each run and the median (one core), plus the simulator's cost of
producing one full packet (market step + encode).
"""

from __future__ import annotations

import argparse
import statistics
import time

from openalgo_proxy.brokers.market import NIFTY50, SimulatedMarket
from openalgo_proxy.brokers.zerodha.codec import (
    KiteMode,
    decode_frame,
    encode_frame,
    encode_packet,
    packet_from_tick,
    to_tick,
)


def make_frames(count: int, per_frame: int) -> tuple[list[bytes], float]:
    market = SimulatedMarket(NIFTY50, seed=7)
    packets = []
    start = time.perf_counter()
    for i in range(count):
        listing = NIFTY50[i % len(NIFTY50)]
        tick = market.advance(listing.exchange, listing.symbol)
        packets.append(encode_packet(packet_from_tick(tick, listing.kite_token, KiteMode.FULL)))
    produce_us = (time.perf_counter() - start) / count * 1e6
    frames = [encode_frame(packets[i : i + per_frame]) for i in range(0, count, per_frame)]
    return frames, produce_us


def run_once(frames: list[bytes]) -> float:
    decode = decode_frame
    convert = to_tick
    count = 0
    start = time.perf_counter()
    for frame in frames:
        for packet in decode(frame):
            convert(packet, "RELIANCE", "NSE", 0)
            count += 1
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--packets", type=int, default=100_000)
    parser.add_argument("--per-frame", type=int, default=50)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    frames, produce_us = make_frames(min(args.packets, 5_000), args.per_frame)
    frames = (frames * (args.packets // (len(frames) * args.per_frame) + 1))[: max(1, args.packets // args.per_frame)]
    rates = [run_once(frames) for _ in range(args.runs)]
    for i, rate in enumerate(rates, 1):
        print(f"run {i}: {rate:,.0f} packets/s")  # noqa: T201 (CLI output)
    print(f"median: {statistics.median(rates):,.0f} full packets/s (decode_frame + to_tick, one core)")  # noqa: T201
    print(f"simulator: {produce_us:.1f} us to produce one full packet (market step + encode)")  # noqa: T201


if __name__ == "__main__":
    main()
