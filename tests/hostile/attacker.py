"""A hostile WebSocket client, run as its own process. It speaks raw RFC 6455 over a plain socket
(so it can send what a well-behaved library refuses to), floods one kind of frame as fast as the
socket takes it, notes when it crossed the budget it was given, and when the proxy closed it.
It reconnects whenever it is closed, until its time is up, then prints a JSON report.

Usage: python attacker.py SCENARIO HOST PORT SECONDS [--allowance N] [--refill R] [--bearer KEY]
                          [--source ADDR]

Scenarios (each frame is masked, as a client's must be):
  pong      empty PONG frames
  ping      empty PING frames
  cont      one TEXT frame with FIN=0, then empty CONTINUATION frames, forever
  message   `{"action":"ping"}` text messages
  batch     subscribe messages of 5,000 "NSE:XYZ" entries, 50 KB (forbidden for the key it is given)

The budget: the attacker has crossed it once it has sent more than `allowance + refill x seconds
since the upgrade` frames (messages for `batch`). The report lists, per connection, the close code
and the seconds from crossing to the close (None when the proxy never closed it).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import select
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

MAX_CONNECTIONS = 1000  # bounded: a proxy that cuts at once cannot make this loop forever
CHUNK_FRAMES = 64


def client_frame(opcode: int, payload: bytes = b"", fin: bool = True) -> bytes:
    """One masked client frame (RFC 6455 section 5.2)."""
    head = bytearray([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head.append(0x80 | n)
    elif n < 1 << 16:
        head.append(0x80 | 126)
        head += struct.pack("!H", n)
    else:
        head.append(0x80 | 127)
        head += struct.pack("!Q", n)
    mask = os.urandom(4)
    head += mask
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes(head) + masked


def upgrade_request(host: str, port: int, path: str = "/", extra: list[tuple[str, str]] | None = None) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        *(f"{name}: {value}" for name, value in extra or []),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_head(sock: socket.socket, within: float) -> tuple[int, bytes]:
    """Read an HTTP response head; (status, bytes after the head). Status 0 when cut before one."""
    sock.settimeout(within)
    data = b""
    while b"\r\n\r\n" not in data:
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, OSError):
            return 0, b""
        if not chunk:
            return 0, b""
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    parts = head.split(b" ", 2)
    try:
        return int(parts[1]), rest
    except (IndexError, ValueError):
        return 0, rest


@dataclass
class Outcome:
    code: int | None = None  # close code received; 1006 when cut without a close frame
    closed_at: float | None = None
    replies: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def watch_server(sock: socket.socket, buffered: bytes, outcome: Outcome) -> None:
    """Read server frames until the close frame or the end of the connection."""
    data = bytearray(buffered)
    while True:
        while len(data) >= 2:
            opcode = data[0] & 0x0F
            length = data[1] & 0x7F
            at = 2
            if length == 126:
                if len(data) < 4:
                    break
                length = struct.unpack("!H", data[2:4])[0]
                at = 4
            elif length == 127:
                if len(data) < 10:
                    break
                length = struct.unpack("!Q", data[2:10])[0]
                at = 10
            if len(data) < at + length:
                break
            payload = bytes(data[at : at + length])
            del data[: at + length]
            if opcode == 0x8:
                with outcome.lock:
                    if outcome.code is None:
                        outcome.code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                        outcome.closed_at = time.monotonic()
                return
            if opcode in (0x1, 0x2):
                outcome.replies += 1
        readable, _, _ = select.select([sock], [], [], 0.2)
        if not readable:
            continue
        try:
            chunk = sock.recv(1 << 20)
        except BlockingIOError:
            continue
        except OSError:
            chunk = b""
        if not chunk:
            with outcome.lock:
                if outcome.code is None:
                    outcome.code = 1006
                    outcome.closed_at = time.monotonic()
            return
        data += chunk


def flood_chunk(scenario: str) -> tuple[bytes, bytes, int]:
    """(what to send once after the upgrade, the repeated chunk, frames in the chunk)."""
    if scenario == "pong":
        return b"", client_frame(0xA) * CHUNK_FRAMES, CHUNK_FRAMES
    if scenario == "ping":
        return b"", client_frame(0x9) * CHUNK_FRAMES, CHUNK_FRAMES
    if scenario == "cont":
        return client_frame(0x1, b"{", fin=False), client_frame(0x0, b"", fin=False) * CHUNK_FRAMES, CHUNK_FRAMES
    if scenario == "message":
        return b"", client_frame(0x1, b'{"action":"ping"}') * CHUNK_FRAMES, CHUNK_FRAMES
    if scenario == "batch":
        letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
        symbols = [f"NSE:{letters[i // 676]}{letters[i // 26 % 26]}{letters[i % 26]}" for i in range(5000)]
        body = json.dumps({"action": "subscribe", "symbols": symbols, "mode": 1}).encode()
        return b"", client_frame(0x1, body), 1
    raise SystemExit(f"unknown scenario {scenario!r}")


def attack_once(args: argparse.Namespace, deadline: float) -> dict[str, Any]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if args.source:
        sock.bind((args.source, 0))
    sock.settimeout(5)
    sock.connect((args.host, args.port))
    extra = [("Authorization", f"Bearer {args.bearer}")] if args.bearer else []
    sock.sendall(upgrade_request(args.host, args.port, extra=extra))
    status, rest = read_head(sock, 5)
    if status != 101:
        sock.close()
        return {"status": status}
    opened = time.monotonic()
    outcome = Outcome()
    sock.setblocking(False)  # both threads select() before each call
    reader = threading.Thread(target=watch_server, args=(sock, rest, outcome), daemon=True)
    reader.start()
    first, chunk, per_chunk = flood_chunk(args.scenario)
    pending = memoryview(first + chunk)
    frames = 0
    crossed_at: float | None = None
    while time.monotonic() < deadline and outcome.code is None:
        _, writable, _ = select.select([], [sock], [], 0.05)
        if not writable:
            continue
        try:
            sent = sock.send(pending)
        except BlockingIOError:
            continue
        except OSError:
            break
        pending = pending[sent:]
        if not pending:
            frames += per_chunk
            pending = memoryview(chunk)
            now = time.monotonic()
            if crossed_at is None and frames > args.allowance + args.refill * (now - opened):
                crossed_at = now
    reader.join(2)
    with outcome.lock:
        code, closed_at = outcome.code, outcome.closed_at
    sock.close()
    lag = None if crossed_at is None or closed_at is None else max(0.0, closed_at - crossed_at)
    return {"status": 101, "code": code, "frames": frames, "crossed": crossed_at is not None, "lag": lag}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario")
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("seconds", type=float)
    parser.add_argument("--allowance", type=float, default=0.0)
    parser.add_argument("--refill", type=float, default=0.0)
    parser.add_argument("--bearer")
    parser.add_argument("--source")
    args = parser.parse_args()
    deadline = time.monotonic() + args.seconds
    connections: list[dict[str, Any]] = []
    sys.stdout.write("attacking\n")
    sys.stdout.flush()
    while time.monotonic() < deadline and len(connections) < MAX_CONNECTIONS:
        try:
            connections.append(attack_once(args, deadline))
        except OSError as exc:
            connections.append({"status": 0, "error": type(exc).__name__})
            time.sleep(0.01)
    sys.stdout.write(json.dumps({"connections": connections}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
