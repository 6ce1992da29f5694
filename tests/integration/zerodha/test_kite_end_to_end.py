"""End to end: Kite simulator -> KiteAdapter -> feed -> ZeroMQ bus -> proxy -> WebSocket client.

Also two feeds behind one proxy, routed by exchange: NSE from one account, MCX/CDS from Zerodha.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable, Mapping

import pytest
import zmq

from openalgo_proxy.brokers.base import FeedOptions
from openalgo_proxy.brokers.simulated.adapter import SimulatedAdapter
from openalgo_proxy.brokers.zerodha.simulator import KiteSimulator
from openalgo_proxy.config import AuthSettings, ProxySettings
from openalgo_proxy.feed import Feed
from openalgo_proxy.model import Mode
from openalgo_proxy.payload import KEYS_BY_MODE
from openalgo_proxy.proxy.server import ProxyServer
from tests.support import client, free_port, running_system
from tests.support import wait_for as wait_until

from .conftest import make_adapter

pytestmark = pytest.mark.timeout(40)

CRUDE = 450161 * 256 + 7
USDINR = 1185 * 256 + 3


async def test_kite_ticks_reach_a_proxy_client_in_the_data_contract(sim: KiteSimulator) -> None:
    adapter = make_adapter(sim)
    async with running_system(adapter=adapter) as system, client(system.url) as c:
        reply = await c.reply(
            {
                "action": "subscribe",
                "symbols": [
                    {"symbol": "RELIANCE", "exchange": "NSE"},
                    {"symbol": "NIFTY", "exchange": "NSE_INDEX", "mode": 2},
                    {"symbol": "USDINR29DEC25FUT", "exchange": "CDS", "mode": 1},
                ],
                "mode": 3,
            }
        )
        assert reply["type"] == "subscription" and reply["status"] == "success", reply
        seen: dict[str, dict[str, object]] = {}
        while len(seen) < 3:
            msg = await c.market_data(within=5)
            seen[msg["symbol"]] = msg
        for symbol, mode in (("RELIANCE", 3), ("NIFTY", 2), ("USDINR29DEC25FUT", 1)):
            msg = seen[symbol]
            assert msg["broker"] == "zerodha" and msg["mode"] == mode
            data = msg["data"]
            assert isinstance(data, dict) and tuple(data) == KEYS_BY_MODE[Mode(mode)]
            assert all(v is not None for v in data.values())
        rel = seen["RELIANCE"]["data"]
        assert isinstance(rel, dict) and len(rel["depth"]["buy"]) == 5 and rel["depth"]["buy"][0]["price"] > 0
        usd = seen["USDINR29DEC25FUT"]["data"]
        assert isinstance(usd, dict) and 80 < usd["ltp"] < 98
        assert {t: m.value for t, m in sim.subscribed().items()} == {738561: "full", 256265: "quote", USDINR: "ltp"}

        missing = await c.reply({"action": "subscribe", "symbol": "NOPE", "exchange": "NSE", "mode": 1})
        assert missing["subscriptions"][0]["code"] == "SYMBOL_NOT_FOUND"

        # a broker drop is invisible to the client apart from a short gap
        sim.drop_connections()
        await wait_until(lambda: sim.connections_total == 2 and len(sim.subscribed()) == 3)
        c.market.clear()
        msg = await c.market_data(within=5, where=lambda m: m["symbol"] == "RELIANCE")
        assert msg["broker"] == "zerodha"

        await c.reply({"action": "unsubscribe_all"})
        await wait_until(lambda: sim.subscribed() == {}, within=5)  # last client gone: upstream released


class _NseOnly(SimulatedAdapter):
    """The simulated account configured for NSE cash and NSE indices only."""

    def exchanges(self) -> tuple[str, ...]:
        return ("NSE", "NSE_INDEX")

    def directory(self) -> Mapping[str, Iterable[str]]:
        return {e: s for e, s in super().directory().items() if e in self.exchanges()}


@contextlib.asynccontextmanager
async def two_feeds(sim: KiteSimulator) -> AsyncIterator[tuple[str, Feed, Feed]]:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    bus_a = f"tcp://127.0.0.1:{free_port()}"
    bus_b = f"tcp://127.0.0.1:{free_port()}"
    nse_only = _NseOnly(FeedOptions(ticks_per_second=20, seed=1))
    feed_a = Feed(nse_only, bus_a, status_interval=0.3, coalesce_window=0.005, ctx=ctx)
    kite = make_adapter(sim, exchanges=("MCX", "CDS"))
    feed_b = Feed(kite, bus_b, status_interval=0.3, coalesce_window=0.005, ctx=ctx)
    server = ProxyServer(ProxySettings.model_validate({"port": 0, "bus": [bus_a, bus_b]}), AuthSettings(), ctx=ctx)
    await feed_a.start()
    await feed_b.start()
    await server.start()
    try:
        # both feeds announced themselves and their directories (NSE from one, MCX/CDS from the other)
        await wait_until(
            lambda: len(server.feeds()) == 2 and {"NSE", "MCX", "CDS"} <= set(server.hub.directory.symbols),
            within=10,
        )
        yield f"ws://127.0.0.1:{server.port}", feed_a, feed_b
    finally:
        await server.stop(within=2.0)
        await feed_b.stop()
        await feed_a.stop()
        ctx.term()


async def test_two_feeds_behind_one_proxy_route_by_exchange(sim: KiteSimulator) -> None:
    async with two_feeds(sim) as (url, feed_a, feed_b), client(url) as c:
        assert set(feed_b.adapter.exchanges()) == {"MCX", "CDS"}
        reply = await c.reply(
            {
                "action": "subscribe",
                "symbols": [
                    {"symbol": "RELIANCE", "exchange": "NSE"},
                    {"symbol": "CRUDEOIL19DEC25FUT", "exchange": "MCX"},
                ],
                "mode": 2,
            }
        )
        assert reply["status"] == "success", reply
        brokers: dict[str, str] = {}
        while len(brokers) < 2:
            msg = await c.market_data(within=5)
            brokers[msg["symbol"]] = msg["broker"]
        assert brokers == {"RELIANCE": "simulator", "CRUDEOIL19DEC25FUT": "zerodha"}
        # the Kite account carries only what it serves; the NSE feed never asked Kite for RELIANCE
        assert {t: m.value for t, m in sim.subscribed().items()} == {CRUDE: "quote"}
        assert [i.symbol for i in feed_a.upstream] == ["RELIANCE"]
        assert [i.symbol for i in feed_b.upstream] == ["CRUDEOIL19DEC25FUT"]
