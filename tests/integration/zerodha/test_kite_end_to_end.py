"""End to end: Kite simulator -> KiteAdapter -> feed -> ZeroMQ bus -> proxy -> WebSocket client.

Also two feeds behind one proxy, routed by exchange: NSE from Angel, MCX/CDS from Zerodha.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest
import zmq

from openalgo_proxy.brokers.angel.adapter import AngelAdapter
from openalgo_proxy.brokers.angel.simulator import AngelSimulator
from openalgo_proxy.brokers.base import FeedOptions
from openalgo_proxy.brokers.market import future_symbol
from openalgo_proxy.brokers.zerodha.adapter import KiteAdapter
from openalgo_proxy.brokers.zerodha.simulator import KiteSimulator
from openalgo_proxy.config import AuthSettings, ProxySettings
from openalgo_proxy.feed import Feed
from openalgo_proxy.model import Mode
from openalgo_proxy.payload import KEYS_BY_MODE
from openalgo_proxy.proxy.server import ProxyServer
from tests.support import client, free_port, running_system
from tests.support import wait_for as wait_until

from .conftest import make_adapter

USDINR_FUT = future_symbol("USDINR")
NIFTY_FUT = future_symbol("NIFTY")
CRUDE_FUT = future_symbol("CRUDEOIL")

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
                    {"symbol": USDINR_FUT, "exchange": "CDS", "mode": 1},
                ],
                "mode": 3,
            }
        )
        assert reply["type"] == "subscription" and reply["status"] == "success", reply
        seen: dict[str, dict[str, object]] = {}
        while len(seen) < 3:
            msg = await c.market_data(within=5)
            seen[msg["symbol"]] = msg
        for symbol, mode in (("RELIANCE", 3), ("NIFTY", 2), (USDINR_FUT, 1)):
            msg = seen[symbol]
            assert msg["broker"] == "zerodha" and msg["mode"] == mode
            data = msg["data"]
            assert isinstance(data, dict) and tuple(data) == KEYS_BY_MODE[Mode(mode)]
            assert all(v is not None for v in data.values())
        rel = seen["RELIANCE"]["data"]
        assert isinstance(rel, dict) and len(rel["depth"]["buy"]) == 5 and rel["depth"]["buy"][0]["price"] > 0
        usd = seen[USDINR_FUT]["data"]
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


@contextlib.asynccontextmanager
async def two_feeds(sim: KiteSimulator) -> AsyncIterator[tuple[str, Feed, Feed, AngelSimulator]]:
    """NSE from an Angel account, MCX and CDS from a Zerodha account, one proxy on both buses."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    angel_sim = AngelSimulator(seed=11)
    await angel_sim.start()
    bus_a = f"tcp://127.0.0.1:{free_port()}"
    bus_b = f"tcp://127.0.0.1:{free_port()}"
    angel = AngelAdapter(angel_sim.feed_options(exchanges=("NSE", "NSE_INDEX")), angel_sim.credentials())
    feed_a = Feed(angel, bus_a, status_interval=0.3, coalesce_window=0.005, ctx=ctx)
    kite = KiteAdapter(
        FeedOptions(ws_url=sim.url, instruments=sim.instruments_url, exchanges=("MCX", "CDS")),
        api_key=sim.api_key,
        access_token="sim_access_token",
    )
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
        yield f"ws://127.0.0.1:{server.port}", feed_a, feed_b, angel_sim
    finally:
        await server.stop(within=2.0)
        await feed_b.stop()
        await feed_a.stop()
        await angel_sim.stop()
        ctx.term()


async def test_two_feeds_behind_one_proxy_route_by_exchange(sim: KiteSimulator) -> None:
    async with two_feeds(sim) as (url, feed_a, feed_b, angel_sim), client(url) as c:
        assert set(feed_a.adapter.exchanges()) == {"NSE", "NSE_INDEX"}
        assert set(feed_b.adapter.exchanges()) == {"MCX", "CDS"}
        reply = await c.reply(
            {
                "action": "subscribe",
                "symbols": [
                    {"symbol": "RELIANCE", "exchange": "NSE"},
                    {"symbol": CRUDE_FUT, "exchange": "MCX"},
                ],
                "mode": 2,
            }
        )
        assert reply["status"] == "success", reply
        brokers: dict[str, str] = {}
        while len(brokers) < 2:
            msg = await c.market_data(within=5)
            brokers[msg["symbol"]] = msg["broker"]
        assert brokers == {"RELIANCE": "angel", CRUDE_FUT: "zerodha"}
        # each account carries only what it serves
        assert {t: m.value for t, m in sim.subscribed().items()} == {CRUDE: "quote"}
        assert {token for _, token, _ in angel_sim.subscribed()} == {"2885"}
        assert [i.symbol for i in feed_a.upstream] == ["RELIANCE"]
        assert [i.symbol for i in feed_b.upstream] == [CRUDE_FUT]
        # an exchange neither feed serves is answered, not forwarded
        nfo = await c.reply({"action": "subscribe", "symbol": NIFTY_FUT, "exchange": "NFO", "mode": 1})
        assert nfo["subscriptions"][0]["code"] == "SYMBOL_NOT_FOUND"
