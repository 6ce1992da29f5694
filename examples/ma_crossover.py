"""Strategy example: a moving-average crossover emitting BUY / SELL signals from live ticks.

    make run                                   # in one terminal
    .venv/bin/python examples/ma_crossover.py  # in another

For every instrument it keeps a fast and a slow simple moving average of the last traded price
(one sample per tick) and emits BUY when the fast average crosses above the slow one, SELL when
it crosses below. Signals go to stdout (text, or JSON lines with --json). Uses the asyncio client
(`openalgo_proxy.client.connect`), which reconnects and resubscribes by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from collections import deque
from dataclasses import dataclass

from openalgo_proxy.client import ClientError, connect, tls_context

DEFAULT_INSTRUMENTS = ["NSE:RELIANCE", "NSE:INFY", "NSE:HDFCBANK", "NSE:SBIN"]


@dataclass(frozen=True)
class Signal:
    side: str  # BUY or SELL
    instrument: str
    price: float
    fast: float
    slow: float
    at: str


class Crossover:
    """Fast/slow SMA crossover on one price series. `update` returns "BUY", "SELL" or None."""

    def __init__(self, fast: int, slow: int) -> None:
        if not 0 < fast < slow:
            raise ValueError("need 0 < fast < slow")
        self.fast_window: deque[float] = deque(maxlen=fast)
        self.slow_window: deque[float] = deque(maxlen=slow)
        self.fast = 0.0
        self.slow = 0.0
        self._above: bool | None = None

    def update(self, price: float) -> str | None:
        self.fast_window.append(price)
        self.slow_window.append(price)
        if len(self.slow_window) < (self.slow_window.maxlen or 0):
            return None
        self.fast = sum(self.fast_window) / len(self.fast_window)
        self.slow = sum(self.slow_window) / len(self.slow_window)
        if abs(self.fast - self.slow) <= 1e-9 * abs(self.slow):
            return None  # equal up to float noise of the sums: no cross
        above = self.fast > self.slow
        previous, self._above = self._above, above
        if previous is None or previous == above:
            return None
        return "BUY" if above else "SELL"


def emit(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


@dataclass
class Stats:
    ticks: int = 0
    signals: int = 0


async def run(args: argparse.Namespace, stats: Stats) -> None:
    books: dict[str, Crossover] = {}
    tls = tls_context(args.ca)  # None: the system's trust store (for wss://)
    async with connect(args.url, api_key=args.api_key, first_connect_timeout=args.connect_timeout, ssl=tls) as client:
        await client.subscribe(args.instruments, mode="ltp")
        emit(f"# watching {', '.join(args.instruments)} on {args.url}: SMA {args.fast} / {args.slow} ticks")
        async for tick in client:
            stats.ticks += 1
            book = books.setdefault(tick.name, Crossover(args.fast, args.slow))
            side = book.update(tick.ltp)
            if side is None:
                continue
            stats.signals += 1
            signal = Signal(side, tick.name, tick.ltp, round(book.fast, 6), round(book.slow, 6), tick.timestamp)
            if args.json:
                emit(json.dumps(signal.__dict__))
            else:
                relation = ">" if side == "BUY" else "<"
                emit(
                    f"{signal.at} {side:<4} {signal.instrument} @ {signal.price:.2f}"
                    f"  fast {signal.fast:.2f} {relation} slow {signal.slow:.2f}"
                )


async def main_async(args: argparse.Namespace) -> int:
    stats = Stats()
    task = asyncio.create_task(run(args, stats))
    done, _ = await asyncio.wait({task}, timeout=args.seconds)
    if task in done:
        task.result()  # the client ended: raise its error
    else:
        # time is up: stop the strategy cleanly (the client closes in `async with`)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    emit(f"# done: {stats.ticks} ticks, {stats.signals} signals")
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("instruments", nargs="*", default=DEFAULT_INSTRUMENTS, metavar="EXCHANGE:SYMBOL")
    parser.add_argument("--url", default="ws://127.0.0.1:8765")
    parser.add_argument("--api-key", default=os.environ.get("OPENALGO_PROXY_API_KEY"))
    parser.add_argument("--ca", default=None, metavar="FILE", help="PEM of a private CA that signed a wss:// proxy")
    parser.add_argument("--fast", type=int, default=5, help="fast SMA length in ticks (default 5)")
    parser.add_argument("--slow", type=int, default=20, help="slow SMA length in ticks (default 20)")
    parser.add_argument("--seconds", type=float, default=None, help="stop after this many seconds")
    parser.add_argument("--json", action="store_true", help="emit signals as JSON lines")
    parser.add_argument("--connect-timeout", type=float, default=30.0, help="seconds to wait for the proxy")
    args = parser.parse_args(argv)
    if not 0 < args.fast < args.slow:
        parser.error("need 0 < --fast < --slow")
    return args


def main() -> int:
    args = parse_args()
    started = time.monotonic()
    try:
        return asyncio.run(main_async(args))
    except (ClientError, ValueError) as exc:  # ValueError: an unreadable --ca file
        sys.stderr.write(f"ma_crossover: {exc}\n")
        return 1
    except KeyboardInterrupt:
        emit(f"# interrupted after {time.monotonic() - started:.0f} s")
        return 0


if __name__ == "__main__":
    sys.exit(main())
