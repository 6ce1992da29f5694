"""End to end: Angel simulator -> Angel adapter -> feed -> bus -> proxy -> WebSocket client.

The client subscribes RELIANCE/NSE in each mode (and a currency future and an index) and must get
exactly the values the simulator put on the wire, scaled to rupees. Expected values are read from
the simulator's bytes with struct at the documented offsets, independently of the codec.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from openalgo_proxy.brokers.angel.adapter import AngelAdapter
from openalgo_proxy.brokers.angel.simulator import AngelSimulator
from openalgo_proxy.brokers.market import future_symbol
from tests.support import System, client, running_system, wait_for

USDINR_FUT = future_symbol("USDINR")


@pytest.fixture
async def angel_system() -> AsyncIterator[tuple[System, AngelSimulator]]:
    async with AngelSimulator(ticks_per_second=0, seed=21) as sim:  # one packet per subscribed pair
        adapter = AngelAdapter(sim.feed_options(), sim.credentials(), backoff_base=0.05, backoff_cap=0.2)
        async with running_system(adapter=adapter) as system:
            yield system, sim


def _q(data: bytes, offset: int) -> int:
    value: int = struct.unpack_from("<q", data, offset)[0]
    return value


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


def expected_data(data: bytes, symbol: str, exchange: str) -> dict[str, Any]:
    """The client's `data` object for the packet's mode, from raw bytes (DESIGN section 5)."""
    mode = data[0]
    div = 1e7 if data[1] == 13 else 100.0
    ts = _q(data, 35)
    out: dict[str, Any] = {"symbol": symbol, "exchange": exchange, "ltp": _q(data, 43) / div, "ltt": ts}
    out["timestamp"] = _iso(ts)
    if mode == 1:
        return out
    close = _q(data, 115) / div
    change = round(out["ltp"] - close, 6)
    out |= {
        "open": _q(data, 91) / div,
        "high": _q(data, 99) / div,
        "low": _q(data, 107) / div,
        "close": close,
        "change": change,
        "change_percent": round(change * 100.0 / close, 4),
        "volume": _q(data, 67),
        "avg_trade_price": _q(data, 59) / div,
        "last_trade_quantity": _q(data, 51),
        "total_buy_quantity": int(struct.unpack_from("<d", data, 75)[0]),
        "total_sell_quantity": int(struct.unpack_from("<d", data, 83)[0]),
        "oi": 0,
    }
    if mode == 2:
        return out
    out["ltt"] = _q(data, 123) * 1000  # epoch seconds on the wire
    out["oi"] = _q(data, 131)
    buy: list[dict[str, Any]] = []
    sell: list[dict[str, Any]] = []
    for i in range(10):
        flag, qty, price, orders = struct.unpack_from("<hqqh", data, 147 + 20 * i)
        (buy if flag == 1 else sell).append({"price": price / div, "quantity": qty, "orders": orders})
    out |= {"depth": {"buy": buy, "sell": sell}, "upper_circuit": _q(data, 347) / div}
    out["lower_circuit"] = _q(data, 355) / div
    return out


async def test_reliance_in_each_mode_gets_the_simulators_values(angel_system: tuple[System, AngelSimulator]) -> None:
    system, sim = angel_system
    async with asyncio.timeout(20), client(system.url) as c:
        for mode in (1, 2, 3):
            reply = await c.reply({"action": "subscribe", "symbol": "RELIANCE", "exchange": "NSE", "mode": mode})
            assert reply["type"] == "subscription" and reply["status"] == "success", reply
            msg = await c.market_data(within=10, where=lambda m, mode=mode: m["mode"] == mode)
            assert (msg["symbol"], msg["exchange"], msg["broker"], msg["topic"]) == (
                "RELIANCE",
                "NSE",
                "angel",
                "RELIANCE.NSE",
            )
            sent = sim.last_sent[(1, "2885", mode)]
            assert msg["data"] == expected_data(sent, "RELIANCE", "NSE"), f"mode {mode}"
        assert sim.subscribed() == {(1, "2885", 3)}  # one upstream pair, in the richest mode

        reply = await c.reply({"action": "subscribe", "symbol": USDINR_FUT, "exchange": "CDS", "mode": 2})
        assert reply["status"] == "success"
        msg = await c.market_data(within=10, where=lambda m: m["symbol"] == USDINR_FUT)
        # a derivative's Quote is made from SnapQuote upstream, so it carries the real open interest
        snap = expected_data(sim.last_sent[(13, "1185", 3)], USDINR_FUT, "CDS")
        quote = {k: v for k, v in snap.items() if k not in ("depth", "upper_circuit", "lower_circuit")}
        assert msg["data"] == quote and quote["oi"] > 0
        assert 80 < msg["data"]["ltp"] < 100  # 1e-7 rupee units scaled, not paise

        reply = await c.reply({"action": "subscribe", "symbol": "NIFTY", "exchange": "NSE_INDEX", "mode": 1})
        assert reply["status"] == "success"
        msg = await c.market_data(within=10, where=lambda m: m["symbol"] == "NIFTY")
        assert msg["data"] == expected_data(sim.last_sent[(1, "99926000", 1)], "NIFTY", "NSE_INDEX")

        reply = await c.reply({"action": "subscribe", "symbol": "NOSUCH", "exchange": "NSE", "mode": 1})
        assert reply["subscriptions"][0]["code"] == "SYMBOL_NOT_FOUND"


async def test_past_the_cap_the_requesting_client_gets_limit_exceeded() -> None:
    async with AngelSimulator(ticks_per_second=10, seed=22) as sim:
        adapter = AngelAdapter(
            sim.feed_options(max_connections=1), sim.credentials(), max_pairs_per_connection=1, backoff_base=0.05
        )
        async with asyncio.timeout(20), running_system(adapter=adapter) as system, client(system.url) as c:
            reply = await c.reply({"action": "subscribe", "symbol": "RELIANCE", "exchange": "NSE", "mode": 1})
            assert reply["status"] == "success"
            await c.market_data(within=10, where=lambda m: m["symbol"] == "RELIANCE")
            await c.send({"action": "subscribe", "symbol": "SBIN", "exchange": "NSE", "mode": 2})
            error: dict[str, object] = {}
            while error.get("type") != "error":
                error = await c.next_reply(within=10)
            assert error["code"] == "LIMIT_EXCEEDED" and error.get("symbol") == "SBIN", error
            assert sim.subscribed() == {(1, "2885", 1)}
            # freeing the slot lets a new subscribe through
            reply = await c.reply({"action": "unsubscribe", "symbol": "RELIANCE", "exchange": "NSE"})
            assert reply["type"] == "unsubscription"
            await wait_for(lambda: not sim.subscribed(), within=10)
            reply = await c.reply({"action": "subscribe", "symbol": "SBIN", "exchange": "NSE", "mode": 2})
            assert reply["status"] == "success"
            msg = await c.market_data(within=10, where=lambda m: m["symbol"] == "SBIN")
            assert msg["mode"] == 2 and sim.subscribed() == {(1, "3045", 2)}


async def test_broker_drop_gives_clients_a_fresh_snapshot(angel_system: tuple[System, AngelSimulator]) -> None:
    system, sim = angel_system  # no market ticks: only what the simulator sends on (re)subscribe
    async with asyncio.timeout(20), client(system.url) as c:
        reply = await c.reply({"action": "subscribe", "symbol": "INFY", "exchange": "NSE", "mode": 2})
        assert reply["status"] == "success"
        first = await c.market_data(within=10)
        assert sim.drop_connections() == 1
        second = await c.market_data(within=10)
        assert second["seq"] > first["seq"]
        assert second["data"] == expected_data(sim.last_sent[(1, "1594", 2)], "INFY", "NSE")
        assert sim.subscribed() == {(1, "1594", 2)} and sim.handshake_attempts == 2
