"""End to end: Dhan simulator -> Dhan adapter -> feed -> bus -> proxy -> WebSocket client.

The client subscribes RELIANCE/NSE in each mode, a currency future, an NFO future and an index, and
must get exactly the values the simulator put on the wire. Expected values are read from the
simulator's bytes with struct at the documented offsets (float32 prices rounded to paise, or to
1/10000 rupee for currency), independently of the codec.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from openalgo_proxy.brokers.dhan.adapter import DhanAdapter
from openalgo_proxy.brokers.dhan.credentials import DhanCredentials
from openalgo_proxy.brokers.dhan.simulator import DhanSimulator
from openalgo_proxy.brokers.market import future_symbol
from tests.integration.dhan.conftest import sim_options
from tests.support import System, client, running_system, wait_for

pytestmark = pytest.mark.timeout(60)

USDINR_FUT = future_symbol("USDINR")
NIFTY_FUT = future_symbol("NIFTY")


@pytest.fixture
async def dhan_system() -> AsyncIterator[tuple[System, DhanSimulator]]:
    async with DhanSimulator(ticks_per_second=0, seed=21) as sim:  # only the snapshot sent on subscribe
        adapter = DhanAdapter(
            sim_options(sim), DhanCredentials(sim.client_id, sim.access_token), backoff_base=0.05, backoff_cap=0.2
        )
        async with running_system(adapter=adapter) as system:
            yield system, sim


def _field(name: str, value: object) -> Callable[[dict[str, Any]], bool]:
    return lambda message: bool(message[name] == value)


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


def _packets(frame: bytes) -> dict[int, bytes]:
    """Response code -> the packet's bytes, walking the frame by each header's length field."""
    out: dict[int, bytes] = {}
    at = 0
    while at < len(frame):
        length = struct.unpack_from("<H", frame, at + 1)[0]
        out[frame[at]] = frame[at : at + length]
        at += length
    return out


def expected_data(frame: bytes, symbol: str, exchange: str) -> dict[str, Any]:
    """The client's `data` object from the raw bytes of the frame the simulator sent."""
    packets = _packets(frame)
    code = 8 if 8 in packets else 4 if 4 in packets else 2
    data = packets[code]
    digits = 4 if data[3] in (3, 7) else 2

    def f32(offset: int) -> float:
        value: float = struct.unpack_from("<f", data, offset)[0]
        return round(value, digits)

    def u32(offset: int) -> int:
        value: int = struct.unpack_from("<I", data, offset)[0]
        return value

    ltt = (u32(12) if code == 2 else u32(14)) * 1000
    out: dict[str, Any] = {"symbol": symbol, "exchange": exchange, "ltp": f32(8), "ltt": ltt, "timestamp": _iso(ltt)}
    if code == 2:
        return out
    ohlc_at = 46 if code == 8 else 34  # open, close, high, low
    close = f32(ohlc_at + 4)
    change = round(out["ltp"] - close, 6)
    oi = u32(34) if code == 8 else (u32(8) if 5 not in packets else struct.unpack_from("<I", packets[5], 8)[0])
    out |= {
        "open": f32(ohlc_at),
        "high": f32(ohlc_at + 8),
        "low": f32(ohlc_at + 12),
        "close": close,
        "change": change,
        "change_percent": round(change * 100.0 / close, 4),
        "volume": u32(22),
        "avg_trade_price": f32(18),
        "last_trade_quantity": struct.unpack_from("<H", data, 12)[0],
        "total_buy_quantity": u32(30),  # sell comes first on the wire
        "total_sell_quantity": u32(26),
        "oi": oi if code == 8 or 5 in packets else 0,
    }
    if code == 4:
        return out
    buy, sell = [], []
    for i in range(5):
        bid_qty, ask_qty, bid_orders, ask_orders, bid_price, ask_price = struct.unpack_from(
            "<IIHHff", data, 62 + 20 * i
        )
        buy.append({"price": round(bid_price, digits), "quantity": bid_qty, "orders": bid_orders})
        sell.append({"price": round(ask_price, digits), "quantity": ask_qty, "orders": ask_orders})
    out |= {"depth": {"buy": buy, "sell": sell}, "upper_circuit": 0.0, "lower_circuit": 0.0}
    return out


async def test_each_mode_and_segment_gets_the_simulators_values(dhan_system: tuple[System, DhanSimulator]) -> None:
    system, sim = dhan_system
    async with asyncio.timeout(30), client(system.url) as c:
        for mode in (1, 2, 3):
            reply = await c.reply({"action": "subscribe", "symbol": "RELIANCE", "exchange": "NSE", "mode": mode})
            assert reply["type"] == "subscription" and reply["status"] == "success", reply
            msg = await c.market_data(within=10, where=_field("mode", mode))
            assert (msg["symbol"], msg["exchange"], msg["broker"]) == ("RELIANCE", "NSE", "dhan")
            # the upstream code is the richest wanted; lower modes are derived from its tick
            sent = sim.last_sent[(1, 2885, (15, 17, 21)[mode - 1])]
            assert msg["data"] == expected_data(sent, "RELIANCE", "NSE"), f"mode {mode}"
        assert sim.subscribed() == {(1, 2885, 21)}  # one upstream subscription, in the richest code

        for symbol, exchange, key, mode in (
            (USDINR_FUT, "CDS", (3, 1185, 17), 2),
            (NIFTY_FUT, "NFO", (2, 52175, 17), 2),
            ("NIFTY", "NSE_INDEX", (0, 13, 15), 1),
            ("SENSEX", "BSE_INDEX", (0, 51, 15), 1),
        ):
            reply = await c.reply({"action": "subscribe", "symbol": symbol, "exchange": exchange, "mode": mode})
            assert reply["status"] == "success", reply
            msg = await c.market_data(within=10, where=_field("symbol", symbol))
            assert msg["data"] == expected_data(sim.last_sent[key], symbol, exchange), symbol

        reply = await c.reply({"action": "subscribe", "symbol": "NOSUCH", "exchange": "NSE", "mode": 1})
        assert reply["subscriptions"][0]["code"] == "SYMBOL_NOT_FOUND"


