"""Ceiling reference server: about the least work a Python fan-out can do per message.

uvloop, raw asyncio.Protocol connections with a minimal handshake; the SUB socket is a plain pyzmq
socket drained without blocking when the loop reports its FD readable; each tick becomes one
prebuilt WebSocket frame (prefix per topic + seq + data bytes, never decoded), appended to each
subscriber's list, and every client that got frames is written once, joined, per drain.
No protocol features: no auth, validation, snapshots, metrics, conflation or backpressure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from typing import Any

import zmq

from bench.common import BROKER, accept_key, emit, raise_fd_limit, server_text_frame, unmask, watch_stdin
from openalgo_proxy import topics
from openalgo_proxy.proxy.hub import frame_header

BATCH = 4096


class Conn(asyncio.Protocol):
    def __init__(self, server: Ceiling) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.open = False
        self.pending: list[bytes] = []
        self.topics: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        for topic in self.topics:
            subs = self.server.subscribers.get(topic)
            if subs is not None and self in subs:
                subs.remove(self)
        self.server.dirty.discard(self)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        transport = self.transport
        assert transport is not None
        if not self.open:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            key = b""
            for line in bytes(self.buf[:end]).split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"sec-websocket-key":
                    key = value.strip()
            del self.buf[: end + 4]
            transport.write(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Accept: %b\r\n\r\n" % accept_key(key)
            )
            self.open = True
        self._frames()

    def _frames(self) -> None:
        buf = self.buf
        while len(buf) >= 6:
            opcode = buf[0] & 0x0F
            length = buf[1] & 0x7F
            head = 2
            if length == 126:
                length, head = int.from_bytes(buf[2:4], "big"), 4
            elif length == 127:
                length, head = int.from_bytes(buf[2:10], "big"), 10
            if len(buf) < head + 4 + length:
                return
            mask = bytes(buf[head : head + 4])
            payload = unmask(bytes(buf[head + 4 : head + 4 + length]), mask)
            del buf[: head + 4 + length]
            if opcode == 0x1:
                self._on_text(payload)
            elif opcode == 0x8 and self.transport is not None:
                self.transport.write(b"\x88\x02" + payload[:2])
                self.transport.close()
                return
            elif opcode == 0x9 and self.transport is not None:
                self.transport.write(bytes((0x8A, len(payload))) + payload)

    def _on_text(self, payload: bytes) -> None:
        request: Any = json.loads(payload)
        results = []
        for entry in request.get("symbols", []):
            topic = topics.bus_topic(entry["exchange"], entry["symbol"], int(entry.get("mode", 3)))
            self.server.subscribe(self, topic)
            self.topics.append(topic)
            results.append({**entry, "status": "success"})
        reply = json.dumps({"type": "subscription", "status": "success", "subscriptions": results}).encode()
        assert self.transport is not None
        self.transport.write(server_text_frame(reply))


class Ceiling:
    def __init__(self, bus: str) -> None:
        self.ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.sub = self.ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.setsockopt(zmq.SNDHWM, 0)
        self.sub.setsockopt(zmq.RCVHWM, 200_000)
        self.sub.connect(bus)
        self.subscribers: dict[bytes, list[Conn]] = {}
        self.prefixes: dict[bytes, bytes] = {}
        self.dirty: set[Conn] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.scheduled = False

    def subscribe(self, conn: Conn, topic: bytes) -> None:
        subs = self.subscribers.get(topic)
        if subs is None:
            subs = self.subscribers[topic] = []
            key = topics.parse_bus_topic(topic)
            head = json.dumps(
                {
                    "type": "market_data",
                    "topic": topics.client_topic(key.symbol, key.exchange),
                    "symbol": key.symbol,
                    "exchange": key.exchange,
                    "mode": int(key.mode),
                    "broker": BROKER,
                },
                separators=(",", ":"),
            ).encode()
            self.prefixes[topic] = head[:-1] + b',"seq":'
            self.sub.setsockopt(zmq.SUBSCRIBE, topic)
            self.kick()
        subs.append(conn)

    def kick(self) -> None:
        if self.loop is not None and not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self.drain)

    def drain(self) -> None:
        self.scheduled = False
        if self.loop is None:
            return  # stopped
        recv = self.sub.recv_multipart
        subscribers, prefixes, dirty = self.subscribers, self.prefixes, self.dirty
        count = 0
        try:
            for count in range(BATCH):  # noqa: B007
                topic, raw_seq, data = recv(zmq.NOBLOCK)
                subs = subscribers.get(topic)
                if not subs:
                    continue
                payload = b'%b%d,"data":%b}' % (prefixes[topic], int.from_bytes(raw_seq, "big"), data)
                frame = frame_header(len(payload)) + payload
                for conn in subs:
                    conn.pending.append(frame)
                dirty.update(subs)
        except zmq.Again:
            count = 0
        for conn in dirty:
            pending = conn.pending
            if conn.transport is not None and not conn.transport.is_closing():
                conn.transport.write(b"".join(pending))
            pending.clear()
        dirty.clear()
        if count == BATCH - 1:
            self.kick()

    def safety_poll(self) -> None:
        if self.loop is not None:
            self.drain()
            self.loop.call_later(0.1, self.safety_poll)


async def run(args: argparse.Namespace) -> int:
    raise_fd_limit()
    loop = asyncio.get_running_loop()
    ceiling = Ceiling(args.bus)
    ceiling.loop = loop
    fd: int = ceiling.sub.getsockopt(zmq.FD)  # type: ignore[assignment]
    loop.add_reader(fd, ceiling.drain)
    loop.call_later(0.1, ceiling.safety_poll)
    server = await loop.create_server(lambda: Conn(ceiling), "127.0.0.1", args.port, backlog=4096)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    watch_stdin(loop, stop)
    emit("ready", port=args.port)
    await stop.wait()
    server.close()
    ceiling.loop = None
    loop.remove_reader(fd)
    ceiling.sub.close(linger=0)
    ceiling.ctx.term()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ceiling_server", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--bus", required=True)
    args = parser.parse_args(argv)
    try:
        import uvloop
    except ImportError:
        return asyncio.run(run(args))
    return uvloop.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
