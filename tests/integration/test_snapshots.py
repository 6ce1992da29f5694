"""Snapshots and seq: replayed values keep their exchange times and say so; seq rises per topic for
the life of a feed run, however often a topic is released and wanted again."""

from __future__ import annotations

import asyncio
import time

import zmq

from openalgo_proxy.brokers.base import FeedOptions
from openalgo_proxy.brokers.market import future_symbol
from openalgo_proxy.brokers.simulated.adapter import SimulatedAdapter
from openalgo_proxy.config import ProxySettings
from openalgo_proxy.control import decode_directory
from openalgo_proxy.payload import iso_millis
from openalgo_proxy.proxy.server import ProxyServer
from tests.support import System, client, running_system, wait_for

FIVE_MINUTES_MS = 300_000


def upstream_symbols(system: System) -> set[str]:
    return {inst.symbol for inst in system.feed.upstream}


async def test_first_message_after_subscribe_carries_the_values_exchange_time_not_now() -> None:
    adapter = SimulatedAdapter(FeedOptions(ticks_per_second=0, seed=5))  # nothing trades: snapshots only
    old = int(time.time() * 1000) - FIVE_MINUTES_MS
    moved = adapter.market.advance("NSE", "SBIN", now_ms=old)
    async with running_system(adapter=adapter) as system, client(system.url) as c:
        for mode in (3, 2, 1):
            await c.reply({"action": "subscribe", "symbol": "SBIN", "exchange": "NSE", "mode": mode})
            msg = await c.market_data(within=5, where=lambda m, mode=mode: m["mode"] == mode)
            data = msg["data"]
            assert (data["ltt"], data["timestamp"]) == (old, iso_millis(old)), mode
            assert data["ltp"] == moved.ltp


async def test_seq_keeps_rising_when_a_topic_is_released_and_wanted_again() -> None:
    async with running_system(ticks_per_second=20) as system, client(system.url) as c:
        await c.reply({"action": "subscribe", "symbol": "SBIN", "exchange": "NSE", "mode": 1})
        seqs = [(await c.market_data(within=5))["seq"] for _ in range(3)]
        assert seqs == sorted(seqs)
        await c.reply({"action": "unsubscribe", "symbol": "SBIN", "exchange": "NSE"})
        await wait_for(lambda: "SBIN" not in upstream_symbols(system))  # released at the broker too
        c.market.clear()
        await c.reply({"action": "subscribe", "symbol": "SBIN", "exchange": "NSE", "mode": 1})
        again = await c.market_data(within=5)
        assert again["seq"] > seqs[-1]


async def test_a_replayed_last_value_is_marked_snapshot_with_its_own_seq_and_times() -> None:
    # a second proxy starts wanting a topic the feed already streams: the feed replays its last frame
    adapter = SimulatedAdapter(FeedOptions(ticks_per_second=0.01, seed=4))  # a slow market
    async with running_system(adapter=adapter) as system:
        second = ProxyServer(ProxySettings.model_validate({"port": 0, "bus": system.proxy.cfg.bus}), ctx=system.ctx)
        await second.start()
        try:
            await wait_for(lambda: second.ready()[0], within=10)
            async with client(system.url) as a, client(f"ws://127.0.0.1:{second.port}") as b:
                await a.reply({"action": "subscribe", "symbol": "ONGC", "exchange": "NSE", "mode": 2})
                live = await a.market_data(within=5)
                assert "snapshot" not in live  # the broker's own first message is not a replay
                await b.reply({"action": "subscribe", "symbol": "ONGC", "exchange": "NSE", "mode": 2})
                replay = await b.market_data(within=5)
                assert replay["snapshot"] is True
                assert (replay["seq"], replay["data"]) == (live["seq"], live["data"])
        finally:
            await second.stop(within=2.0)


async def test_resubscribe_before_the_upstream_release_replays_a_marked_snapshot() -> None:
    adapter = SimulatedAdapter(FeedOptions(ticks_per_second=0.01, seed=4))
    async with running_system(adapter=adapter) as system:
        system.feed.coalesce_window = 0.5
        async with client(system.url) as c:
            await c.reply({"action": "subscribe", "symbol": "ONGC", "exchange": "NSE", "mode": 1})
            first = await c.market_data()
            await wait_for(lambda: "ONGC" in upstream_symbols(system))
            await c.reply({"action": "unsubscribe", "symbol": "ONGC", "exchange": "NSE"})
            await wait_for(lambda: b"NSE|ONGC|1" not in system.feed.table)
            await c.reply({"action": "subscribe", "symbol": "ONGC", "exchange": "NSE", "mode": 1})
            replay = await c.market_data(within=2)
            assert replay["snapshot"] is True
            assert (replay["seq"], replay["data"]) == (first["seq"], first["data"])


async def test_the_feeds_directory_carries_search_metadata() -> None:
    async with running_system() as system:
        sub = system.ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.connect(system.proxy.cfg.bus[0])
        sub.setsockopt(zmq.SUBSCRIBE, b"#instruments|")
        try:
            async with asyncio.timeout(10):
                while True:
                    if await asyncio.to_thread(sub.poll, 200):
                        _, _, data = sub.recv_multipart()
                        break
        finally:
            sub.close()
    directory = decode_directory(data)
    info = {item.symbol: item for item in directory.instruments["NFO"]}
    fut = info[future_symbol("NIFTY")]
    assert (fut.name, fut.instrument_type, fut.tick_size, fut.lot_size) == ("NIFTY", "FUT", 0.1, 75)
    reliance = next(item for item in directory.instruments["NSE"] if item.symbol == "RELIANCE")
    assert (reliance.name, reliance.instrument_type) == ("RELIANCE INDUSTRIES", "EQ")
    assert {item.symbol for item in directory.instruments["NSE"]} == set(directory.symbols["NSE"])


async def test_a_second_client_on_the_same_proxy_gets_the_cached_value_marked_snapshot() -> None:
    adapter = SimulatedAdapter(FeedOptions(ticks_per_second=0.01, seed=4))  # a slow market
    async with running_system(adapter=adapter) as system, client(system.url) as a, client(system.url) as b:
        await a.reply({"action": "subscribe", "symbol": "ONGC", "exchange": "NSE", "mode": 2})
        live = await a.market_data(within=5)
        await b.reply({"action": "subscribe", "symbol": "ONGC", "exchange": "NSE", "mode": 2})
        replay = await b.market_data(within=5)
        assert replay["snapshot"] is True
        assert (replay["seq"], replay["data"]) == (live["seq"], live["data"])
