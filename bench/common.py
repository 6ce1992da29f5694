"""Shared pieces of the benchmark processes: ports, the line protocol with the runner, histograms,
WebSocket framing helpers and the synthetic instrument universe.

Every child process talks to the runner with JSON lines on stdout (``{"event": ...}``) and takes
commands as text lines on stdin, so any of them can also be run and inspected by hand.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import resource
import socket
import struct
import sys
import time
from collections.abc import Iterable
from typing import Any

from openalgo_proxy.proxy.hub import frame_header

EXCHANGE = "NSE"
BROKER = "bench"
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TS_KEY = b'"bts":'  # send timestamp (microseconds since the epoch) embedded first in every data object
BUCKET_US = 10  # latency histogram resolution below FINE_LIMIT_US
FINE_LIMIT_US = 1_000_000
COARSE_US = 10_000  # resolution from 1 s on (a backlogged reference server reaches tens of seconds)
FINE_BUCKETS = FINE_LIMIT_US // BUCKET_US

_H16 = struct.Struct("!BBH")
_H64 = struct.Struct("!BBQ")


def symbol_name(index: int) -> str:
    return f"S{index:05d}"


def client_symbols(client: int, subscriptions: int, symbols: int) -> list[int]:
    """Deterministic, evenly spread: every symbol gets clients*subscriptions/symbols subscribers."""
    start = client * subscriptions
    return [(start + j) % symbols for j in range(min(subscriptions, symbols))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def now_us() -> int:
    return time.time_ns() // 1000


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def emit(event: str, **fields: Any) -> None:
    """One JSON line to the runner."""
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def watch_stdin(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """Set `stop` when stdin closes or says ``stop``: a server never outlives its runner."""
    fd = sys.stdin.fileno()
    os.set_blocking(fd, False)

    def readable() -> None:
        try:
            chunk = os.read(fd, 4096)
        except BlockingIOError:
            return
        if not chunk or b"stop" in chunk:
            loop.remove_reader(fd)
            stop.set()

    loop.add_reader(fd, readable)


# -- WebSocket framing -----------------------------------------------------------------------------
def accept_key(key: bytes) -> bytes:
    return base64.b64encode(hashlib.sha1(key + WS_GUID).digest())


def server_text_frame(payload: bytes) -> bytes:
    return frame_header(len(payload)) + payload


def client_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """A masked client frame (the mask is random, as RFC 6455 requires)."""
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = _H16.pack(0x80 | opcode, 0x80 | 126, n)
    else:
        head = _H64.pack(0x80 | opcode, 0x80 | 127, n)
    return head + mask + unmask(payload, mask)


def unmask(payload: bytes, mask: bytes) -> bytes:
    """XOR with the 4-byte mask (symmetric), via one big-int operation instead of a byte loop."""
    n = len(payload)
    if not n:
        return b""
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(n, "little")


def subscribe_requests(symbols: Iterable[int], mode: int, per_request: int = 500) -> list[bytes]:
    """Subscribe requests of at most `per_request` entries (the proxy caps inbound message size)."""
    entries = [{"symbol": symbol_name(i), "exchange": EXCHANGE, "mode": mode} for i in symbols]
    return [
        json.dumps({"action": "subscribe", "symbols": entries[k : k + per_request]}).encode()
        for k in range(0, len(entries), per_request)
    ]


def _bucket_top(bucket: int) -> int:
    if bucket < FINE_BUCKETS:
        return (bucket + 1) * BUCKET_US
    return FINE_LIMIT_US + (bucket - FINE_BUCKETS + 1) * COARSE_US


# -- latency histogram ------------------------------------------------------------------------------
class Histogram:
    """10 us buckets up to 1 s, 10 ms beyond; merges exactly across processes; max kept exactly."""

    __slots__ = ("buckets", "count", "max_us")

    def __init__(self) -> None:
        self.buckets: dict[int, int] = {}
        self.count = 0
        self.max_us = 0

    def add(self, value_us: int) -> None:
        if value_us < FINE_LIMIT_US:
            bucket = value_us // BUCKET_US if value_us > 0 else 0
        else:
            bucket = FINE_BUCKETS + (value_us - FINE_LIMIT_US) // COARSE_US
        buckets = self.buckets
        buckets[bucket] = buckets.get(bucket, 0) + 1
        self.count += 1
        if value_us > self.max_us:
            self.max_us = value_us

    def merge(self, other: Histogram) -> None:
        for bucket, n in other.buckets.items():
            self.buckets[bucket] = self.buckets.get(bucket, 0) + n
        self.count += other.count
        self.max_us = max(self.max_us, other.max_us)

    def percentile_ms(self, q: float) -> float:
        """Upper edge of the bucket holding the q-quantile, in milliseconds (nan when empty)."""
        if not self.count:
            return float("nan")
        rank = q * self.count
        seen = 0
        for bucket in sorted(self.buckets):
            seen += self.buckets[bucket]
            if seen >= rank:
                return min(_bucket_top(bucket), self.max_us) / 1000
        return self.max_us / 1000

    def to_json(self) -> dict[str, Any]:
        return {"buckets": {str(k): v for k, v in self.buckets.items()}, "count": self.count, "max_us": self.max_us}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Histogram:
        hist = cls()
        hist.buckets = {int(k): int(v) for k, v in raw.get("buckets", {}).items()}
        hist.count = int(raw.get("count", 0))
        hist.max_us = int(raw.get("max_us", 0))
        return hist
