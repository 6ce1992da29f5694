"""Delivery (DESIGN section 6): reference counting, slow clients, order, snapshots."""

from __future__ import annotations

import asyncio
import socket
import time
from collections import defaultdict

import psutil
import pytest

from openalgo_proxy.brokers.base import FeedOptions
from openalgo_proxy.brokers.market import NIFTY50
from openalgo_proxy.brokers.simulated.adapter import SimulatedAdapter
from tests.support import System, client, running_system, wait_for

pytestmark = pytest.mark.timing

SBIN_LTP = b"NSE|SBIN|1"


def upstream_symbols(system: System) -> set[str]:
    return {inst.symbol for inst in system.feed.upstream}


async def test_one_client_leaving_never_stops_another_and_last_frees_the_broker(system: System) -> None:
    async with client(system.url) as a, client(system.url) as b:
        for c in (a, b):
            await c.reply({"action": "subscribe", "symbol": "SBIN", "exchange": "NSE", "mode": 1})
        await wait_for(lambda: "SBIN" in upstream_symbols(system))
        await a.reply({"action": "unsubscribe", "symbol": "SBIN", "exchange": "NSE"})
        b.market.clear()
        first = await b.market_data()
        second = await b.market_data()
        assert second["seq"] > first["seq"]
        assert "SBIN" in upstream_symbols(system), "b still wants it"
        await b.reply({"action": "unsubscribe", "symbol": "SBIN", "exchange": "NSE"})
        # observed from the feed side: the broker subscription is released
        await wait_for(lambda: "SBIN" not in upstream_symbols(system))
        assert SBIN_LTP not in system.feed.table


async def test_disconnect_releases_upstream(system: System) -> None:
    async with client(system.url) as a:
        await a.reply({"action": "subscribe", "symbol": "INFY", "exchange": "NSE", "mode": 2})
        await wait_for(lambda: "INFY" in upstream_symbols(system))
    await wait_for(lambda: "INFY" not in upstream_symbols(system))


async def test_richest_mode_is_subscribed_upstream_and_downgrades_when_released(system: System) -> None:
    async with client(system.url) as a, client(system.url) as b:
        await a.reply({"action": "subscribe", "symbol": "TCS", "exchange": "NSE", "mode": 1})
        await b.reply({"action": "subscribe", "symbol": "TCS", "exchange": "NSE", "mode": 3})
        await wait_for(lambda: {i.symbol: int(m) for i, m in system.feed.upstream.items()}.get("TCS") == 3)
        await b.reply({"action": "unsubscribe_all"})
        await wait_for(lambda: {i.symbol: int(m) for i, m in system.feed.upstream.items()}.get("TCS") == 1)
        msg = await a.market_data()
        assert msg["mode"] == 1 and set(msg["data"]) == {"symbol", "exchange", "ltp", "ltt", "timestamp"}


async def test_order_is_preserved_per_topic(system: System) -> None:
    async with client(system.url) as c:
        await c.reply(
            {
                "action": "subscribe",
                "mode": 2,
                "symbols": [{"symbol": lst.symbol, "exchange": "NSE"} for lst in NIFTY50[:10]],
            }
        )
        last: dict[str, int] = {}
        for _ in range(100):
            msg = await c.market_data()
            assert msg["seq"] > last.get(msg["topic"], 0)
            last[msg["topic"]] = msg["seq"]


def _raw_slow_socket(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)  # before connect: keeps the window small
    sock.settimeout(5)
    sock.connect(("127.0.0.1", port))
    return sock


