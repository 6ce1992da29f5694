"""Synthetic feed: publishes ticks at an exact total rate, round-robin over a symbol universe.

Speaks the bus contract of DESIGN section 3 (``[topic, seq, data]`` on an XPUB, the instrument
directory on ``#instruments|bench`` and status on ``#status|bench``, answered on subscription and
repeated every second). Each symbol's data JSON is encoded once; at send time only the leading
``"bts":`` field (send time in microseconds since the epoch) is spliced in, so the proxy passes it
through untouched and the client measures tick-to-client latency against the same clock.

A plain (non-asyncio) loop: sends due ticks from a fixed schedule ``due = rate * elapsed``, then
polls the XPUB (subscriptions) and stdin (runner commands) until the next millisecond.

Stdin commands: ``go`` (start ticking, with ``--hold``), ``window T0 T1`` (wall-clock seconds;
count ticks sent in that window and report ``{"event":"window"}`` after T1), ``stop``.
Stdout: ``ready``, ``window``, ``stopped`` events.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from types import FrameType

import msgspec
import zmq

from bench.common import BROKER, EXCHANGE, emit, symbol_name
from openalgo_proxy import control, topics
from openalgo_proxy.bus import DATA_HWM, SEQ, run_seq_base

STATUS_INTERVAL = 1.0
MAX_BURST_SECONDS = 0.01  # after a stall, catch up at most this much schedule per iteration
_encode = msgspec.json.Encoder().encode


def data_tail(index: int, mode: int) -> bytes:
    """The data object of `mode` (DESIGN section 5) without its opening brace, bts excluded."""
    name = symbol_name(index)
    price = 100.0 + index % 1000 + 0.05
    body: dict[str, object] = {
        "symbol": name,
        "exchange": EXCHANGE,
        "ltp": price,
        "ltt": 1_760_000_000_000,
        "timestamp": "2025-10-09T09:15:00.000Z",
    }
    if mode >= 2:
        body.update(
            open=price - 1,
            high=price + 2,
            low=price - 2,
            close=price - 0.5,
            change=0.5,
            change_percent=round(50 / price, 4),
            volume=1_234_567,
            avg_trade_price=price - 0.2,
            last_trade_quantity=25,
            total_buy_quantity=98_765,
            total_sell_quantity=87_654,
            oi=0,
        )
    if mode >= 3:
        level = {"price": price, "quantity": 100, "orders": 3}
        body["depth"] = {"buy": [level] * 5, "sell": [level] * 5}
        body.update(upper_circuit=price * 1.2, lower_circuit=price * 0.8)
    return _encode(body)[1:]


class RunnerWindow:
    """A synthetic feed's side of the runner: its commands on stdin (`window T0 T1`, `go`, `stop`) and the
    measurement window they open, reported as one `window` line (ticks sent and dropped inside it)."""

    def __init__(self) -> None:
        self.sent = 0
        self.dropped = 0
        self.stopping = False
        self.holding = False  # with --hold, ticks start on the runner's `go` (after clients subscribed)
        self.window: tuple[float, float] | None = None
        self.window_start_sent: int | None = None
        self.window_start_dropped = 0

    def window_extra(self) -> dict[str, int]:
        """More fields for the `window` line."""
        return {}

    def command(self, line: str) -> None:
        parts = line.split()
        if not parts:
            return
        if parts[0] == "window" and len(parts) == 3:
            self.window = (float(parts[1]), float(parts[2]))
            self.window_start_sent = None
        elif parts[0] == "go":
            self.holding = False
        elif parts[0] == "stop":
            self.stopping = True

    def check_window(self, now_wall: float) -> None:
        if self.window is None:
            return
        t0, t1 = self.window
        if self.window_start_sent is None and now_wall >= t0:
            self.window_start_sent = self.sent
            self.window_start_dropped = self.dropped
            self.window = (now_wall, t1)
        elif self.window_start_sent is not None and now_wall >= t1:
            start = self.window[0]
            emit(
                "window",
                ticks=self.sent - self.window_start_sent,
                dropped=self.dropped - self.window_start_dropped,
                seconds=now_wall - start,
                **self.window_extra(),
            )
            self.window = None
            self.window_start_sent = None


class SyntheticFeed(RunnerWindow):
    def __init__(self, bus: str, symbols: int, rate: float, mode: int) -> None:
        super().__init__()
        self.ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.sock = self.ctx.socket(zmq.XPUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.XPUB_VERBOSE, 1)
        self.sock.setsockopt(zmq.RCVHWM, 0)
        self.sock.setsockopt(zmq.SNDHWM, DATA_HWM)
        self.sock.bind(bus)
        self.rate = rate
        self.topics = [topics.bus_topic(EXCHANGE, symbol_name(i), mode) for i in range(symbols)]
        self.tails = [data_tail(i, mode) for i in range(symbols)]
        self.seqs = [run_seq_base(time.time())] * symbols  # seq rises across feed runs, as the feed's
        self.names = [symbol_name(i) for i in range(symbols)]
        self.stalls = 0
        self.control_seq = 0
        self.subscribed: set[bytes] = set()

    # -- control topics -----------------------------------------------------------------------
    def _control(self, topic: bytes, data: bytes) -> None:
        self.control_seq += 1
        self.sock.send_multipart((topic, SEQ.pack(self.control_seq), data))

    def status(self) -> None:
        status = control.FeedStatus(
            broker=BROKER,
            state=control.FeedState.CONNECTED,
            connections=1,
            subscriptions=len(self.subscribed),
            topics=len(self.subscribed),
            reconnects=0,
            last_tick_age=0.0,
            ticks=self.sent,
            exchanges=[EXCHANGE],
            time=int(time.time() * 1000),
        )
        self._control(topics.status_topic(BROKER), control.encode_status(status))

    def directory(self) -> None:
        directory = control.InstrumentDirectory(broker=BROKER, exchanges=[EXCHANGE], symbols={EXCHANGE: self.names})
        self._control(topics.instruments_topic(BROKER), control.encode_directory(directory))

    def drain_subscriptions(self) -> None:
        for _ in range(100_000):
            try:
                msg = self.sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            if not msg:
                continue
            subscribe, topic = msg[0] == 1, msg[1:]
            if topics.is_control(topic):
                if subscribe:
                    if topics.covers(topic, topics.INSTRUMENTS_PREFIX):
                        self.directory()
                    if topics.covers(topic, topics.STATUS_PREFIX):
                        self.status()
            elif subscribe:
                self.subscribed.add(topic)
            else:
                self.subscribed.discard(topic)

    # -- ticks --------------------------------------------------------------------------------------
    def send_ticks(self, count: int) -> None:
        send = self.sock.send_multipart
        pack = SEQ.pack
        topics_, tails, seqs = self.topics, self.tails, self.seqs
        n = len(topics_)
        k = self.sent
        dropped = 0
        for _ in range(count):
            i = k % n
            k += 1
            seq = seqs[i] + 1
            seqs[i] = seq
            data = b'{"bts":%d,%b' % (time.time_ns() // 1000, tails[i])
            try:
                send((topics_[i], pack(seq), data), zmq.NOBLOCK)
            except zmq.Again:
                dropped += 1
        self.sent = k
        self.dropped += dropped

    def window_extra(self) -> dict[str, int]:
        return {"subscribed": len(self.subscribed)}

    def run(self, max_seconds: float) -> None:
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        stdin_fd = sys.stdin.fileno()
        poller.register(stdin_fd, zmq.POLLIN)
        stdin_buf = b""
        started = time.monotonic()
        deadline = started + max_seconds
        next_status = started
        origin = started  # the schedule: tick k is due at origin + k / rate
        emit("ready", pid=os.getpid(), symbols=len(self.topics), rate=self.rate)
        while not self.stopping:
            now = time.monotonic()
            if now >= deadline:
                break
            if self.holding:
                origin = now
            elif self.rate > 0:
                due = int(self.rate * (now - origin)) - self.sent
                burst = int(self.rate * MAX_BURST_SECONDS) + 1
                if due > burst:  # stalled: skip the missed schedule instead of bursting it all
                    self.stalls += 1
                    origin += (due - burst) / self.rate
                    due = burst
                if due > 0:
                    self.send_ticks(due)
            if now >= next_status:
                self.status()
                next_status = now + STATUS_INTERVAL
            self.check_window(time.time())
            events = dict(poller.poll(timeout=1))
            if self.sock in events:
                self.drain_subscriptions()
            if stdin_fd in events:
                chunk = os.read(stdin_fd, 65536)
                if not chunk:
                    break  # the runner went away
                stdin_buf += chunk
                while b"\n" in stdin_buf:
                    line, stdin_buf = stdin_buf.split(b"\n", 1)
                    self.command(line.decode())
        emit("stopped", sent=self.sent, dropped=self.dropped, stalls=self.stalls, seconds=time.monotonic() - started)
        self.sock.close(linger=0)
        self.ctx.term()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.synthetic", description=__doc__)
    parser.add_argument("--bus", required=True, help="XPUB endpoint to bind, e.g. tcp://127.0.0.1:5599")
    parser.add_argument("--symbols", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=32000.0, help="ticks per second in total")
    parser.add_argument("--mode", type=int, default=2, choices=(1, 2, 3))
    parser.add_argument("--max-seconds", type=float, default=600.0)
    parser.add_argument("--hold", action="store_true", help="publish no ticks before `go` on stdin")
    args = parser.parse_args(argv)
    feed = SyntheticFeed(args.bus, args.symbols, args.rate, args.mode)
    feed.holding = args.hold

    def _stop(signum: int, frame: FrameType | None) -> None:
        feed.stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    feed.run(args.max_seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
