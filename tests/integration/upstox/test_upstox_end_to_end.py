"""End to end: Upstox simulator -> Upstox adapter -> feed -> bus -> proxy -> WebSocket client.

The client subscribes RELIANCE in each mode, RELIANCE with a 30-level book, an NFO, MCX and CDS
future and two indices, and must get exactly the values the simulator put on the wire. Expected
values are read from the simulator's bytes with the official SDK's protobuf module (not our codec).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from openalgo_proxy.brokers.market import future_symbol
from openalgo_proxy.brokers.upstox.adapter import UpstoxAdapter
from openalgo_proxy.brokers.upstox.credentials import UpstoxCredentials
from openalgo_proxy.brokers.upstox.simulator import UpstoxSimulator
from tests.integration.upstox.conftest import sim_options
from tests.support import System, client, running_system

pytest.importorskip("upstox_client")
from google.protobuf import json_format
from upstox_client.feeder.proto import MarketDataFeedV3_pb2 as sdk

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def upstox_system() -> AsyncIterator[tuple[System, UpstoxSimulator]]:
    async with UpstoxSimulator(ticks_per_second=0, seed=21) as sim:  # only the snapshots sent on subscribe
        adapter = UpstoxAdapter(sim_options(sim), UpstoxCredentials(sim.access_token, full_d30=True), backoff_base=0.05)
        async with running_system(adapter=adapter) as system:
            yield system, sim


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


def last_feed(sim: UpstoxSimulator, key: str) -> dict[str, Any]:
    """The SDK's reading of the last feed the simulator sent for `key`."""
    for _, data in reversed(sim.history):
        decoded = json_format.MessageToDict(sdk.FeedResponse.FromString(data))
        if key in decoded.get("feeds", {}):
            feed: dict[str, Any] = decoded["feeds"][key]
            return feed
    raise AssertionError(f"nothing sent for {key}")


def expected_data(feed: dict[str, Any], symbol: str, exchange: str, mode: int, levels: int = 5) -> dict[str, Any]:
    """The client's `data` object of `mode` from the SDK's reading of one (snapshot) feed."""
    if "ltpc" in feed:
        inner: dict[str, Any] = {}
        ltpc = feed["ltpc"]
    else:
        full = feed["fullFeed"]
        inner = full.get("marketFF") or full["indexFF"]
        ltpc = inner["ltpc"]
    ltt = int(ltpc["ltt"])
    out: dict[str, Any] = {"symbol": symbol, "exchange": exchange, "ltp": ltpc["ltp"], "ltt": ltt}
    out["timestamp"] = _iso(ltt)
    if mode == 1:
        return out
    day = next(c for c in inner["marketOHLC"]["ohlc"] if c["interval"] == "1d")
    close = ltpc["cp"]
    change = round(out["ltp"] - close, 6)
    out |= {
        "open": day["open"],
        "high": day["high"],
        "low": day["low"],
        "close": close,
        "change": change,
        "change_percent": round(change * 100.0 / close, 4),
        "volume": int(inner.get("vtt", "0")),
        "avg_trade_price": inner.get("atp", 0.0),
        "last_trade_quantity": int(ltpc.get("ltq", "0")),
        "total_buy_quantity": int(inner.get("tbq", 0.0)),
        "total_sell_quantity": int(inner.get("tsq", 0.0)),
        "oi": int(inner.get("oi", 0.0)),
    }
    if mode == 2:
        return out
    rows = inner.get("marketLevel", {}).get("bidAskQuote", [])[:levels]
    empty = {"price": 0.0, "quantity": 0, "orders": 0}
    buy = [{"price": q.get("bidP", 0.0), "quantity": int(q.get("bidQ", "0")), "orders": 0} for q in rows]
    sell = [{"price": q.get("askP", 0.0), "quantity": int(q.get("askQ", "0")), "orders": 0} for q in rows]
    buy += [empty] * (levels - len(buy))
    sell += [empty] * (levels - len(sell))
    return out | {"depth": {"buy": buy, "sell": sell}, "upper_circuit": 0.0, "lower_circuit": 0.0}


def _where(**fields: object) -> Callable[[dict[str, Any]], bool]:
    return lambda message: all(message.get(k) == v for k, v in fields.items())


async def test_each_mode_and_segment_gets_the_simulators_values(
    upstox_system: tuple[System, UpstoxSimulator],
) -> None:
    system, sim = upstox_system
    rel = "NSE_EQ|INE002A01018"
    async with asyncio.timeout(40), client(system.url) as c:
        for mode in (1, 2, 3):
            reply = await c.reply({"action": "subscribe", "symbol": "RELIANCE", "exchange": "NSE", "mode": mode})
            assert reply["type"] == "subscription" and reply["status"] == "success", reply
            msg = await c.market_data(within=10, where=_where(mode=mode))
            assert (msg["symbol"], msg["exchange"], msg["broker"]) == ("RELIANCE", "NSE", "upstox")
            assert msg["data"] == expected_data(last_feed(sim, rel), "RELIANCE", "NSE", mode), f"mode {mode}"
        assert sim.subscribed() == {rel: "full"}  # one upstream subscription, in the richest mode
        assert [(r.method, r.mode) for r in sim.requests] == [("sub", "ltpc"), ("change_mode", "full")]

        entry = {"symbol": "RELIANCE", "exchange": "NSE", "depth": 30}
        reply = await c.reply({"action": "subscribe", "mode": "Depth", "symbols": [entry]})
        assert reply["subscriptions"][0]["status"] == "success", reply
        deep = await c.market_data(within=10, where=_where(depth=30))
        assert deep["data"] == expected_data(last_feed(sim, rel), "RELIANCE", "NSE", 3, levels=30)
        assert sim.subscribed() == {rel: "full_d30"}

        for symbol, exchange, key, mode in (
            (future_symbol("NIFTY"), "NFO", "NSE_FO|52175", 3),
            (future_symbol("CRUDEOIL"), "MCX", "MCX_FO|450161", 2),
            (future_symbol("USDINR"), "CDS", "NCD_FO|1185", 2),
            ("NIFTY", "NSE_INDEX", "NSE_INDEX|Nifty 50", 2),
            ("SENSEX", "BSE_INDEX", "BSE_INDEX|SENSEX", 1),
        ):
            reply = await c.reply({"action": "subscribe", "symbol": symbol, "exchange": exchange, "mode": mode})
            assert reply["status"] == "success", reply
            msg = await c.market_data(within=10, where=_where(symbol=symbol))
            assert msg["data"] == expected_data(last_feed(sim, key), symbol, exchange, mode), symbol

        reply = await c.reply({"action": "subscribe", "symbol": "NOSUCH", "exchange": "NSE", "mode": 1})
        assert reply["subscriptions"][0]["code"] == "SYMBOL_NOT_FOUND"


async def test_broker_drop_gives_clients_a_fresh_snapshot(upstox_system: tuple[System, UpstoxSimulator]) -> None:
    system, sim = upstox_system
    async with asyncio.timeout(20), client(system.url) as c:
        reply = await c.reply({"action": "subscribe", "symbol": "INFY", "exchange": "NSE", "mode": 2})
        assert reply["status"] == "success"
        first = await c.market_data(within=10)
        key = next(iter(sim.subscribed()))
        assert sim.drop_connections() == 1
        second = await c.market_data(within=10)
        assert second["seq"] > first["seq"]
        assert second["data"] == expected_data(last_feed(sim, key), "INFY", "NSE", 2)
        assert sim.subscribed() == {key: "full"} and sim.redirects == 2
