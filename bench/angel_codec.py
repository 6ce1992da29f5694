"""Angel codec throughput: decode_packet + to_tick of SnapQuote packets on one core.

Run: .venv/bin/python bench/angel_codec.py [--packets N] [--runs R]
Prints packets per second for each run and the median. Target: >= 250,000 packets/s.
"""

from __future__ import annotations

import argparse
import statistics
import time

from openalgo_proxy.brokers.angel.codec import SubscriptionMode, decode_packet, encode_packet, packet_from_tick, to_tick
from openalgo_proxy.brokers.market import NIFTY50, SimulatedMarket


def make_packets(count: int) -> list[bytes]:
    market = SimulatedMarket(NIFTY50, seed=7)
    packets = []
    for i in range(count):
        listing = NIFTY50[i % len(NIFTY50)]
        tick = market.advance(listing.exchange, listing.symbol)
        packets.append(encode_packet(packet_from_tick(tick, SubscriptionMode.SNAP_QUOTE, 1, listing.angel_token, i)))
    return packets


def run_once(packets: list[bytes]) -> float:
    decode = decode_packet
    convert = to_tick
    start = time.perf_counter()
    for data in packets:
        convert(decode(data), "RELIANCE", "NSE")
    return len(packets) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    packets = make_packets(min(args.packets, 5_000))
    packets = (packets * (args.packets // len(packets) + 1))[: args.packets]
    rates = [run_once(packets) for _ in range(args.runs)]
    for i, rate in enumerate(rates, 1):
        print(f"run {i}: {rate:,.0f} packets/s")  # noqa: T201 (CLI output)
    print(f"median: {statistics.median(rates):,.0f} SnapQuote packets/s (decode_packet + to_tick, one core)")  # noqa: T201


if __name__ == "__main__":
    main()
