"""The bus contract, the same assertions over both engines: ZeroMQ (feed XPUB, proxies SUB) and NATS
(a real nats-server on loopback; the feed runs under its KV lease as in production).

Interest up and down, a snapshot before the next tick, a second proxy without a second broker
subscription, a proxy killed with SIGKILL releases its topics, a feed's reject, readiness from the
status, the directory; exact symbols (``M&M``) through the bus names.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import zmq

from openalgo_proxy.brokers.base import FeedOptions, Rejection, RejectSink, TickSink
from openalgo_proxy.brokers.simulated.adapter import SimulatedAdapter
from openalgo_proxy.config import BusSettings, ProxySettings
from openalgo_proxy.errors import ErrorCode
from openalgo_proxy.feed import Feed
from openalgo_proxy.feed.lease import LeaderFeed
from openalgo_proxy.model import Instrument, Mode
from openalgo_proxy.proxy.server import ProxyServer
from tests.nats_support import nats_cluster
from tests.support import client, free_port, wait_for

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(60)]

REFUSED = "TCS"  # the test adapter's broker refuses this one (LIMIT_EXCEEDED), like a full account


class RefusingAdapter(SimulatedAdapter):
    """The simulated market whose upstream refuses one symbol, as a broker past its caps does."""

    def __init__(self, options: FeedOptions) -> None:
        super().__init__(options)
        self._reject: RejectSink | None = None
        self.set_wanted_calls = 0

    async def start(self, on_tick: TickSink, on_reject: RejectSink) -> None:
        self._reject = on_reject
        await super().start(on_tick, on_reject)

    async def set_wanted(self, wanted: Mapping[Instrument, Mode]) -> None:
        self.set_wanted_calls += 1
        refused = [inst for inst in wanted if inst.symbol == REFUSED]
        await super().set_wanted({inst: mode for inst, mode in wanted.items() if inst.symbol != REFUSED})
        for inst in refused:
            assert self._reject is not None
            self._reject(Rejection(inst, wanted[inst], ErrorCode.LIMIT_EXCEEDED, "account limit reached"))


class Bench:
    """One feed and any number of proxies on one engine."""

    def __init__(self, engine: str, tmp: Path) -> None:
        self.engine = engine
        self.tmp = tmp
        self.proxies: list[ProxyServer] = []
        self.processes: list[subprocess.Popen[bytes]] = []
        self.ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.endpoint = f"tcp://127.0.0.1:{free_port()}"
        self.bus = BusSettings.model_validate({})
        self.leader: LeaderFeed | None = None
        self.plain_feed: Feed | None = None

    def make_feed(self) -> Feed:
        adapter = RefusingAdapter(FeedOptions(ticks_per_second=20.0, seed=7))
        return Feed(adapter, self.endpoint, status_interval=0.3, coalesce_window=0.005, ctx=self.ctx)

    @property
    def feed(self) -> Feed:
        feed = self.leader.feed if self.leader is not None else self.plain_feed
        assert feed is not None
        return feed

    async def start_feed(self, urls: list[str]) -> None:
        if self.engine == "nats":
            self.bus = BusSettings.model_validate({"engine": "nats", "urls": urls, "lease_ttl": 1.0, "proxy_ttl": 1.0})
            self.leader = LeaderFeed(self.make_feed, "simulator", self.bus)
            await self.leader.start()
            await wait_for(lambda: self.leader is not None and self.leader.feed is not None, within=10)
        else:
            self.plain_feed = self.make_feed()
            await self.plain_feed.start()

    async def proxy(self) -> ProxyServer:
        cfg = ProxySettings.model_validate({"port": 0, "bus": [self.endpoint]})
        server = ProxyServer(cfg, ctx=self.ctx, bus=self.bus)
        await server.start()
        self.proxies.append(server)
        await wait_for(lambda: server.ready()[0], within=10)
        return server

    def proxy_process(self, port: int) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "OPENALGO_PROXY_PROXY__PORT": str(port),
            "OPENALGO_PROXY_PROXY__BUS": json.dumps([self.endpoint]),
            "OPENALGO_PROXY_BUS__ENGINE": self.engine,
            "OPENALGO_PROXY_BUS__URLS": json.dumps(self.bus.urls),
            "OPENALGO_PROXY_BUS__PROXY_TTL": str(self.bus.proxy_ttl),
        }
        log = (self.tmp / f"proxy-{port}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "openalgo_proxy", "serve"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        self.processes.append(proc)
        return proc

    async def close(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        for server in self.proxies:
            await server.stop(within=1.0)
        if self.leader is not None:
            await self.leader.stop()
        if self.plain_feed is not None:
            await self.plain_feed.stop()
        self.ctx.term()


@contextlib.asynccontextmanager
async def bench(engine: str, tmp: Path) -> AsyncIterator[Bench]:
    with contextlib.ExitStack() as stack:
        urls: list[str] = []
        if engine == "nats":
            urls = stack.enter_context(nats_cluster(tmp)).urls
        b = Bench(engine, tmp)
        try:
            await b.start_feed(urls)
            yield b
        finally:
            await b.close()


ENGINES = ["zmq", "nats"]


def upstream_has(b: Bench, symbol: str) -> Callable[[], bool]:
    return lambda: any(inst.symbol == symbol for inst in b.feed.upstream)


def subscribe(symbol: str, exchange: str = "NSE", mode: int = 2) -> dict[str, Any]:
    return {"action": "subscribe", "symbols": [{"symbol": symbol, "exchange": exchange}], "mode": mode}


def unsubscribe(symbol: str, exchange: str = "NSE", mode: int = 2) -> dict[str, Any]:
    return {"action": "unsubscribe", "symbols": [{"symbol": symbol, "exchange": exchange}], "mode": mode}


@pytest.mark.parametrize("engine", ENGINES)
async def test_interest_up_snapshot_second_proxy_and_down(engine: str, tmp_path: Path) -> None:
    async with bench(engine, tmp_path) as b:
        first, second = await b.proxy(), await b.proxy()
        async with client(f"ws://127.0.0.1:{first.port}") as c1:
            assert (await c1.reply(subscribe("M&M")))["status"] == "success"
            await wait_for(upstream_has(b, "M&M"), within=3)
            tick = await c1.market_data(within=5, where=lambda m: m["symbol"] == "M&M")
            assert tick["exchange"] == "NSE" and tick["data"]["symbol"] == "M&M"
            calls = b.feed.adapter.set_wanted_calls  # type: ignore[attr-defined]
            async with client(f"ws://127.0.0.1:{second.port}") as c2:
                assert (await c2.reply(subscribe("M&M")))["status"] == "success"
                # the new proxy's first frame is a snapshot of the value the first one has
                snap = await c2.market_data(within=3)
                assert snap.get("snapshot") is True and snap["symbol"] == "M&M"
                nxt = await c2.market_data(within=3)
                assert nxt["seq"] > snap["seq"] and "snapshot" not in nxt
                # no second broker subscription for the second proxy
                assert b.feed.adapter.set_wanted_calls == calls  # type: ignore[attr-defined]
                assert len(b.feed.upstream) == 1
                await c2.reply(unsubscribe("M&M"))
                await c1.reply(unsubscribe("M&M"))
                await wait_for(lambda: not upstream_has(b, "M&M")(), within=3)


@pytest.mark.parametrize("engine", ENGINES)
async def test_killed_proxy_releases_its_topics(engine: str, tmp_path: Path) -> None:
    async with bench(engine, tmp_path) as b:
        port = free_port()
        proc = b.proxy_process(port)
        url = f"ws://127.0.0.1:{port}"

        async def connected() -> None:
            while True:
                with contextlib.suppress(OSError):
                    async with client(url) as probe:
                        await probe.reply({"action": "ping"})
                        return
                await asyncio.sleep(0.1)

        await asyncio.wait_for(connected(), 20)
        async with client(url) as c:
            await wait_for_reply_success(c, subscribe("INFY"))
            await wait_for(upstream_has(b, "INFY"), within=5)
            await c.market_data(within=5)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        await wait_for(lambda: not upstream_has(b, "INFY")(), within=5)


async def wait_for_reply_success(c: Any, request: dict[str, Any], within: float = 10.0) -> None:
    """Subscribe once the proxy knows the feed's directory (its first status may still be on the way)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        reply = await c.reply(request)
        if reply["status"] == "success" or loop.time() > deadline:
            assert reply["status"] == "success", reply
            return
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("engine", ENGINES)
async def test_reject_status_and_directory(engine: str, tmp_path: Path) -> None:
    async with bench(engine, tmp_path) as b:
        server = await b.proxy()
        ok, detail = server.ready()
        assert ok and detail["feeds"]["simulator"]["state"] == "connected"
        assert "M&M" in server.hub.directory.symbols["NSE"]
        async with client(f"ws://127.0.0.1:{server.port}") as c:
            assert (await c.reply(subscribe(REFUSED)))["status"] == "success"
            error = await c.next_reply(within=5)
            assert error["code"] == "LIMIT_EXCEEDED" and error["symbol"] == REFUSED
            assert not server.hub.topics
