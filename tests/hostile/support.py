"""What the hostile suite shares: the codes and bounds it holds the proxy to (also in README.md),
the attacker process, a bystander measuring app-level ping round trips, raw HTTP exchanges, RSS."""

from __future__ import annotations

import asyncio
import json
import socket
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from tests.hostile.attacker import read_head, upgrade_request
from tests.support import Client

ATTACKER = Path(__file__).with_name("attacker.py")

# -- the documented codes (tests/hostile/README.md) ---------------------------------------------
CLOSE_INVALID_UTF8 = 1007
CLOSE_OVER_BUDGET = 4029
CLOSE_MESSAGE_TOO_BIG = 1009
HTTP_HEAD_TOO_LARGE = (400, 431)
HTTP_BAD_REQUEST = 400
HTTP_FORBIDDEN = 403  # Host not a listen name, Origin not allowed
HTTP_METHOD_NOT_ALLOWED = 405
HTTP_NO_UPGRADE_HERE = (400, 404)

# -- the bounds ----------------------------------------------------------------------------------
CLOSE_WITHIN = 1.0  # seconds from crossing the budget to the close
MEDIAN_RATIO = 5.0  # bystander median round trip during an attack / without
MEDIAN_FLOOR = 0.010  # ... or this many seconds above the baseline median, whichever is larger
P99_BOUND = 0.100  # bystander p99 round trip during an attack (or 5x the baseline p99 if larger)
RSS_GROWTH = 48 * 1024 * 1024  # proxy RSS after an attack, above the baseline before it
SIGTERM_WITHIN = 10.0  # `openalgo-proxy run` exits this long after SIGTERM, flood or not

# The limits the flood tests run with (small, so budgets are crossed in a fraction of a second).
LIMITS = {"commands_per_second": 50.0, "command_burst": 50, "max_protocol_errors": 10}
FRAME_ALLOWANCE = LIMITS["command_burst"] + LIMITS["max_protocol_errors"]


def rss() -> int:
    return int(psutil.Process().memory_info().rss)


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class RoundTrips:
    samples: list[float]
    timeouts: int

    @property
    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else float("inf")

    @property
    def p99(self) -> float:
        return percentile(self.samples, 0.99) if self.samples else float("inf")

    def describe(self) -> str:
        return f"median {self.median * 1000:.1f} ms, p99 {self.p99 * 1000:.1f} ms, {self.timeouts} timeouts"


async def round_trips(c: Client, *, count: int | None = None, until: asyncio.Future[Any] | None = None) -> RoundTrips:
    """App-level pings every 25 ms: `count` of them, or until `until` is done (at most 400)."""
    samples: list[float] = []
    timeouts = 0
    for i in range(count or 400):
        if until is not None and until.done():
            break
        started = time.perf_counter()
        try:
            pong = await c.reply({"action": "ping", "_pingId": i}, within=2.0)
        except TimeoutError:
            timeouts += 1
            samples.append(2.0)
            continue
        assert pong["type"] == "pong" and pong["_pingId"] == i, pong
        samples.append(time.perf_counter() - started)
        await asyncio.sleep(0.025)
    return RoundTrips(samples, timeouts)


def judge_bystander(baseline: RoundTrips, during: RoundTrips) -> None:
    assert len(during.samples) >= 10, f"too few samples during the attack: {during.describe()}"
    assert during.timeouts == 0, f"bystander pings timed out: {during.describe()} (baseline {baseline.describe()})"
    median_bound = max(MEDIAN_RATIO * baseline.median, baseline.median + MEDIAN_FLOOR)
    assert during.median <= median_bound, f"bystander {during.describe()} vs baseline {baseline.describe()}"
    p99_bound = max(P99_BOUND, MEDIAN_RATIO * baseline.p99)
    assert during.p99 <= p99_bound, f"bystander {during.describe()} vs baseline {baseline.describe()}"


@dataclass
class AttackReport:
    connections: list[dict[str, Any]]
    stderr: str

    @property
    def upgraded(self) -> list[dict[str, Any]]:
        return [c for c in self.connections if c.get("status") == 101]

    def summary(self) -> str:
        codes: dict[str, int] = {}
        for c in self.connections:
            key = str(c.get("code", c.get("status")))
            codes[key] = codes.get(key, 0) + 1
        lags = [c["lag"] for c in self.upgraded if c.get("lag") is not None]
        worst = f"{max(lags):.3f} s" if lags else "-"
        return f"{len(self.connections)} connections, codes {codes}, worst close lag {worst}"


