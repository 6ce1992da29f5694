"""Deeper books (20 and 200 levels) from Dhan's depth feeds, through the adapter and the feed's bus.

On the bus a deeper book has its own topic (`EXCHANGE|SYMBOL|D020`, `...|D200`) beside the
five-level Depth topic (`EXCHANGE|SYMBOL|3`); a depth the broker cannot give is refused on
`#reject|TOPIC` with INVALID_DEPTH. Values are checked against the depth bytes the simulator sent.
"""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import AsyncIterator
from typing import Any

import pytest
import zmq
import zmq.asyncio

from openalgo_proxy import topics
from openalgo_proxy.brokers.dhan.adapter import DhanAdapter
from openalgo_proxy.brokers.dhan.credentials import DhanCredentials
from openalgo_proxy.brokers.dhan.simulator import DhanSimulator
from openalgo_proxy.errors import ErrorCode
from openalgo_proxy.feed import Feed
from openalgo_proxy.model import Mode
from tests.integration.dhan.conftest import sim_options, until
from tests.support import free_port

pytestmark = pytest.mark.timeout(60)


def depth_sides(frame: bytes) -> dict[bool, list[tuple[float, int, int]]]:
    """{is_bid: rows} from a depth frame's raw bytes (12-byte header, 16-byte rows)."""
    out: dict[bool, list[tuple[float, int, int]]] = {}
    at = 0
    while at < len(frame):
        length, code = struct.unpack_from("<hB", frame, at)
        rows = (length - 12) // 16
        out[code == 41] = [struct.unpack_from("<dII", frame, at + 12 + 16 * i) for i in range(rows)]
        at += length
    return out


async def test_adapter_streams_20_and_200_level_books(harness: Any) -> None:
    h = await harness({"ticks_per_second": 10})
    rel, sbin, tcs = (h.instrument("NSE", s) for s in ("RELIANCE", "SBIN", "TCS"))
    async with asyncio.timeout(15):
        await h.adapter.set_wanted({rel: Mode.DEPTH, sbin: Mode.DEPTH, tcs: Mode.DEPTH})
        await h.adapter.set_wanted_depth({rel: 20, sbin: 200, tcs: 200})
        await until(lambda: {t.symbol for t in h.ticks if t.depth == 20} == {"RELIANCE"}, what="20-level ticks")
        await until(lambda: {t.symbol for t in h.ticks if t.depth == 200} == {"SBIN", "TCS"}, what="200-level")
    assert h.sim.subscribed("depth20") == {(1, 2885, 23)}
    assert h.sim.subscribed("depth200") == {(1, 3045, 23), (1, 11536, 23)}
    assert len(h.sim.connections("depth200")) == 2  # one instrument per 200-depth connection
    deep = [t for t in h.ticks if t.symbol == "RELIANCE" and t.depth == 20][-1]
    sent = depth_sides(h.sim.last_sent[(1, 2885, 20)])
    assert [(lv.price, lv.quantity, lv.orders) for lv in deep.bids] == sent[True]
    assert [(lv.price, lv.quantity, lv.orders) for lv in deep.asks] == sent[False]
    assert len(deep.bids) == len(deep.asks) == 20 and deep.bids[0].price < deep.asks[0].price
    standard = [t for t in h.ticks if t.symbol == "RELIANCE" and t.depth == 5]
    assert standard and deep.ltp > 0  # the book tick carries the trade fields of the last Full tick
    big = [t for t in h.ticks if t.symbol == "SBIN" and t.depth == 200][-1]
    assert len(big.bids) == 200 and [lv.price for lv in big.bids] == sorted((lv.price for lv in big.bids), reverse=True)
    async with asyncio.timeout(10):
        await h.adapter.set_wanted_depth({})
        await until(lambda: not h.sim.connections("depth20") and not h.sim.connections("depth200"), what="closed")


async def test_depth_caps_and_segments(harness: Any) -> None:
    h = await harness({"ticks_per_second": 0}, options={"max_connections": 1})
    rel, sbin = h.instrument("NSE", "RELIANCE"), h.instrument("NSE", "SBIN")
    nifty = h.instrument("NSE_INDEX", "NIFTY")
    assert h.adapter.depth_levels(rel) == (5, 20, 200) and h.adapter.depth_levels(nifty) == (5,)
    async with asyncio.timeout(10):
        await h.adapter.set_wanted({rel: Mode.DEPTH, sbin: Mode.DEPTH, nifty: Mode.DEPTH})
        await h.adapter.set_wanted_depth({rel: 200, sbin: 200, nifty: 20})
        await until(lambda: len(h.rejections) == 2, what="two rejections")
    got = {(r.instrument.symbol, r.code, r.depth) for r in h.rejections}
    assert got == {("NIFTY", ErrorCode.INVALID_DEPTH, 20), ("SBIN", ErrorCode.LIMIT_EXCEEDED, 200)}