async def test_broker_drop_gives_clients_a_fresh_snapshot(dhan_system: tuple[System, DhanSimulator]) -> None:
    system, sim = dhan_system
    async with asyncio.timeout(20), client(system.url) as c:
        reply = await c.reply({"action": "subscribe", "symbol": "INFY", "exchange": "NSE", "mode": 2})
        assert reply["status"] == "success"
        first = await c.market_data(within=10)
        assert sim.drop_connections() == 1
        second = await c.market_data(within=10)
        assert second["seq"] > first["seq"]
        assert second["data"] == expected_data(sim.last_sent[(1, 1594, 17)], "INFY", "NSE")
        assert sim.subscribed() == {(1, 1594, 17)} and sim.handshake_attempts == 2


def _depth_rows(frame: bytes) -> dict[bool, list[dict[str, Any]]]:
    """{is_bid: levels} from the raw bytes of a 20/200-depth frame (12-byte header, 16-byte rows)."""
    out: dict[bool, list[dict[str, Any]]] = {}
    at = 0
    while at < len(frame):
        length, code = struct.unpack_from("<hB", frame, at)
        rows = [struct.unpack_from("<dII", frame, at + 12 + 16 * i) for i in range((length - 12) // 16)]
        out[code == 41] = [{"price": p, "quantity": q, "orders": o} for p, q, o in rows]
        at += length
    return out


async def test_a_20_level_book_next_to_a_5_level_one_through_the_proxy() -> None:
    async with DhanSimulator(ticks_per_second=5, seed=23) as sim:
        adapter = DhanAdapter(sim_options(sim), DhanCredentials(sim.client_id, sim.access_token), backoff_base=0.05)
        async with asyncio.timeout(30), running_system(adapter=adapter) as system, client(system.url) as c:
            reply = await c.reply(
                {
                    "action": "subscribe",
                    "mode": "Depth",
                    "symbols": [
                        {"symbol": "RELIANCE", "exchange": "NSE"},
                        {"symbol": "RELIANCE", "exchange": "NSE", "depth": 20},
                        {"symbol": "NIFTY", "exchange": "NSE_INDEX", "depth": 20},
                        {"symbol": "SBIN", "exchange": "NSE", "depth": 10},
                    ],
                }
            )
            results = reply["subscriptions"]
            assert [r["status"] for r in results] == ["success", "success", "success", "error"], results
            assert results[1]["depth"] == 20 and "depth" not in results[0]
            assert results[3]["code"] == "INVALID_DEPTH"
            # the feed cannot give NIFTY a 20-level book (an index): that entry is refused afterwards
            refused = await c.next_reply(within=10)
            assert (refused["type"], refused["code"], refused["symbol"], refused["depth"]) == (
                "error",
                "INVALID_DEPTH",
                "NIFTY",
                20,
            )
            five = await c.market_data(within=10, where=lambda m: m["symbol"] == "RELIANCE" and "depth" not in m)
            assert len(five["data"]["depth"]["buy"]) == 5
            assert five["data"] == expected_data(sim.last_sent[(1, 2885, 21)], "RELIANCE", "NSE")
            while True:  # a 20-level frame whose book equals the last depth bytes the simulator sent
                deep = await c.market_data(within=10, where=lambda m: m.get("depth") == 20)
                sent = _depth_rows(sim.last_sent[(1, 2885, 20)])
                if deep["data"]["depth"]["buy"] == sent[True]:
                    break
            assert deep["data"]["depth"]["sell"] == sent[False]
            assert (deep["symbol"], deep["mode"], deep["broker"]) == ("RELIANCE", 3, "dhan")
            assert deep["data"]["ltp"] > 0
            assert sim.subscribed() == {(1, 2885, 21)} and sim.subscribed("depth20") == {(1, 2885, 23)}
            reply = await c.reply({"action": "unsubscribe", "symbol": "RELIANCE", "exchange": "NSE"})
            assert sorted(r.get("depth", 5) for r in reply["subscriptions"]) == [5, 20]
            await wait_for(lambda: not sim.connections("depth20"), within=10)


async def test_a_broker_without_deeper_books_answers_invalid_depth() -> None:
    async with asyncio.timeout(20), running_system() as system, client(system.url) as c:  # the simulated market
        reply = await c.reply({"action": "subscribe", "symbol": "RELIANCE", "exchange": "NSE", "mode": 3, "depth": 20})
        assert reply["status"] == "success"
        refused = await c.next_reply(within=10)
        assert (refused["code"], refused["depth"]) == ("INVALID_DEPTH", 20)
