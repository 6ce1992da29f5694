"""Test helpers: free ports, an in-process system (feed + proxy on real sockets), raw clients."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import websockets
import zmq

from openalgo_proxy.brokers.base import BrokerAdapter, FeedOptions
from openalgo_proxy.brokers.simulated.adapter import SimulatedAdapter
from openalgo_proxy.config import AuthSettings, LimitSettings, ProxySettings, TlsSettings
from openalgo_proxy.feed import Feed
from openalgo_proxy.proxy.server import ProxyServer

#: ports tests hand to servers come from below the kernel's ephemeral range (32768-60999 on Linux), so an
#: outgoing connection of another test cannot take one between free_port() and the server's bind; each
#: pytest-xdist worker draws from its own slice, so two workers never hand out the same port
_PORTS_LOW, _PORTS_HIGH, _SLICES = 12000, 32000, 4


def _port_sequence() -> Iterator[int]:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    index = int(worker[2:]) + 1 if worker.startswith("gw") and worker[2:].isdigit() else 0
    size = (_PORTS_HIGH - _PORTS_LOW) // _SLICES
    low = _PORTS_LOW + (index % _SLICES) * size
    start = os.getpid() % size  # consecutive runs start at different places in the slice
    while True:
        for step in range(size):
            yield low + (start + step) % size


_ports = _port_sequence()


def free_port() -> int:
    """A loopback TCP port nothing listens on and this process has not handed out before (until it wraps)."""
    for port in _ports:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue  # in use (or in TIME_WAIT) elsewhere: skip it
            return port
    raise AssertionError("unreachable: the port sequence never ends")


async def wait_for(condition: Callable[[], bool], within: float = 5.0, step: float = 0.01) -> None:
    """Poll a condition until true; fail the test with a clear message at the deadline."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(step)


@dataclass
class System:
    feed: Feed
    proxy: ProxyServer
    ctx: zmq.Context[zmq.Socket[bytes]]

    @property
    def url(self) -> str:
        scheme = "wss" if self.proxy.tls_context is not None else "ws"
        return f"{scheme}://127.0.0.1:{self.proxy.port}"

    @property
    def adapter(self) -> BrokerAdapter:
        return self.feed.adapter


@contextlib.asynccontextmanager
async def running_system(
    *,
    adapter: BrokerAdapter | None = None,
    proxy: dict[str, Any] | None = None,
    auth: dict[str, Any] | None = None,
    limits: dict[str, Any] | None = None,
    tls: dict[str, Any] | None = None,
    ticks_per_second: float = 20.0,
    with_feed: bool = True,
    archive_dir: str | None = None,
) -> AsyncIterator[System]:
    """Feed (simulated market unless given) and proxy in this event loop, on real sockets."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    bus = f"tcp://127.0.0.1:{free_port()}"
    adapter = adapter or SimulatedAdapter(FeedOptions(ticks_per_second=ticks_per_second, seed=7))
    feed = Feed(adapter, bus, status_interval=0.5, coalesce_window=0.005, ctx=ctx)
    cfg = ProxySettings.model_validate({"port": 0, "bus": [bus], **(proxy or {})})
    server = ProxyServer(
        cfg,
        AuthSettings.model_validate(auth or {}),
        ctx=ctx,
        limits=LimitSettings.model_validate(limits or {}),
        tls=TlsSettings.model_validate(tls or {}),
        archive_dir=archive_dir,
    )
    system = System(feed, server, ctx)
    if with_feed:
        await feed.start()
    await server.start()
    try:
        if with_feed:
            await wait_for(lambda: server.ready()[0], within=20)
        yield system
    finally:
        await server.stop(within=2.0)
        if with_feed:
            await system.feed.stop()
        ctx.term()


class Client:
    """A JSON client over a real WebSocket connection, with helpers to await particular messages."""

    def __init__(self, ws: websockets.ClientConnection) -> None:
        self.ws = ws
        self.market: list[dict[str, Any]] = []

    async def send(self, message: dict[str, Any] | str | bytes) -> None:
        await self.ws.send(message if isinstance(message, (str, bytes)) else json.dumps(message))

    async def recv(self, within: float = 5.0) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.ws.recv(), within)
        msg: dict[str, Any] = json.loads(raw)
        return msg

    async def reply(self, request: dict[str, Any], within: float = 5.0) -> dict[str, Any]:
        """Send a request; return the first non-market-data message (market data is kept aside)."""
        await self.send(request)
        return await self.next_reply(within)

    async def next_reply(self, within: float = 5.0) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while True:
            msg = await self.recv(max(0.01, deadline - time.monotonic()))
            if msg.get("type") == "market_data":
                self.market.append(msg)
                continue
            return msg

    async def market_data(
        self, within: float = 5.0, where: Callable[[dict[str, Any]], bool] | None = None
    ) -> dict[str, Any]:
        for i, msg in enumerate(self.market):
            if where is None or where(msg):
                return self.market.pop(i)
        deadline = time.monotonic() + within
        while True:
            msg = await self.recv(max(0.01, deadline - time.monotonic()))
            if msg.get("type") == "market_data" and (where is None or where(msg)):
                return msg


@contextlib.asynccontextmanager
async def client(url: str, **kwargs: Any) -> AsyncIterator[Client]:
    async with websockets.connect(url, open_timeout=5, close_timeout=2, **kwargs) as ws:
        yield Client(ws)


def start_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """`openalgo-proxy ARGS` as a real process in its own process group."""
    return subprocess.Popen(
        [sys.executable, "-m", "openalgo_proxy", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
        start_new_session=True,
    )


def stop_process(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, within: float = 15.0) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.wait(within)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        return proc.wait(5)


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(0.02)
