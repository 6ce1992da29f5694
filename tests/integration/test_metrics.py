"""Proxy /metrics under a scripted scenario, scraped over HTTP and read with the Prometheus parser.

Connect, subscribe, ticks, an error, a stalled client closed 4008, a disconnect: each counter and
gauge moves as it should, names carry the `openalgo_proxy_` prefix, and no series has a symbol or
client label.
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from openalgo_proxy.brokers.market import NIFTY50
from tests.ops_support import poll, scrape
from tests.support import client, running_system

pytestmark = pytest.mark.timeout(60)
ALLOWED_LABELS = {"code", "broker", "state", "le"}


def _stalled_socket(port: int, symbols: list[str]) -> socket.socket:
    """A real WebSocket handshake and a depth subscription, then it never reads again."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    sock.settimeout(5)
    sock.connect(("127.0.0.1", port))
    sock.sendall(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    payload = (
        b'{"action":"subscribe","mode":3,"symbols":['
        + b",".join(b'{"symbol":"%s","exchange":"NSE"}' % s.encode() for s in symbols)
        + b"]}"
    )
    mask = b"\x01\x02\x03\x04"
    masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
    sock.sendall(b"\x81\xfe" + len(payload).to_bytes(2, "big") + mask + masked)
    return sock


async def test_metrics_follow_a_scripted_session() -> None:
    proxy = {"slow_client_grace": 0.5, "send_buffer_bytes": 16384, "socket_send_buffer": 4096}
    async with running_system(proxy=proxy, ticks_per_second=20) as system:
        port = system.proxy.port
        m = await scrape(port)
        assert m["openalgo_proxy_connections_total"] == 0
        assert m["openalgo_proxy_connections_open"] == 0
        assert m["openalgo_proxy_ready"] == 1
        assert m["openalgo_proxy_broker_up{broker=simulator}"] == 1
        assert m["openalgo_proxy_broker_state{broker=simulator,state=connected}"] == 1
        assert m["openalgo_proxy_process_resident_memory_bytes"] > 0
        for key in m:
            assert key.startswith("openalgo_proxy_"), key
            if "{" in key:
                labels = {pair.split("=", 1)[0] for pair in key[key.index("{") + 1 : -1].split(",")}
                assert labels <= ALLOWED_LABELS, key

        async with client(system.url) as c:
            for symbol in ("RELIANCE", "SBIN"):
                reply = await c.reply({"action": "subscribe", "symbol": symbol, "exchange": "NSE", "mode": 3})
                assert reply["status"] == "success"
            reply = await c.reply({"action": "subscribe", "symbol": "NOSUCH", "exchange": "NSE", "mode": 1})
            assert reply["status"] == "error"
            for _ in range(10):
                await c.market_data(within=5)
            m = await scrape(port)
            assert m["openalgo_proxy_connections_total"] == 1
            assert m["openalgo_proxy_connections_open"] == 1
            assert m["openalgo_proxy_subscriptions"] == 2
            assert m["openalgo_proxy_topics"] == 2
            assert m["openalgo_proxy_messages_received_total"] == 3
            assert m["openalgo_proxy_messages_sent_total"] >= 10
            assert m["openalgo_proxy_sent_bytes_total"] > 1000
            assert m["openalgo_proxy_bus_messages_total"] >= 10
            assert m["openalgo_proxy_errors_total{code=SYMBOL_NOT_FOUND}"] == 1
            latency_count = m["openalgo_proxy_tick_to_send_seconds_count"]
            assert latency_count >= 10
            assert m["openalgo_proxy_tick_to_send_seconds_bucket{le=+Inf}"] == latency_count
            assert m["openalgo_proxy_bus_gaps_total"] == 0
            # tick age comes with the feed's next status (every 0.5 s here)
            m = await poll(lambda: scrape(port), lambda s: 0 <= s["openalgo_proxy_tick_age_seconds"] < 5)
            assert 0 <= m["openalgo_proxy_broker_last_tick_age_seconds{broker=simulator}"] < 5

            # a stalled client: conflated, then closed with 4008 and counted by code
            symbols = [lst.symbol for lst in NIFTY50]
            stalled = await asyncio.to_thread(_stalled_socket, port, symbols)
            try:
                m = await poll(
                    lambda: scrape(port), lambda s: s.get("openalgo_proxy_slow_disconnects_total{code=4008}") == 1
                )
                assert m["openalgo_proxy_conflated_ticks_total"] > 0
                assert m["openalgo_proxy_connections_total"] == 2
            finally:
                stalled.close()
            # the healthy client kept its stream
            await c.market_data(within=5)

        # both gone: open connections and subscriptions fall back, the normal close is counted by code
        m = await poll(lambda: scrape(port), lambda s: s["openalgo_proxy_connections_open"] == 0)
        assert m["openalgo_proxy_subscriptions"] == 0
        assert m["openalgo_proxy_topics"] == 0
        assert m["openalgo_proxy_disconnects_total{code=1000}"] == 1
        assert m["openalgo_proxy_slow_disconnects_total{code=4008}"] == 1
