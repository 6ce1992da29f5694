"""Client swarm: many raw WebSocket clients in one asyncio (uvloop) process.

Each client does a minimal RFC 6455 handshake, sends its subscribe requests (masked text frames)
and parses frames until every subscription reply has arrived. Then:

- a *checker* client (every ``stride``-th client) keeps parsing frames and, for each market_data
  message, extracts topic, seq and the feed's send timestamp with bounded ``bytes.find`` calls:
  per-topic seq gaps give loss, receive time minus send time gives latency;
- every other client only counts messages, with ``bytes.count`` of a marker over each received
  chunk (C speed), so that the swarm is not the bottleneck.

Stdin commands: ``window T0 T1`` (count in that wall-clock window, then report ``window``),
``stop``. Stdout events: ``ready`` (after every client subscribed, or failed), ``window``, ``stopped``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys
import time
from typing import Any

from bench.common import (
    TS_KEY,
    Histogram,
    accept_key,
    client_frame,
    client_symbols,
    emit,
    now_us,
    raise_fd_limit,
    subscribe_requests,
)
from openalgo_proxy.tasks import cancel_and_wait

MARK = b'market_data"'
TAIL = len(MARK) - 1
SEQ_KEY = b'"seq":'
TOPIC_KEY = b'"topic":'


class Swarm:
    def __init__(self) -> None:
        self.measuring = False
        self.latency = Histogram()
        self.handshake = Histogram()
        self.gaps = 0
        self.reordered = 0
        self.checked = 0
        self.clients: list[BenchClient] = []
        self.ready_clients = 0
        self.failed = 0
        self.closed = 0
        self.close_codes: dict[int, int] = {}
        self.sub_errors = 0
        self.all_ready = asyncio.Event()
        self.expected = 0

    def client_ready(self) -> None:
        self.ready_clients += 1
        self._check_all()

    def client_failed(self) -> None:
        self.failed += 1
        self._check_all()

    def _check_all(self) -> None:
        if self.ready_clients + self.failed >= self.expected:
            self.all_ready.set()


class BenchClient(asyncio.Protocol):
    def __init__(self, swarm: Swarm, port: int, requests: list[bytes], checker: bool) -> None:
        self.swarm = swarm
        self.port = port
        self.requests = requests
        self.checker = checker
        self.transport: asyncio.Transport | None = None
        self.key = base64.b64encode(os.urandom(16))
        self.started_ns = time.perf_counter_ns()
        self.handshaken = False
        self.fast = False
        self.buf = bytearray()
        self.tail = b""
        self.count = 0
        self.nbytes = 0
        self.replies_due = len(requests)
        self.seqs: dict[bytes, int] = {}
        self.lost = False
        self.ready = False

    # -- asyncio.Protocol --------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(  # type: ignore[attr-defined]
            b"GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: %b\r\nSec-WebSocket-Version: 13\r\n\r\n" % (self.port, self.key)
        )

    def data_received(self, data: bytes) -> None:
        self.nbytes += len(data)
        if self.fast:
            if self.tail:
                self.count += (self.tail + data[:TAIL]).count(MARK)
            self.count += data.count(MARK)
            self.tail = data[-TAIL:]
            return
        self.buf += data
        if not self.handshaken:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end])
            del self.buf[: end + 4]
            if not head.startswith(b"HTTP/1.1 101") or accept_key(self.key) not in head:
                self._fail()
                return
            self.handshaken = True
            self.swarm.handshake.add((time.perf_counter_ns() - self.started_ns) // 1000)
            assert self.transport is not None
            for request in self.requests:
                self.transport.write(client_frame(request))
            if not self.requests:
                self._become_ready()
        self._parse(now_us())

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if not self.ready:
            self._fail()
        else:
            self.swarm.closed += 1

    # -- frames --------------------------------------------------------------------------------------
    def _parse(self, now: int) -> None:
        buf = self.buf
        n = len(buf)
        pos = 0
        while n - pos >= 2:
            b0 = buf[pos]
            length = buf[pos + 1] & 0x7F
            head = 2
            if length == 126:
                if n - pos < 4:
                    break
                length = (buf[pos + 2] << 8) | buf[pos + 3]
                head = 4
            elif length == 127:
                if n - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                head = 10
            end = pos + head + length
            if end > n:
                break
            start = pos + head
            pos = end
            opcode = b0 & 0x0F
            if opcode == 0x1:
                self._on_text(buf, start, end, now)
                if self.fast:  # switched to counting: the rest of this chunk is counted
                    rest = bytes(buf[pos:])
                    self.count += rest.count(MARK)
                    self.tail = rest[-TAIL:]
                    buf.clear()
                    return
            elif opcode == 0x8:
                code = (buf[start] << 8) | buf[start + 1] if length >= 2 else 1005
                self.swarm.close_codes[code] = self.swarm.close_codes.get(code, 0) + 1
                if self.transport is not None:
                    self.transport.write(client_frame(bytes(buf[start : start + 2]), opcode=0x8))
                    self.transport.close()
            elif opcode == 0x9 and self.transport is not None:
                self.transport.write(client_frame(bytes(buf[start:end]), opcode=0xA))
        del buf[:pos]

    def _on_text(self, buf: bytearray, start: int, end: int, now: int) -> None:
        if buf.find(MARK, start, min(end, start + 40)) < 0:
            self._on_reply(bytes(buf[start:end]))
            return
        self.count += 1
        swarm = self.swarm
        if not swarm.measuring:
            return
        i = buf.find(SEQ_KEY, start, end)
        k = buf.find(TOPIC_KEY, start, end)
        if i < 0 or k < 0:
            return
        i += len(SEQ_KEY)
        j = buf.find(b",", i, end)
        seq = int(buf[i:j])
        q1 = buf.find(b'"', k + len(TOPIC_KEY), end) + 1
        topic = bytes(buf[q1 : buf.find(b'"', q1, end)])
        last = self.seqs.get(topic)
        if last is not None:
            if seq > last + 1:
                swarm.gaps += seq - last - 1
            elif seq <= last:
                swarm.reordered += 1
        self.seqs[topic] = seq
        t = buf.find(TS_KEY, j, end)
        if t >= 0:
            t += len(TS_KEY)
            sent = int(buf[t : buf.find(b",", t, end)])
            swarm.latency.add(now - sent)
            swarm.checked += 1

    def _on_reply(self, payload: bytes) -> None:
        try:
            msg: Any = json.loads(payload)
        except ValueError:
            self.swarm.sub_errors += 1
            return
        if not isinstance(msg, dict):
            return
        if msg.get("type") == "subscription":
            for entry in msg.get("subscriptions", []):
                if entry.get("status") != "success":
                    self.swarm.sub_errors += 1
            self.replies_due -= 1
            if self.replies_due == 0:
                self._become_ready()
        elif msg.get("type") == "error":
            self.swarm.sub_errors += 1

    def _become_ready(self) -> None:
        if self.ready:
            return
        self.ready = True
        if not self.checker:
            self.fast = True
        self.swarm.client_ready()

    def _fail(self) -> None:
        if not self.ready and not self.lost:
            self.lost = True
            if self.transport is not None:
                self.transport.abort()
        if not self.ready:
            self.ready = True
            self.swarm.client_failed()


async def connect_all(args: argparse.Namespace, swarm: Swarm) -> None:
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(args.concurrency)
    stride = max(1, args.total_clients // max(1, args.checkers)) if args.checkers else 0

    async def one(index: int) -> None:
        symbols = client_symbols(index, args.subscriptions, args.symbols)
        requests = subscribe_requests(symbols, args.mode) if args.subscriptions else []
        checker = bool(stride) and index % stride == 0
        client = BenchClient(swarm, args.port, requests, checker)
        swarm.clients.append(client)
        async with gate:
            client.started_ns = time.perf_counter_ns()
            try:
                await loop.create_connection(lambda: client, "127.0.0.1", args.port)
            except OSError:
                client.lost = True
                client._fail()
                return
            # hold the slot until the handshake is done, so `concurrency` bounds handshakes in flight
            for _ in range(int(args.setup_timeout * 100)):
                if client.handshaken or client.lost:
                    break
                await asyncio.sleep(0.01)

    swarm.expected = args.clients
    await asyncio.gather(*(one(args.first_client + k) for k in range(args.clients)))


async def run(args: argparse.Namespace) -> int:
    raise_fd_limit()
    loop = asyncio.get_running_loop()
    swarm = Swarm()
    stop = asyncio.Event()
    windows: list[asyncio.Task[None]] = []
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def commands() -> None:
        """Runner commands; EOF (the runner is gone) or `stop` ends the swarm, even mid-setup."""
        while True:
            parts = (await reader.readline()).decode().split()
            if not parts or parts[0] == "stop":
                stop.set()
                return
            if parts[0] == "window" and len(parts) == 3:
                windows.append(asyncio.ensure_future(measure(swarm, float(parts[1]), float(parts[2]))))

    listener = asyncio.ensure_future(commands())
    setup_started = time.monotonic()
    setup = asyncio.ensure_future(_setup(args, swarm))
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait({setup, stopped}, timeout=args.setup_timeout + 5, return_when=asyncio.FIRST_COMPLETED)
    if not stop.is_set():
        if not setup.done():
            emit("error", message="setup timed out", ready=swarm.ready_clients, failed=swarm.failed)
        emit(
            "ready",
            pid=os.getpid(),
            clients=swarm.ready_clients,
            failed=swarm.failed,
            sub_errors=swarm.sub_errors,
            setup_seconds=time.monotonic() - setup_started,
            handshake=swarm.handshake.to_json(),
        )
        await asyncio.wait({stopped}, timeout=args.max_seconds)
    await cancel_and_wait(setup, listener, stopped, *windows)
    for client in swarm.clients:
        if client.transport is not None:
            client.transport.abort()
    emit("stopped")
    return 0


async def _setup(args: argparse.Namespace, swarm: Swarm) -> None:
    await connect_all(args, swarm)
    await swarm.all_ready.wait()


async def measure(swarm: Swarm, t0: float, t1: float) -> None:
    await asyncio.sleep(max(0.0, t0 - time.time()))
    start = time.time()
    counts0 = sum(c.count for c in swarm.clients)
    bytes0 = sum(c.nbytes for c in swarm.clients)
    swarm.latency = Histogram()
    swarm.gaps = swarm.reordered = swarm.checked = 0
    swarm.measuring = True
    closed0 = swarm.closed
    await asyncio.sleep(max(0.0, t1 - time.time()))
    swarm.measuring = False
    seconds = time.time() - start
    emit(
        "window",
        messages=sum(c.count for c in swarm.clients) - counts0,
        bytes=sum(c.nbytes for c in swarm.clients) - bytes0,
        seconds=seconds,
        checked=swarm.checked,
        gaps=swarm.gaps,
        reordered=swarm.reordered,
        closed=swarm.closed - closed0,
        close_codes={str(k): v for k, v in swarm.close_codes.items()},
        checkers=sum(1 for c in swarm.clients if c.checker and not c.lost),
        latency=swarm.latency.to_json(),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.swarm", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--first-client", type=int, default=0)
    parser.add_argument("--clients", type=int, default=10, help="clients in this process")
    parser.add_argument("--total-clients", type=int, default=0, help="clients in all swarm processes")
    parser.add_argument("--subscriptions", type=int, default=10)
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--mode", type=int, default=2)
    parser.add_argument("--checkers", type=int, default=20, help="clients (all processes) checking seq, latency")
    parser.add_argument("--concurrency", type=int, default=100, help="handshakes in flight")
    parser.add_argument("--setup-timeout", type=float, default=120.0)
    parser.add_argument("--max-seconds", type=float, default=600.0)
    args = parser.parse_args(argv)
    args.total_clients = args.total_clients or args.clients
    try:
        import uvloop
    except ImportError:
        return asyncio.run(run(args))
    return uvloop.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
