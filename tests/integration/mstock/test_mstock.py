"""mStock Type B on the toolkit: the official parser (`mstock-tradingapi-b` 1.0.5, pinned in
requirements/nodeps.txt) reads our simulator's bytes as our codec does; batched frames reach the
adapter; and a client gets mStock ticks end to end through the proxy."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any

import pytest

from openalgo_proxy.brokers.angel import codec as angel
from openalgo_proxy.brokers.base import FeedOptions
from openalgo_proxy.brokers.mstock import codec
from openalgo_proxy.brokers.mstock.simulator import MStockSimulator, adapter_for
from openalgo_proxy.model import Mode, Tick
from openalgo_proxy.payload import iso_millis
from tests.support import client, running_system, wait_for

mticker = pytest.importorskip("tradingapi_b.mticker", reason="mstock-tradingapi-b (requirements/nodeps.txt)")


def sdk() -> Any:
    return mticker.MTicker("sim-mstock-key", "sim-mstock-token", "ws://127.0.0.1:1")


def sdk_time(value: dt.datetime | int) -> str:
    moment = value if isinstance(value, dt.datetime) else dt.datetime.fromtimestamp(value / 1000, dt.UTC)
    return moment.strftime("%Y-%m-%dT%I:%M:%S%p")


@pytest.mark.parametrize("mode", [1, 2, 3])
async def test_official_parser_reads_our_packets_as_we_do(mode: int) -> None:
    async with MStockSimulator(ticks_per_second=0, seed=3) as sim:
        listing = sim.listings[(2, next(k[1] for k in sim.listings if k[0] == 2))]  # a future: it has OI
        key = (2, listing.angel_token)
        tick = sim.market.advance(listing.exchange, listing.symbol)
        raw = sim._encode(key, listing, tick, mode)
    (ours,) = codec.decode_frame(raw)
    mine = angel.to_tick(ours, listing.symbol, listing.exchange)
    (theirs,) = sdk()._parse_binary(raw)
    assert theirs["instrument_token"] == listing.angel_token and theirs["exchange_type"] == 2
    assert theirs["ltp"] / 100 == mine.ltp
    assert theirs["ex_timestamp"] == sdk_time(mine.exchange_time)
    if mode >= 2:
        ohlc = theirs["ohlc"]
        assert (ohlc["open"] / 100, ohlc["high"] / 100, ohlc["low"] / 100, ohlc["close"] / 100) == (
            mine.open,
            mine.high,
            mine.low,
            mine.close,
        )
        assert (theirs["vol_traded_today"], theirs["last_traded_qty"]) == (mine.volume, mine.last_trade_quantity)
    if mode == 3:
        assert theirs["open_interest"] == mine.oi > 0
        assert theirs["last_traded_timestamp"] == sdk_time(mine.ltt)
        assert [(b["price"] / 100, b["quantity"]) for b in theirs["bid"]] == [(b.price, b.quantity) for b in mine.bids]
        assert [(a["price"] / 100, a["quantity"]) for a in theirs["ask"]] == [(a.price, a.quantity) for a in mine.asks]


def test_the_official_subscribe_request_is_what_our_simulator_reads() -> None:
    sent: list[bytes] = []
    ticker = sdk()
    ticker.ws = type("Capture", (), {"sendMessage": lambda self, payload: sent.append(payload)})()
    ticker.subscribe("nsefo", ["52175", "52174"], ticker.MODE_QUOTE)
    request = angel.decode_request(sent[0].decode())
    assert (request.action, request.mode, request.tokens) == (1, 2, {2: ("52175", "52174")})
    assert json.loads(sent[0])["params"]["tokenList"][0]["exchangeType"] == 2


async def test_batched_frames_reach_the_adapter() -> None:
    ticks: list[Tick] = []
    async with MStockSimulator(ticks_per_second=20, seed=4, packets_per_frame=4) as sim:
        adapter = adapter_for(sim, FeedOptions(backoff_base=0.05, backoff_cap=0.2))
        await adapter.start(ticks.append, ticks.append)
        try:
            symbols = ("RELIANCE", "SBIN", "INFY", "TCS", "ITC", "LT")
            wanted = {adapter.lookup("NSE", s): Mode.QUOTE for s in symbols}
            await adapter.set_wanted({i: m for i, m in wanted.items() if i is not None})
            await wait_for(lambda: {t.symbol for t in ticks[-12:]} == set(symbols), within=10)
            assert adapter.status().decode_errors == 0
            assert adapter.lookup("MCX", "CRUDEOIL") is None  # mStock Type B streams NSE and BSE segments
        finally:
            await adapter.stop()


async def test_end_to_end_through_the_proxy() -> None:
    async with MStockSimulator(ticks_per_second=0, seed=6) as sim:  # only the snapshot sent on subscribe
        adapter = adapter_for(sim, FeedOptions(backoff_base=0.05, backoff_cap=0.2))
        async with asyncio.timeout(20), running_system(adapter=adapter) as system, client(system.url) as c:
            reply = await c.reply({"action": "subscribe", "symbol": "SBIN", "exchange": "NSE", "mode": 3})
            assert reply["status"] == "success", reply
            msg = await c.market_data(within=10)
            assert (msg["broker"], msg["symbol"], msg["mode"]) == ("mstock", "SBIN", 3)
            (packet,) = codec.decode_frame(sim.last_sent[(1, "3045", 3)])
            sent = angel.to_tick(packet, "SBIN", "NSE")
            data = msg["data"]
            assert (data["ltp"], data["volume"], data["oi"]) == (sent.ltp, sent.volume, sent.oi)
            assert data["timestamp"] == iso_millis(sent.exchange_time)
            assert [b["price"] for b in data["depth"]["buy"]] == [b.price for b in sent.bids]
            assert [a["quantity"] for a in data["depth"]["sell"]] == [a.quantity for a in sent.asks]