class Attacker:
    """tests/hostile/attacker.py as a subprocess; `started` once it has begun, `report()` at its end."""

    def __init__(self, scenario: str, port: int, seconds: float, *args: str) -> None:
        self.argv = [str(ATTACKER), scenario, "127.0.0.1", str(port), str(seconds), *args]
        self.seconds = seconds
        self.proc: asyncio.subprocess.Process | None = None
        self.done: asyncio.Future[AttackReport] | None = None

    async def __aenter__(self) -> Attacker:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, *self.argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 15)
        assert line == b"attacking\n", line
        self.done = asyncio.ensure_future(self._finish())
        return self

    async def _finish(self) -> AttackReport:
        assert self.proc is not None
        out, err = await asyncio.wait_for(self.proc.communicate(), self.seconds + 20)
        lines = out.decode().strip().splitlines()
        assert self.proc.returncode == 0 and lines, f"attacker failed: {err.decode()[-2000:]}"
        return AttackReport(json.loads(lines[-1])["connections"], err.decode())

    async def report(self) -> AttackReport:
        assert self.done is not None
        return await self.done

    async def __aexit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        if self.done is not None:
            if not self.done.done():
                self.done.cancel()
            # a report cut short by the kill is not a failure of the test that stopped it
            await asyncio.gather(self.done, return_exceptions=True)


def judge_closes(report: AttackReport, expected: tuple[int, ...]) -> None:
    """Every connection that crossed its budget was closed with an expected code within CLOSE_WITHIN."""
    crossed = [c for c in report.upgraded if c.get("crossed")]
    assert crossed, f"the attacker never crossed its budget: {report.summary()}"
    for c in crossed:
        assert c.get("lag") is not None, f"a connection over its budget was never closed: {report.summary()}"
        assert c["lag"] <= CLOSE_WITHIN, f"closed {c['lag']:.2f} s after crossing its budget: {report.summary()}"
        assert c["code"] in expected, f"closed with {c['code']}, expected {expected}: {report.summary()}"


# -- raw HTTP ------------------------------------------------------------------------------------


@dataclass
class HttpAnswer:
    status: int  # 0: the connection ended (or was reset) before a response head
    head: bytes
    body: bytes  # everything after the head until the server closed or the deadline


def _exchange(port: int, data: bytes, within: float, source: str | None) -> HttpAnswer:
    with socket.socket() as sock:
        if source:
            sock.bind((source, 0))
        sock.settimeout(within)
        sock.connect(("127.0.0.1", port))
        try:
            sock.sendall(data)
        except OSError:
            pass  # the server may cut an oversized request while it is still being sent; read what came
        received = b""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except (TimeoutError, OSError):
                break
            if not chunk:
                break
            received += chunk
            if b"HTTP/1.1 101" in received[:12]:
                break  # an upgrade: the connection would stay open
    head, sep, body = received.partition(b"\r\n\r\n")
    try:
        status = int(head.split(b" ", 2)[1]) if sep else 0
    except (IndexError, ValueError):
        status = 0
    return HttpAnswer(status, head, body)


async def http_exchange(port: int, data: bytes, within: float = 3.0, source: str | None = None) -> HttpAnswer:
    """Send raw bytes, read until the server closes (or `within`); in a thread, off the proxy's loop."""
    return await asyncio.to_thread(_exchange, port, data, within, source)


def request(method: str, path: str, port: int, headers: list[tuple[str, str]] | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", *(f"{n}: {v}" for n, v in headers or [])]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def upgrade(port: int, path: str = "/", host: str | None = None, extra: list[tuple[str, str]] | None = None) -> bytes:
    data = upgrade_request("127.0.0.1", port, path, extra)
    if host is not None:
        data = data.replace(f"Host: 127.0.0.1:{port}".encode(), f"Host: {host}".encode())
    return data


def _upgraded_socket(port: int, within: float) -> tuple[socket.socket, bytes]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=within)
    sock.sendall(upgrade_request("127.0.0.1", port))
    status, rest = read_head(sock, within)
    assert status == 101, status
    return sock, rest


def _send_and_read_close(
    port: int, frames: bytes, within: float, until: bytes | None
) -> tuple[int | None, list[bytes]]:
    """Upgrade, send raw frames; (close code, 1006 if cut, None if still open; text replies).
    Returns early once a text reply contains `until`."""
    sock, rest = _upgraded_socket(port, within)
    with sock:
        sock.sendall(frames)
        data = bytearray(rest)
        texts: list[bytes] = []
        deadline = time.monotonic() + within
        sock.settimeout(0.2)
        while time.monotonic() < deadline:
            while len(data) >= 2:
                opcode, length, at = data[0] & 0x0F, data[1] & 0x7F, 2
                if length == 126:
                    length, at = int.from_bytes(data[2:4], "big"), 4
                elif length == 127:
                    length, at = int.from_bytes(data[2:10], "big"), 10
                if len(data) < at + length:
                    break
                payload = bytes(data[at : at + length])
                del data[: at + length]
                if opcode == 0x8:
                    return (int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005), texts
                if opcode == 0x1:
                    texts.append(payload)
                    if until is not None and until in payload:
                        return None, texts
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return 1006, texts
            if not chunk:
                return 1006, texts
            data += chunk
        return None, texts


async def frames_exchange(
    port: int, frames: bytes, within: float = 2.0, until: bytes | None = None
) -> tuple[int | None, list[bytes]]:
    return await asyncio.to_thread(_send_and_read_close, port, frames, within, until)
