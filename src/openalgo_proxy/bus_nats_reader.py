"""A thin reader of the core NATS protocol for the proxy's data path.

nats-py hands every message through a coroutine and reads 32 KB per event-loop turn; a proxy
carrying a whole market's ticks needs ZeroMQ's drain model instead: an asyncio Protocol whose
`data_received` parses every complete ``MSG`` in the buffer, hands each payload straight to its
subscription's handler, and ends the batch once (the hub then flushes its outboxes). It speaks only
what a subscriber needs: INFO, CONNECT (user/password), SUB, UNSUB, PING/PONG, MSG, -ERR; it
reconnects across the configured servers and re-subscribes. TLS (verified) is started after INFO
as the protocol requires. nats-py keeps everything else (KV, requests, publishing).
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import Callable
from typing import cast
from urllib.parse import urlparse

from openalgo_proxy.config import BusSettings
from openalgo_proxy.tasks import cancel_and_wait

log = logging.getLogger(__name__)

Handler = Callable[[str, bytes], None]
_CRLF = b"\r\n"
FLUSH_WITHIN = 2.0


class _Reader(asyncio.Protocol):
    def __init__(self, owner: CoreReader) -> None:
        self.owner = owner
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.need = -1  # payload bytes (+ CRLF) still expected for the current MSG, -1 = a line
        self.sid = 0
        self.subject = ""
        self.info: asyncio.Future[dict[str, object]] = asyncio.get_running_loop().create_future()
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)
        if not self.info.done():
            self.info.set_exception(ConnectionError(str(exc) if exc else "connection closed"))

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        pos = 0
        handlers = self.owner.handlers
        got = False
        end = len(buf)
        while True:
            if self.need >= 0:
                if end - pos < self.need + 2:
                    break
                handler = handlers.get(self.sid)
                if handler is not None:
                    handler(self.subject, bytes(buf[pos : pos + self.need]))
                    got = True
                pos += self.need + 2
                self.need = -1
                continue
            idx = buf.find(_CRLF, pos)
            if idx < 0:
                break
            line = bytes(buf[pos:idx])
            pos = idx + 2
            if line.startswith(b"MSG "):
                parts = line.split(b" ")
                self.subject = parts[1].decode()
                self.sid = int(parts[2])
                self.need = int(parts[-1])
            elif line == b"PING":
                self.write(b"PONG\r\n")
            elif line == b"PONG":
                self.owner.pong()
            elif line.startswith(b"INFO "):
                if not self.info.done():
                    self.info.set_result(json.loads(line[5:]))
            elif line.startswith(b"-ERR"):
                self.owner.server_error(line[5:].decode(errors="replace").strip("' "))
        del buf[:pos]
        if got:
            self.owner.on_batch_end()

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)


class CoreReader:
    """Subscriptions on one plain NATS connection, frames handed to handlers from `data_received`."""

    def __init__(self, settings: BusSettings, tls: ssl.SSLContext | None, on_batch_end: Callable[[], None]) -> None:
        self.settings = settings
        self.tls = tls
        self.on_batch_end = on_batch_end
        self.handlers: dict[int, Handler] = {}
        self.subjects: dict[int, str] = {}
        self.on_reconnected: Callable[[], None] | None = None
        self.reconnects = 0
        self.url = ""  # the server the data connection is on
        self._sid = 0
        self._proto: _Reader | None = None
        self._pongs: list[asyncio.Future[None]] = []
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._closing = False

    async def start(self) -> None:
        await self._connect_any()
        self._task = asyncio.get_running_loop().create_task(self._keep_connected(), name="bus-reader")

    async def close(self) -> None:
        self._closing = True
        await cancel_and_wait(self._task)
        if self._proto is not None and self._proto.transport is not None:
            self._proto.transport.close()

    def subscribe(self, subject: str, handler: Handler) -> int:
        self._sid += 1
        sid = self._sid
        self.handlers[sid] = handler
        self.subjects[sid] = subject
        if self._proto is not None:
            self._proto.write(b"SUB %s %d\r\n" % (subject.encode(), sid))
        return sid

    def unsubscribe(self, sid: int) -> None:
        self.handlers.pop(sid, None)
        if self.subjects.pop(sid, None) is not None and self._proto is not None:
            self._proto.write(b"UNSUB %d\r\n" % sid)

    async def flush(self) -> None:
        """Return once the server has processed everything written so far (PING/PONG; 2 s bound)."""
        async with asyncio.timeout(FLUSH_WITHIN):
            await self._connected.wait()
            assert self._proto is not None
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._pongs.append(waiter)
            self._proto.write(b"PING\r\n")
            await waiter

    def pong(self) -> None:
        if self._pongs:
            waiter = self._pongs.pop(0)
            if not waiter.done():
                waiter.set_result(None)

    def server_error(self, text: str) -> None:
        log.warning("nats reader: server error: %s", text)

    async def _connect_any(self) -> None:
        errors = []
        for url in self.settings.urls:
            try:
                await self._connect(url)
                return
            except (OSError, ConnectionError, TimeoutError, ValueError) as exc:
                errors.append(f"{url}: {exc or type(exc).__name__}")
        raise ConnectionError("; ".join(errors))

    async def _connect(self, url: str) -> None:
        parsed = urlparse(url)
        host, port = parsed.hostname or "127.0.0.1", parsed.port or 4222
        loop = asyncio.get_running_loop()
        transport, proto = await asyncio.wait_for(loop.create_connection(lambda: _Reader(self), host, port), timeout=2)
        info = await asyncio.wait_for(proto.info, timeout=2)
        if self.tls is not None or info.get("tls_required"):
            ctx = self.tls or ssl.create_default_context()
            upgraded = await loop.start_tls(transport, proto, ctx, server_hostname=host)
            if upgraded is None:
                raise ConnectionError("TLS upgrade failed")
            proto.transport = upgraded
        connect: dict[str, object] = {
            "verbose": False,
            "pedantic": False,
            "name": "proxy data",
            "lang": "python",
            "version": "openalgo-proxy",
            "protocol": 1,
            "headers": False,
        }
        if self.settings.user:
            connect["user"] = self.settings.user
            connect["pass"] = self.settings.password.get_secret_value() if self.settings.password else ""
        proto.write(b"CONNECT " + json.dumps(connect).encode() + b"\r\n")
        for sid, subject in self.subjects.items():
            proto.write(b"SUB %s %d\r\n" % (subject.encode(), sid))
        self._proto = proto
        self.url = url
        self._pongs = []
        self._connected.set()
        await self.flush()

    async def _keep_connected(self) -> None:
        while not self._closing:
            proto = self._proto
            assert proto is not None
            await proto.lost
            self._connected.clear()
            log.warning("nats reader: disconnected; reconnecting")
            while not self._closing:
                try:
                    await self._connect_any()
                    break
                except (OSError, ConnectionError, TimeoutError) as exc:
                    log.debug("nats reader: reconnect failed: %s", exc)
                    await asyncio.sleep(0.1)
            self.reconnects += 1
            log.info("nats reader: reconnected")
            if self.on_reconnected is not None:
                self.on_reconnected()
