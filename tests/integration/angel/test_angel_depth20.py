"""Angel's 20-level book (SnapQuote mode 4, NSE cash, 50 tokens) as a deeper book: adapter and proxy."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

from openalgo_proxy.brokers.angel.adapter import AngelAdapter
from openalgo_proxy.brokers.angel.simulator import AngelSimulator
from openalgo_proxy.errors import ErrorCode
from openalgo_proxy.model import Mode
from tests.broker_support import until
from tests.support import client, running_system


def depth20_levels(data: bytes) -> tuple[list[tuple[float, int, int]], list[tuple[float, int, int]]]:
    """(buy, sell) of a 443-byte mode-4 packet from its raw bytes: 20 x (i32 qty, i32 price, i16 orders) each."""
    rows = [struct.unpack_from("<iih", data, 43 + 10 * i) for i in range(40)]
    levels = [(price / 100.0, qty, orders) for qty, price, orders in rows]
    return levels[:20], levels[20:]


async def test_adapter_streams_20_level_books_of_nse_cash(harness: Any) -> None:
    h = await harness({"ticks_per_second": 10})
    rel, nifty = h.instrument("NSE", "RELIANCE"), h.instrument("NSE_INDEX", "NIFTY")
    assert h.adapter.depth_levels(rel) == (5, 20) and h.adapter.depth_levels(nifty) == (5,)
    async with asyncio.timeout(15):
        await h.adapter.set_wanted({rel: Mode.DEPTH, nifty: Mode.DEPTH})
        await h.adapter.set_wanted_depth({rel: 20, nifty: 20})
        await until(lambda: any(t.depth == 20 for t in h.ticks), what="a 20-level tick")
        await until(lambda: len(h.rejections) == 1, what="NIFTY refused")
    assert (h.rejections[0].instrument.symbol, h.rejections[0].code, h.rejections[0].depth) == (
        "NIFTY",
        ErrorCode.INVALID_DEPTH,
        20,
    )
    assert (1, "2885", 4) in h.sim.subscribed() and (1, "2885", 3) in h.sim.subscribed()
    deep = [t for t in h.ticks if t.depth == 20][-1]
    buy, sell = depth20_levels(h.sim.last_sent[(1, "2885", 4)])
    assert [(lv.price, lv.quantity, lv.orders) for lv in deep.bids] == buy
    assert [(lv.price, lv.quantity, lv.orders) for lv in deep.asks] == sell
    assert deep.bids[19].price > 0 and deep.bids[0].price < deep.asks[0].price
    assert h.adapter.status().connections == 1  # the standard pool; the depth connection is its own
    async with asyncio.timeout(10):
        await h.adapter.set_wanted_depth({})
        await until(lambda: all(4 not in modes for c in h.sim.clients.values() for modes in c.subs.values()))


async def test_angel_20_level_book_through_the_proxy() -> None:
    async with AngelSimulator(ticks_per_second=5, seed=3) as sim:
        adapter = AngelAdapter(sim.feed_options(), sim.credentials(), backoff_base=0.05, backoff_cap=0.2)
        async with asyncio.timeout(30), running_system(adapter=adapter) as system, client(system.url) as c:
            reply = await c.reply(
                {"action": "subscribe", "symbol": "SBIN", "exchange": "NSE", "mode": "Depth", "depth": 20}
            )
            assert reply["status"] == "success" and reply["subscriptions"][0]["depth"] == 20
            msg = await c.market_data(within=10, where=lambda m: m.get("depth") == 20)
            assert msg["broker"] == "angel" and len(msg["data"]["depth"]["buy"]) == 20
            assert len(msg["data"]["depth"]["sell"]) == 20
