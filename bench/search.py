"""Instrument search on a broker-sized master: `python -m bench.search [--instruments N] [--repeat R]`.

A synthetic master shaped like Angel One's (about 150,000 rows: cash equities on NSE and BSE, indices,
and mostly index and stock options on NFO with a few expiries and many strikes). Reports the index
build time (the proxy builds it in a worker thread) and the median and worst time of each kind of
query (the proxy runs queries on its event loop, so these bound the stall one search can cause).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable

from openalgo_proxy.search import Listing, SearchIndex

EXPIRIES = ("30DEC25", "27JAN26", "24FEB26", "31MAR26")


def master(instruments: int, seed: int = 1) -> list[Listing]:
    """Equities, indices and options until `instruments` rows; deterministic for a seed."""
    rng = random.Random(seed)
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    equities = sorted({"".join(rng.choice(letters) for _ in range(rng.randint(3, 10))) for _ in range(6000)})
    rows = [Listing(name, exchange, f"{name} LTD", "EQ", 0.05, 1) for name in equities for exchange in ("NSE", "BSE")]
    rows += [Listing(name, "NSE_INDEX", name, "INDEX", 0.05, 1) for name in ("NIFTY", "BANKNIFTY", "FINNIFTY")]
    underlyings = ["NIFTY", "BANKNIFTY", "FINNIFTY", *equities[:180]]
    while len(rows) < instruments:
        name = rng.choice(underlyings)
        expiry = rng.choice(EXPIRIES)
        strike = rng.randrange(100, 60000, 50)
        kind = rng.choice(("CE", "PE"))
        rows.append(Listing(f"{name}{expiry}{strike}{kind}", "NFO", name, kind, 0.05, rng.choice((25, 50, 75))))
    return rows[:instruments]


QUERIES: dict[str, Callable[[SearchIndex], object]] = {
    "exact symbol (NIFTY)": lambda index: index.search("NIFTY"),
    "prefix, many matches (BANKNIFTY30DEC25)": lambda index: index.search("BANKNIFTY30DEC25"),
    "one letter (S)": lambda index: index.search("S"),
    "word of a name (LTD)": lambda index: index.search("LTD"),
    "substring (JAN2626)": lambda index: index.search("JAN2626"),
    "miss with typo scan (QZXWVU)": lambda index: index.search("QZXWVU"),
    "suggest for an unknown name (NIFTY on NSE)": lambda index: index.suggest("NIFTY", "NSE"),
}


def measure(instruments: int, repeat: int) -> list[tuple[str, float, float]]:
    """(what, median ms, max ms) per query kind, and the build as the first row."""
    rows = master(instruments)
    builds = []
    index = SearchIndex()
    for _ in range(max(1, repeat // 20)):
        started = time.perf_counter()
        index = SearchIndex(rows)
        builds.append((time.perf_counter() - started) * 1000)
    out = [(f"build the index ({len(index)} instruments)", statistics.median(builds), max(builds))]
    for what, query in QUERIES.items():
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            query(index)
            times.append((time.perf_counter() - started) * 1000)
        out.append((what, statistics.median(times), max(times)))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.search", description=__doc__.splitlines()[0])
    parser.add_argument("--instruments", type=int, default=150_000, help="rows of the synthetic master")
    parser.add_argument("--repeat", type=int, default=60, help="runs of each query")
    args = parser.parse_args(argv)
    width = max(len(what) for what in QUERIES) + 10
    sys.stdout.write(f"{'what':<{width}} {'median ms':>10} {'max ms':>10}\n")
    for what, median, worst in measure(args.instruments, args.repeat):
        sys.stdout.write(f"{what:<{width}} {median:>10.2f} {worst:>10.2f}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