@pytest.fixture
async def dhan_feed() -> AsyncIterator[tuple[Feed, DhanSimulator, zmq.asyncio.Socket]]:
    async with DhanSimulator(ticks_per_second=10, seed=4) as sim:
        adapter = DhanAdapter(sim_options(sim), DhanCredentials(sim.client_id, sim.access_token), backoff_base=0.05)
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        sub_ctx = zmq.asyncio.Context()
        bus = f"tcp://127.0.0.1:{free_port()}"
        feed = Feed(adapter, bus, status_interval=0.5, coalesce_window=0.005, ctx=ctx)
        await feed.start()
        sub = sub_ctx.socket(zmq.SUB)
        sub.connect(bus)
        try:
            yield feed, sim, sub
        finally:
            sub.close(linger=0)
            await feed.stop()
            sub_ctx.term()
            ctx.term()


async def _frames(sub: zmq.asyncio.Socket, want: set[bytes], within: float = 10.0) -> dict[bytes, dict[str, Any]]:
    """The first data of each wanted topic (a `#reject|` frame keyed by its topic)."""
    got: dict[bytes, dict[str, Any]] = {}
    async with asyncio.timeout(within):
        while not want <= got.keys():
            topic, _seq, data, *_ = await sub.recv_multipart()
            if topic in want and topic not in got:
                got[topic] = json.loads(data)
    return got


async def test_a_20_level_book_next_to_the_5_level_one_on_the_same_symbol(
    dhan_feed: tuple[Feed, DhanSimulator, zmq.asyncio.Socket],
) -> None:
    _feed, sim, sub = dhan_feed
    five = topics.bus_topic("NSE", "RELIANCE", Mode.DEPTH)
    twenty = topics.bus_topic("NSE", "RELIANCE", Mode.DEPTH, 20)
    refused = topics.reject_topic(topics.bus_topic("NSE_INDEX", "NIFTY", Mode.DEPTH, 20))
    for topic in (five, twenty, topics.REJECT_PREFIX, topics.bus_topic("NSE_INDEX", "NIFTY", Mode.DEPTH, 20)):
        sub.subscribe(topic)
    got = await _frames(sub, {five, twenty, refused})
    assert len(got[five]["depth"]["buy"]) == 5 and len(got[five]["depth"]["sell"]) == 5
    assert len(got[twenty]["depth"]["buy"]) == 20 and len(got[twenty]["depth"]["sell"]) == 20
    assert got[twenty]["ltp"] > 0 and got[twenty]["symbol"] == "RELIANCE"
    assert got[refused]["code"] == ErrorCode.INVALID_DEPTH.value
    # one market-feed subscription (Full) and one 20-depth subscription upstream
    assert sim.subscribed() == {(1, 2885, 21)} and sim.subscribed("depth20") == {(1, 2885, 23)}
    # later 20-level frames carry exactly the simulator's book
    async with asyncio.timeout(10):
        while True:
            topic, _seq, data, *_ = await sub.recv_multipart()
            if topic != twenty:
                continue
            book = json.loads(data)["depth"]
            sent = depth_sides(sim.last_sent[(1, 2885, 20)])
            if [[lv["price"], lv["quantity"], lv["orders"]] for lv in book["buy"]] == [list(r) for r in sent[True]]:
                assert [[lv["price"], lv["quantity"], lv["orders"]] for lv in book["sell"]] == [
                    list(r) for r in sent[False]
                ]
                break


async def test_a_20_level_topic_is_cut_from_a_200_level_book(
    dhan_feed: tuple[Feed, DhanSimulator, zmq.asyncio.Socket],
) -> None:
    feed, sim, sub = dhan_feed
    future = sorted(feed.adapter.directory()["NFO"])[0]
    twenty = topics.bus_topic("NFO", future, Mode.DEPTH, 20)
    deepest = topics.bus_topic("NFO", future, Mode.DEPTH, 200)
    sub.subscribe(twenty)
    sub.subscribe(deepest)
    got = await _frames(sub, {twenty, deepest})
    assert len(got[twenty]["depth"]["buy"]) == 20 and len(got[deepest]["depth"]["buy"]) == 200
    await until(lambda: not sim.connections("depth20") and len(sim.connections("depth200")) == 1, what="one book")
