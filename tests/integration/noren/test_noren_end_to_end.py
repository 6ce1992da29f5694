"""End to end: Noren simulator -> NorenAdapter -> feed -> ZeroMQ bus -> proxy -> WebSocket client.

Shoonya and Flattrade each alone, then two Noren accounts (Shoonya for NSE, Flattrade for MCX, CDS
and NFO) behind one proxy, routed by exchange.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest
import zmq

from openalgo_proxy.brokers.base import FeedOptions
from openalgo_proxy.brokers.market import future_symbol
from openalgo_proxy.brokers.noren.adapter import NorenAdapter
from openalgo_proxy.brokers.noren.credentials import NorenCredentials
from openalgo_proxy.brokers.noren.simulator import NorenSimulator
from openalgo_proxy.config import AuthSettings, ProxySettings
from openalgo_proxy.feed import Feed
from openalgo_proxy.model import Mode
from openalgo_proxy.payload import KEYS_BY_MODE
from openalgo_proxy.proxy.server import ProxyServer
from tests.support import client, free_port, running_system, wait_for

from .conftest import make_adapter

pytestmark = pytest.mark.timeout(40)

USDINR_FUT = future_symbol("USDINR")
CRUDE_FUT = future_symbol("CRUDEOIL")
NIFTY_FUT = future_symbol("NIFTY")


@pytest.mark.parametrize("broker", ["shoonya", "flattrade"])
async def test_noren_ticks_reach_a_proxy_client_in_the_data_contract(broker: str) -> None:
    async with (
        NorenSimulator(broker=broker, ticks_per_second=20.0, seed=5) as sim,
        running_system(adapter=make_adapter(sim)) as system,
        client(system.url) as c,
    ):
        reply = await c.reply(
            {
                "action": "subscribe",
                "symbols": [
                    {"symbol": "RELIANCE", "exchange": "NSE"},
                    {"symbol": "NIFTY", "exchange": "NSE_INDEX", "mode": 2},
                    {"symbol": USDINR_FUT, "exchange": "CDS", "mode": 1},
                    {"symbol": "SENSEX", "exchange": "BSE_INDEX", "mode": 2},
                ],
                "mode": 3,
            }
        )
        assert reply["status"] == "success", reply
        seen: dict[str, dict[str, object]] = {}
        while len(seen) < 4:
            msg = await c.market_data(within=5)
            if msg.get("snapshot"):
                continue
            seen[msg["symbol"]] = msg
        for symbol, mode in (("RELIANCE", 3), ("NIFTY", 2), (USDINR_FUT, 1), ("SENSEX", 2)):
            msg = seen[symbol]
            assert msg["broker"] == broker and msg["mode"] == mode
            data = msg["data"]
            assert isinstance(data, dict) and tuple(data) == KEYS_BY_MODE[Mode(mode)]
        rel = seen["RELIANCE"]["data"]
        assert isinstance(rel, dict) and len(rel["depth"]["buy"]) == 5 and rel["depth"]["buy"][0]["price"] > 0
        usd = seen[USDINR_FUT]["data"]
        assert isinstance(usd, dict) and 80 < usd["ltp"] < 98 and usd["ltp"] == round(usd["ltp"], 4)
        assert sim.subscribed() == {
            ("NSE", "2885"): "d",
            ("NSE", "26000"): "t",
            ("CDS", "1185"): "t",
            ("BSE", "1"): "t",
        }
        sim.drop_connections()
        await wait_for(lambda: sim.connections_total >= 2 and len(sim.subscribed()) == 4)
        c.market.clear()
        msg = await c.market_data(within=5, where=lambda m: m["symbol"] == "RELIANCE" and not m.get("snapshot"))
        assert msg["broker"] == broker
        found = await c.reply({"action": "search", "query": "usdinr"})
        (usd_found,) = found["results"]
        assert (usd_found["symbol"], usd_found["exchange"], usd_found["instrument_type"]) == (USDINR_FUT, "CDS", "FUT")
        assert (usd_found["tick_size"], usd_found["lot_size"]) == (0.0025, 1000)
        await c.reply({"action": "unsubscribe_all"})
        await wait_for(lambda: sim.subscribed() == {}, within=5)


@contextlib.asynccontextmanager
async def two_noren_feeds() -> AsyncIterator[tuple[str, NorenSimulator, NorenSimulator]]:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    shoonya_sim = NorenSimulator(broker="shoonya", user_id="SH111", ticks_per_second=20.0, seed=1)
    flattrade_sim = NorenSimulator(broker="flattrade", user_id="FT222", ticks_per_second=20.0, seed=2)
    await shoonya_sim.start()
    await flattrade_sim.start()
    bus_a, bus_b = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    feeds = []
    for sim, exchanges, bus in (
        (shoonya_sim, ("NSE", "NSE_INDEX"), bus_a),
        (flattrade_sim, ("MCX", "CDS", "NFO"), bus_b),
    ):
        options = FeedOptions(ws_url=sim.ws_url, instruments=sim.instruments_url, exchanges=exchanges)
        adapter = NorenAdapter(options, sim.member.name, NorenCredentials(sim.user_id, sim.token))
        feeds.append(Feed(adapter, bus, status_interval=0.3, coalesce_window=0.005, ctx=ctx))
    server = ProxyServer(ProxySettings.model_validate({"port": 0, "bus": [bus_a, bus_b]}), AuthSettings(), ctx=ctx)
    for feed in feeds:
        await feed.start()
    await server.start()
    try:
        await wait_for(
            lambda: len(server.feeds()) == 2 and {"NSE", "MCX", "CDS", "NFO"} <= set(server.hub.directory.symbols),
            within=10,
        )
        yield f"ws://127.0.0.1:{server.port}", shoonya_sim, flattrade_sim
    finally:
        await server.stop(within=2.0)
        for feed in reversed(feeds):
            await feed.stop()
        await flattrade_sim.stop()
        await shoonya_sim.stop()
        ctx.term()


async def test_two_noren_accounts_behind_one_proxy_route_by_exchange() -> None:
    async with two_noren_feeds() as (url, shoonya_sim, flattrade_sim), client(url) as c:
        reply = await c.reply(
            {
                "action": "subscribe",
                "symbols": [
                    {"symbol": "RELIANCE", "exchange": "NSE"},
                    {"symbol": CRUDE_FUT, "exchange": "MCX"},
                    {"symbol": NIFTY_FUT, "exchange": "NFO"},
                ],
                "mode": 2,
            }
        )
        assert reply["status"] == "success", reply
        brokers: dict[str, str] = {}
        while len(brokers) < 3:
            msg = await c.market_data(within=5)
            brokers[msg["symbol"]] = msg["broker"]
        assert brokers == {"RELIANCE": "shoonya", CRUDE_FUT: "flattrade", NIFTY_FUT: "flattrade"}
        assert shoonya_sim.subscribed() == {("NSE", "2885"): "t"}
        assert flattrade_sim.subscribed() == {("MCX", "450161"): "t", ("NFO", "52175"): "t"}
        assert shoonya_sim.logins[0]["uid"] == "SH111" and flattrade_sim.logins[0]["uid"] == "FT222"
