"""Synthetic feed on the NATS bus: the same ticks as `bench.synthetic` (exact total rate, round-robin,
``"bts"`` spliced in at send time), published on the NATS engine's subjects with its frame header.

It holds the ``bench`` broker's lease (so proxies do not fence its run), answers a proxy's hello
with its directory and status, and repeats the status every second. Stdin commands and stdout
events are those of `bench.synthetic` (``go``, ``window T0 T1``, ``stop``; ``ready``, ``window``,
``stopped``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg

from bench.common import BROKER, EXCHANGE, emit, symbol_name
from bench.synthetic import MAX_BURST_SECONDS, STATUS_INTERVAL, RunnerWindow, data_tail
from openalgo_proxy import control, topics
from openalgo_proxy.bus import run_seq_base
from openalgo_proxy.bus_nats import WIRE
from openalgo_proxy.subjects import Names

LEASE_TTL = "5s"


class NatsSyntheticFeed(RunnerWindow):
    def __init__(self, url: str, symbols: int, rate: float, mode: int) -> None:
        super().__init__()
        self.url = url
        self.rate = rate
        self.names = Names()
        self.run = run_seq_base(time.time())
        self.subjects = [self.names.subject(topics.bus_topic(EXCHANGE, symbol_name(i), mode)) for i in range(symbols)]
        self.tails = [data_tail(i, mode) for i in range(symbols)]
        self.seqs = [self.run] * symbols
        self.symbol_names = [symbol_name(i) for i in range(symbols)]
        self.stalls = 0
        self.control_seq = self.run
        self.nc: Client | None = None

    async def _control(self, topic: bytes, data: bytes) -> None:
        assert self.nc is not None
        self.control_seq += 1
        await self.nc.publish(self.names.subject(topic), WIRE.pack(self.run, self.control_seq, 0) + data)

    async def announce(self, msg: Msg | None = None) -> None:
        directory = control.InstrumentDirectory(
            broker=BROKER, exchanges=[EXCHANGE], symbols={EXCHANGE: self.symbol_names}
        )
        await self._control(topics.instruments_topic(BROKER), control.encode_directory(directory))
        await self.status()

    async def status(self) -> None:
        status = control.FeedStatus(
            broker=BROKER,
            state=control.FeedState.CONNECTED,
            connections=1,
            exchanges=[EXCHANGE],
            ticks=self.sent,
            last_tick_age=0.0,
            time=int(time.time() * 1000),
        )
        await self._control(topics.status_topic(BROKER), control.encode_status(status))

    async def hold_lease(self) -> None:
        """Put the lease value now and every second (a bench has one feed: no compare-and-set)."""
        assert self.nc is not None
        js = self.nc.jetstream(timeout=2)
        value = json.dumps({"instance": "bench", "run": self.run}).encode()
        await js.publish(f"$KV.{self.names.leader_bucket}.{BROKER}", value, headers={"Nats-TTL": LEASE_TTL})

    async def send_ticks(self, count: int) -> None:
        assert self.nc is not None
        publish = self.nc.publish
        subjects, tails, seqs, pack, run = self.subjects, self.tails, self.seqs, WIRE.pack, self.run
        n = len(subjects)
        k = self.sent
        for _ in range(count):
            i = k % n
            k += 1
            seq = seqs[i] + 1
            seqs[i] = seq
            await publish(subjects[i], pack(run, seq, 0) + b'{"bts":%d,%b' % (time.time_ns() // 1000, tails[i]))
        self.sent = k

    async def run_for(self, max_seconds: float) -> None:
        from openalgo_proxy.bus_nats import ensure_bucket

        self.nc = await nats.connect(self.url, pending_size=64 * 1024 * 1024)
        await ensure_bucket(self.nc.jetstream(timeout=2), self.names.leader_bucket, 1, 10.0)
        await self.hold_lease()
        await self.nc.subscribe(self.names.hello, cb=self.announce)
        await self.announce()
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        commands = loop.create_task(self._commands(reader))
        started = time.monotonic()
        deadline = started + max_seconds
        next_status = started
        origin = started
        emit("ready", pid=os.getpid(), symbols=len(self.subjects), rate=self.rate)
        while not self.stopping and time.monotonic() < deadline:
            now = time.monotonic()
            if self.holding:
                origin = now
            elif self.rate > 0:
                due = int(self.rate * (now - origin)) - self.sent
                burst = int(self.rate * MAX_BURST_SECONDS) + 1
                if due > burst:
                    self.stalls += 1
                    origin += (due - burst) / self.rate
                    due = burst
                if due > 0:
                    await self.send_ticks(due)
            if now >= next_status:
                await self.status()
                await self.hold_lease()
                next_status = now + STATUS_INTERVAL
            self.check_window(time.time())
            await asyncio.sleep(0.001)
        commands.cancel()
        emit("stopped", sent=self.sent, dropped=0, stalls=self.stalls, seconds=time.monotonic() - started)
        await self.nc.close()

    async def _commands(self, reader: asyncio.StreamReader) -> None:
        while True:
            line = await reader.readline()
            if not line:
                self.stopping = True
                return
            self.command(line.decode())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.synthetic_nats", description=__doc__)
    parser.add_argument("--nats", required=True, help="NATS server URL, e.g. nats://127.0.0.1:4222")
    parser.add_argument("--symbols", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=32000.0, help="ticks per second in total")
    parser.add_argument("--mode", type=int, default=2, choices=(1, 2, 3))
    parser.add_argument("--max-seconds", type=float, default=600.0)
    parser.add_argument("--hold", action="store_true", help="publish no ticks before `go` on stdin")
    args = parser.parse_args(argv)
    feed = NatsSyntheticFeed(args.nats, args.symbols, args.rate, args.mode)
    feed.holding = args.hold

    async def run() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: setattr(feed, "stopping", True))
        await feed.run_for(args.max_seconds)

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