async def test_stalled_client_is_closed_4008_while_others_keep_full_rate() -> None:
    # The healthy client shares this event loop with feed and proxy, so it gets a budget with room
    # for loop hiccups (1 MiB); the stalled client fills the same budget within a second.
    adapter = SimulatedAdapter(FeedOptions(ticks_per_second=20, seed=1))
    proxy = {"slow_client_grace": 2.0, "send_buffer_bytes": 1 << 20, "socket_send_buffer": 16384}
    symbols = [{"symbol": lst.symbol, "exchange": "NSE"} for lst in NIFTY50]
    async with running_system(adapter=adapter, proxy=proxy) as system, client(system.url) as healthy:
        await healthy.reply({"action": "subscribe", "mode": 3, "symbols": symbols})
        # the stalled client: a real WebSocket handshake and subscription, then it never reads again
        loop = asyncio.get_running_loop()
        stalled = await loop.run_in_executor(None, _raw_slow_socket, system.proxy.port)
        stalled.sendall(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        payload = (
            b'{"action":"subscribe","mode":3,"symbols":['
            + b",".join(b'{"symbol":"%s","exchange":"NSE"}' % s["symbol"].encode() for s in symbols)
            + b"]}"
        )
        mask = b"\x01\x02\x03\x04"
        masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
        stalled.sendall(b"\x81\xfe" + len(payload).to_bytes(2, "big") + mask + masked)
        rss_before = psutil.Process().memory_info().rss

        # while it stalls, the healthy client must see every tick of every topic: contiguous seqs
        seqs: dict[str, list[int]] = defaultdict(list)
        started = time.monotonic()
        while system.proxy.metrics.slow_disconnects[4008] == 0:
            msg = await healthy.market_data(within=5)
            seqs[msg["topic"]].append(msg["seq"])
            assert time.monotonic() - started < 15, "stalled client not closed in bounded time"
        elapsed = time.monotonic() - started
        received = sum(len(v) for v in seqs.values())
        for topic, values in seqs.items():
            assert values == list(range(values[0], values[0] + len(values))), f"gap or reorder on {topic}"
        assert received / elapsed > 500, f"healthy client slowed to {received / elapsed:.0f} msg/s"
        assert system.proxy.metrics.conflated > 0, "the stalled client's ticks were conflated, not queued"
        # bounded memory: the proxy did not buffer the backlog
        assert psutil.Process().memory_info().rss - rss_before < 50 * 1024 * 1024

        # the close frame is readable once the client reads again
        def read_until_close() -> int:
            data = b""
            stalled.settimeout(5)
            while True:
                chunk = stalled.recv(65536)
                if not chunk:
                    raise AssertionError("connection ended without a close frame")
                data += chunk
                at = _find_close(data)
                if at is not None:
                    return at

        code = await loop.run_in_executor(None, read_until_close)
        assert code == 4008
        stalled.close()


def _find_close(data: bytes) -> int | None:
    """Walk server frames (unmasked) and return the close code once the close frame is complete."""
    i = data.find(b"\r\n\r\n") + 4
    while i + 2 <= len(data):
        opcode = data[i] & 0x0F
        n = data[i + 1] & 0x7F
        head = 2
        if n == 126:
            if i + 4 > len(data):
                return None
            n = int.from_bytes(data[i + 2 : i + 4], "big")
            head = 4
        elif n == 127:
            if i + 10 > len(data):
                return None
            n = int.from_bytes(data[i + 2 : i + 10], "big")
            head = 10
        if i + head + n > len(data):
            return None
        if opcode == 0x8:
            return int.from_bytes(data[i + head : i + head + 2], "big")
        i += head + n
    return None


async def test_bus_reconnect_after_feed_restart_gives_fresh_snapshot() -> None:
    async with running_system() as system, client(system.url) as c:
        await c.reply({"action": "subscribe", "symbol": "LT", "exchange": "NSE", "mode": 2})
        await c.market_data()
        await system.feed.stop()
        from openalgo_proxy.feed import Feed

        restarted = Feed(
            SimulatedAdapter(FeedOptions(ticks_per_second=20, seed=2)),
            system.feed._bus_endpoint,
            status_interval=0.5,
            coalesce_window=0.005,
            ctx=system.ctx,
        )
        await restarted.start()
        system.feed = restarted  # the fixture stops whichever feed is current
        c.market.clear()
        # the new feed starts its seq afresh; the proxy accepts the restart and delivers at once
        msg = await c.market_data(within=5)
        assert msg["topic"] == "LT.NSE"
        await wait_for(lambda: system.proxy.metrics.bus_resets >= 1)


async def test_resubscribe_within_the_coalescing_window_still_gets_a_snapshot() -> None:
    # a slow market: without a replayed snapshot the client would wait for the next tick
    adapter = SimulatedAdapter(FeedOptions(ticks_per_second=0.01, seed=4))
    async with running_system(adapter=adapter) as system:
        system.feed.coalesce_window = 0.5
        async with client(system.url) as c:
            await c.reply({"action": "subscribe", "symbol": "ONGC", "exchange": "NSE", "mode": 1})
            await c.market_data()
            await wait_for(lambda: "ONGC" in upstream_symbols(system))
            await c.reply({"action": "unsubscribe", "symbol": "ONGC", "exchange": "NSE"})
            await wait_for(lambda: b"NSE|ONGC|1" not in system.feed.table)
            await c.reply({"action": "subscribe", "symbol": "ONGC", "exchange": "NSE", "mode": 1})
            msg = await c.market_data(within=2)
            assert msg["topic"] == "ONGC.NSE"


async def test_malformed_bus_messages_are_counted_and_never_desync_the_stream(system: System) -> None:
    async with client(system.url) as c:
        await c.reply({"action": "subscribe", "symbol": "SBIN", "exchange": "NSE", "mode": 1})
        first = await c.market_data()
        publisher = system.feed.publisher
        assert publisher is not None
        errors_before = system.proxy.metrics.errors["BUS_FRAME"]
        publisher.sock.send_multipart([SBIN_LTP, b"\x00" * 8])  # two frames
        publisher.sock.send_multipart([SBIN_LTP, b"\x00" * 8, b"{}", b"extra"])  # four frames
        await wait_for(lambda: system.proxy.metrics.errors["BUS_FRAME"] >= errors_before + 2)
        later = await c.market_data(where=lambda m: m["seq"] > first["seq"])
        assert later["topic"] == "SBIN.NSE" and later["data"]["symbol"] == "SBIN"


async def test_feed_serves_only_its_configured_exchanges() -> None:
    adapter = SimulatedAdapter(FeedOptions(ticks_per_second=20, seed=3, exchanges=("NSE_INDEX",)))
    async with running_system(adapter=adapter) as system, client(system.url) as c:
        assert set(system.proxy.hub.directory.symbols) == {"NSE_INDEX"}
        reply = await c.reply(
            {
                "action": "subscribe",
                "symbols": [{"symbol": "NIFTY", "exchange": "NSE_INDEX"}, {"symbol": "SBIN", "exchange": "NSE"}],
            }
        )
        assert [s["status"] for s in reply["subscriptions"]] == ["success", "error"]
        assert reply["subscriptions"][1]["code"] == "SYMBOL_NOT_FOUND"
