"""The Angel adapter against the simulator: streaming, pooling, caps and every fault scenario."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec

from openalgo_proxy.brokers.angel.adapter import AngelAdapter
from openalgo_proxy.brokers.angel.codec import decode_packet, to_tick
from openalgo_proxy.brokers.angel.login import AngelCredentials
from openalgo_proxy.brokers.angel.simulator import AngelSimulator
from openalgo_proxy.brokers.base import ConnectionState
from openalgo_proxy.brokers.market import future_symbol
from openalgo_proxy.errors import ErrorCode
from openalgo_proxy.model import Mode
from openalgo_proxy.payload import encode_data, iso_millis, to_data
from tests.broker_support import until

USDINR_FUT = future_symbol("USDINR")

FAST = {"stall_timeout": 0.6}


async def test_lazy_connect_streams_each_mode_with_sent_values(harness: Any) -> None:
    h = await harness({"ticks_per_second": 0})  # only the snapshot sent on subscribe
    assert h.sim.connection_count == 0 and h.sim.handshake_attempts == 0
    rel = h.instrument("NSE", "RELIANCE")
    nifty = h.instrument("NSE_INDEX", "NIFTY")
    usd = h.instrument("CDS", USDINR_FUT)
    async with asyncio.timeout(10):
        await h.adapter.set_wanted({rel: Mode.DEPTH, nifty: Mode.LTP, usd: Mode.QUOTE})
        await until(lambda: len(h.ticks) >= 3, what="three snapshots")
    # a derivative wanted in Quote is subscribed in SnapQuote: Angel's Quote packet has no OI
    assert h.sim.subscribed() == {(1, "2885", 3), (1, "99926000", 1), (13, "1185", 3)}
    for tick, key in (
        (h.ticks_for("RELIANCE")[-1], (1, "2885", 3)),
        (h.ticks_for("NIFTY")[-1], (1, "99926000", 1)),
        (h.ticks_for(USDINR_FUT)[-1], (13, "1185", 3)),
    ):
        assert tick == to_tick(decode_packet(h.sim.last_sent[key]), tick.symbol, tick.exchange)
    depth = h.ticks_for("RELIANCE")[-1]
    assert depth.mode is Mode.DEPTH and len(depth.bids) == 5 and depth.bids[0].price < depth.asks[0].price
    quote = h.ticks_for(USDINR_FUT)[-1]
    assert quote.mode >= Mode.QUOTE and 80 < quote.ltp < 100 and quote.close > 0 and quote.oi > 0
    status = h.adapter.status()
    assert status.state is ConnectionState.CONNECTED and status.connections == 1 and status.subscriptions == 3
    async with asyncio.timeout(5):
        await h.adapter.set_wanted({})
        await until(lambda: h.sim.connection_count == 0, what="the last connection to close")


async def test_drop_mid_stream_reconnects_and_resubscribes_exactly_the_wanted_set(harness: Any) -> None:
    h = await harness({"ticks_per_second": 20}, options=FAST)
    rel, sbin, infy = (h.instrument("NSE", s) for s in ("RELIANCE", "SBIN", "INFY"))
    async with asyncio.timeout(10):
        await h.adapter.set_wanted({rel: Mode.DEPTH, sbin: Mode.QUOTE, infy: Mode.LTP})
        await until(lambda: {t.symbol for t in h.ticks} == {"RELIANCE", "SBIN", "INFY"}, what="ticks")
        await h.adapter.set_wanted({rel: Mode.LTP, infy: Mode.LTP})  # SBIN gone, RELIANCE down to LTP
        wanted = {(1, "2885", 1), (1, "1594", 1)}
        await until(lambda: h.sim.subscribed() == wanted, what="diff applied")
        assert h.sim.drop_connections() == 1
        await until(lambda: h.adapter.status().reconnects == 1, what="reconnect")
        await until(lambda: h.sim.subscribed() == wanted and h.sim.connection_count == 1, what="resubscribe")
        before = len(h.ticks)
        await until(lambda: len(h.ticks) > before + 2, what="fresh ticks after reconnect")
    assert h.adapter.status().state is ConnectionState.CONNECTED
    assert h.sim.logins == 1  # a network drop is not an auth problem


async def test_mute_socket_fires_the_watchdog(harness: Any) -> None:
    h = await harness({"ticks_per_second": 20}, options=FAST)
    async with asyncio.timeout(10):
        await h.adapter.set_wanted({h.instrument("NSE", "TCS"): Mode.QUOTE})
        await until(lambda: len(h.ticks) > 0, what="ticks")
        h.sim.mute = True
        await until(lambda: h.adapter.status().reconnects >= 1, what="watchdog-forced reconnect")
        h.sim.mute = False
        count = len(h.ticks)
        await until(lambda: len(h.ticks) > count and h.adapter.status().state is ConnectionState.CONNECTED)


async def test_heartbeats_keep_a_quiet_connection_alive(harness: Any) -> None:
    h = await harness({"ticks_per_second": 20}, options={"stall_timeout": 0.9})  # text ping every 0.3 s
    async with asyncio.timeout(10):
        await h.adapter.set_wanted({h.instrument("NSE", "TCS"): Mode.QUOTE})
        await until(lambda: len(h.ticks) > 0, what="ticks")
        h.sim.heartbeats_only = True
        pings = h.sim.pings
        await until(lambda: h.sim.pings >= pings + 7, what="seven text pings (> 2 stall timeouts)")
    assert h.adapter.status().reconnects == 0


async def test_expired_tokens_401_relogin_then_stream(harness: Any) -> None:
    h = await harness({"ticks_per_second": 20}, options=FAST)
    async with asyncio.timeout(10):
        await h.adapter.set_wanted({h.instrument("NSE", "INFY"): Mode.LTP})
        await until(lambda: len(h.ticks) > 0, what="ticks")
        h.sim.expire_tokens()
        h.sim.drop_connections()
        await until(lambda: h.sim.handshake_rejections >= 1, what="a 401")
        await until(lambda: h.sim.logins == 2 and h.sim.connection_count == 1, what="re-login and reconnect")
        count = len(h.ticks)
        await until(lambda: len(h.ticks) > count, what="ticks after re-login")
    assert h.sim.handshake_rejections == 1


async def test_persistent_401_backs_off_instead_of_spinning(harness: Any) -> None:
    h = await harness({"ticks_per_second": 20}, options=FAST, backoff_base=0.1, backoff_cap=0.3)
    async with asyncio.timeout(10):
        await h.adapter.set_wanted({h.instrument("NSE", "INFY"): Mode.LTP})
        await until(lambda: h.sim.connection_count == 1, what="connect")
        h.sim.reject_handshakes = True
        h.sim.drop_connections()
        attempts = h.sim.handshake_attempts
        await until(lambda: h.sim.handshake_rejections >= 4, what="a few refused handshakes")
        await asyncio.sleep(1.0)  # measuring a rate over a fixed window, not synchronising
        refused = h.sim.handshake_attempts - attempts
        assert 4 <= refused <= 25, refused
        assert h.sim.login_attempts + h.sim.refreshes <= refused + 2  # one renewal per refusal at most
        h.sim.reject_handshakes = False
        await until(lambda: h.sim.connection_count == 1, what="recovery")


async def test_cap_reports_limit_exceeded(harness: Any) -> None:
    h = await harness({"ticks_per_second": 0}, options={"max_connections": 1}, max_pairs_per_connection=2)
    a, b, c = (h.instrument("NSE", s) for s in ("RELIANCE", "SBIN", "INFY"))
    async with asyncio.timeout(5):
        await h.adapter.set_wanted({a: Mode.LTP, b: Mode.LTP, c: Mode.DEPTH})
        await until(lambda: len(h.sim.subscribed()) == 2, what="two pairs placed")
    assert [(r.instrument.symbol, r.mode, r.code) for r in h.rejections] == [
        ("INFY", Mode.DEPTH, ErrorCode.LIMIT_EXCEEDED)
    ]
    await h.adapter.set_wanted({a: Mode.LTP, b: Mode.LTP, c: Mode.DEPTH})
    assert len(h.rejections) == 1  # reported once, not on every coalescing window
    assert h.adapter.status().extra["rejected"] == 1


async def test_broker_e1002_becomes_limit_exceeded(harness: Any) -> None:
    h = await harness({"ticks_per_second": 0, "max_pairs": 2}, options={"max_connections": 1})
    a, b, c = (h.instrument("NSE", s) for s in ("RELIANCE", "SBIN", "INFY"))
    async with asyncio.timeout(5):
        await h.adapter.set_wanted({a: Mode.LTP})
        await until(lambda: len(h.sim.subscribed()) == 1, what="first pair")
        await h.adapter.set_wanted({a: Mode.LTP, b: Mode.LTP, c: Mode.LTP})
        await until(lambda: len(h.rejections) == 2, what="E1002 rejections")
    assert {r.instrument.symbol for r in h.rejections} == {"SBIN", "INFY"}
    assert all(r.code is ErrorCode.LIMIT_EXCEEDED and "E1002" in r.message for r in h.rejections)
    assert h.sim.subscribed() == {(1, "2885", 1)} and h.adapter.status().connections == 1


async def test_pool_fills_and_drains(harness: Any) -> None:
    h = await harness({"ticks_per_second": 0}, max_pairs_per_connection=2)
    names = ("RELIANCE", "SBIN", "INFY", "TCS", "ITC")
    instruments = [h.instrument("NSE", s) for s in names]
    async with asyncio.timeout(10):
        await h.adapter.set_wanted(dict.fromkeys(instruments, Mode.QUOTE))
        await until(lambda: sorted(h.sim.subscriptions_per_connection()) == [1, 2, 2], what="three connections")
        await h.adapter.set_wanted({instruments[0]: Mode.QUOTE})
        await until(lambda: h.sim.subscriptions_per_connection() == [1], what="drained to one connection")
    assert h.adapter.status().connections == 1


async def test_malformed_packet_is_counted_and_skipped(harness: Any) -> None:
    h = await harness({"ticks_per_second": 20}, options=FAST)
    async with asyncio.timeout(10):
        await h.adapter.set_wanted({h.instrument("NSE", "SBIN"): Mode.DEPTH})
        await until(lambda: len(h.ticks) > 0, what="ticks")
        await h.sim.send_malformed()
        await h.sim.send_malformed(b"\x07" + bytes(60))
        await until(lambda: h.adapter.status().decode_errors == 2, what="decode errors counted")
        count = len(h.ticks)
        await until(lambda: len(h.ticks) > count + 2, what="ticks keep flowing")
    assert h.adapter.status().reconnects == 0


async def test_static_tokens_connect_without_login() -> None:
    async with AngelSimulator(ticks_per_second=0, jwt_token="eyJstatic", feed_token="feed-static") as sim:
        creds = AngelCredentials(sim.api_key, sim.client_code, jwt_token="eyJstatic", feed_token="feed-static")
        adapter = AngelAdapter(sim.feed_options(), creds, backoff_base=0.05, backoff_cap=0.2)
        ticks: list[Any] = []
        await adapter.start(ticks.append, ticks.append)
        try:
            rel = adapter.lookup("NSE", "RELIANCE")
            assert rel is not None
            async with asyncio.timeout(5):
                await adapter.set_wanted({rel: Mode.QUOTE})
                await until(lambda: len(ticks) == 1, what="snapshot")
            assert sim.login_attempts == 0 and sim.handshake_attempts == 1
        finally:
            await adapter.stop()


async def test_quote_of_a_derivative_carries_open_interest(harness: Any) -> None:
    """Issue 12: Quote mode reported oi 0 for futures because Angel's Quote packet has no OI."""
    h = await harness({"ticks_per_second": 0})
    fut = h.instrument("NFO", future_symbol("NIFTY"))
    rel = h.instrument("NSE", "RELIANCE")
    async with asyncio.timeout(10):
        await h.adapter.set_wanted({fut: Mode.QUOTE, rel: Mode.QUOTE})
        await until(lambda: len(h.ticks) >= 2, what="snapshots")
    assert h.sim.subscribed() == {(2, "52175", 3), (1, "2885", 2)}  # cash has no OI: it stays on Quote
    tick = h.ticks_for(future_symbol("NIFTY"))[-1]
    assert tick.oi > 0
    assert msgspec.json.decode(encode_data(tick, Mode.QUOTE))["oi"] == tick.oi


async def test_subscribe_snapshot_carries_the_exchange_times_of_its_values(harness: Any) -> None:
    h = await harness({"ticks_per_second": 0})  # only the snapshot sent on subscribe
    old = (int(time.time()) - 300) * 1000  # five minutes ago, whole seconds (Angel's ltt unit)
    for symbol in ("RELIANCE", "INFY"):
        h.sim.market.advance("NSE", symbol, now_ms=old)
    rel, infy = h.instrument("NSE", "RELIANCE"), h.instrument("NSE", "INFY")
    async with asyncio.timeout(10):
        await h.adapter.set_wanted({rel: Mode.DEPTH, infy: Mode.QUOTE})
        await until(lambda: len(h.ticks) >= 2, what="two snapshots")
    for tick in h.ticks:  # a Quote packet has no ltt: the data's ltt falls back to the exchange time
        data = to_data(tick, tick.mode)
        assert (tick.exchange_time, data.ltt, data.timestamp) == (old, old, iso_millis(old)), tick.symbol
