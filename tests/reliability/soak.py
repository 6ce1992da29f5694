"""Soak run: the production path (Angel simulator -> Angel adapter -> feed -> bus -> proxy) under
steady load for a while, with client churn and periodic broker drops; RSS and FD count sampled.

    python -m tests.reliability.soak --seconds 600      (make soak; SOAK_SECONDS=... to change)

Passes when, after a warm-up, the FD count returns to its level and RSS stays flat (no growth
beyond a small tolerance between the first and last quarter of the samples), every client kept
receiving, and the feed recovered from every drop. tests/reliability/test_soak.py runs a short one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import random
import statistics
import sys
import time
from dataclasses import dataclass, field

import websockets

from openalgo_proxy.brokers.angel.simulator import AngelSimulator
from openalgo_proxy.brokers.base import ConnectionState
from openalgo_proxy.brokers.market import NIFTY50
from tests.reliability.scenarios import Resources, angel_under_test, resources, system_behind_faults

log = logging.getLogger("soak")
MIB = 2**20


@dataclass
class Sample:
    at: float
    res: Resources
    messages: int


@dataclass
class SoakReport:
    seconds: float
    samples: list[Sample] = field(default_factory=list)
    messages: int = 0
    cycles: int = 0
    drops: int = 0
    failures: list[str] = field(default_factory=list)

    def check(self, rss_tolerance: float = 8 * MIB, fd_tolerance: int = 4) -> list[str]:
        """What is not flat; empty when the run passed."""
        problems = list(self.failures)
        steady = self.samples[len(self.samples) // 4 :]  # past warm-up
        if len(steady) < 4:
            return [*problems, f"too few samples ({len(self.samples)}) to judge"]
        quarter = max(1, len(steady) // 4)
        first = [s.res for s in steady[:quarter]]
        last = [s.res for s in steady[-quarter:]]
        rss_growth = statistics.median(r.rss for r in last) - statistics.median(r.rss for r in first)
        if rss_growth > rss_tolerance:
            problems.append(f"RSS grew {rss_growth / MIB:.1f} MiB between the first and last quarter")
        fd_growth = min(r.fds for r in last) - min(r.fds for r in first)
        if fd_growth > fd_tolerance:
            problems.append(f"FD count grew by {fd_growth}")
        thread_growth = max(r.threads for r in last) - max(r.threads for r in first)
        if thread_growth > 0:
            problems.append(f"thread count grew by {thread_growth}")
        stalled = [b for a, b in zip(self.samples, self.samples[1:], strict=False) if b.messages == a.messages]
        if stalled:
            problems.append(f"no messages delivered in {len(stalled)} sampling interval(s)")
        return problems

    def table(self) -> str:
        lines = ["   t(s)    fds  tasks threads  rss(MiB)  messages"]
        for s in self.samples:
            r = s.res
            lines.append(f"{s.at:7.1f} {r.fds:6d} {r.tasks:6d} {r.threads:7d} {r.rss / MIB:9.1f} {s.messages:9d}")
        lines.append(f"cycles={self.cycles} drops={self.drops} messages={self.messages}")
        return "\n".join(lines)


async def _client(url: str, rng: random.Random, report: SoakReport, stop: asyncio.Event, lifetime: float) -> None:
    symbols = rng.sample([lst.symbol for lst in NIFTY50], 8)
    async with websockets.connect(url, open_timeout=5, close_timeout=1, compression=None) as ws:
        await ws.send(
            json.dumps(
                {
                    "action": "subscribe",
                    "mode": rng.choice([1, 2, 3]),
                    "symbols": [{"symbol": s, "exchange": "NSE"} for s in symbols],
                }
            )
        )
        ends = time.monotonic() + lifetime
        while not stop.is_set() and time.monotonic() < ends:
            try:
                raw = await asyncio.wait_for(ws.recv(), max(0.01, min(1.0, ends - time.monotonic())))
            except TimeoutError:
                continue
            if isinstance(raw, str) and raw.startswith('{"type":"market_data"'):
                report.messages += 1
    report.cycles += 1


async def soak(seconds: float, clients: int = 20, sample_every: float = 1.0, drop_every: float = 20.0) -> SoakReport:
    report = SoakReport(seconds)
    rng = random.Random(42)
    async with (
        angel_under_test({"ticks_per_second": 4, "seed": 5}, options={"stall_timeout": 3.0}) as broker,
        system_behind_faults(broker, proxy={"ping_interval": 5.0}) as fs,
    ):
        sim = broker.simulator
        assert isinstance(sim, AngelSimulator)
        stop = asyncio.Event()
        url = fs.system.url
        started = time.monotonic()

        async def keep_client(slot: int) -> None:
            while not stop.is_set():  # bounded by `stop`; each lifetime is 2-8 s of churn
                try:
                    await _client(url, random.Random(rng.random()), report, stop, rng.uniform(2.0, 8.0))
                except (OSError, websockets.WebSocketException) as exc:
                    report.failures.append(f"client {slot}: {exc!r}")
                    return

        workers = [asyncio.create_task(keep_client(i), name=f"soak-client-{i}") for i in range(clients)]
        next_drop = started + drop_every
        try:
            while (now := time.monotonic()) - started < seconds:
                if now >= next_drop:
                    fs.fp.reset_all()  # a broker drop: the feed must reconnect and resubscribe
                    report.drops += 1
                    next_drop = now + drop_every
                gc.collect()
                report.samples.append(Sample(now - started, resources(), report.messages))
                await asyncio.sleep(sample_every)
            if fs.adapter.status().state is not ConnectionState.CONNECTED:
                report.failures.append(f"broker link not connected at the end: {fs.adapter.status().state}")
        finally:
            stop.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*workers, return_exceptions=True), 10)
            for worker in workers:
                worker.cancel()
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--sample-every", type=float, default=None, help="default: seconds/40, 0.5 to 5 s")
    parser.add_argument("--drop-every", type=float, default=None, help="default: seconds/5, at most 60 s")
    args = parser.parse_args(argv)
    sample_every = args.sample_every or max(0.5, min(5.0, args.seconds / 40))
    drop_every = args.drop_every or min(60.0, args.seconds / 5)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("openalgo_proxy.proxy.wire").setLevel(logging.WARNING)  # one line per connection
    report = asyncio.run(soak(args.seconds, args.clients, sample_every, drop_every))
    print(report.table())
    problems = report.check()
    for problem in problems:
        print(f"FAIL: {problem}")
    print("soak: PASS" if not problems else "soak: FAIL")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
