"""KiteAdapter against the real Kite simulator on loopback: streaming, subscriptions, faults, caps."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from openalgo_proxy.brokers.base import ConnectionState, FeedOptions
from openalgo_proxy.brokers.market import future_symbol
from openalgo_proxy.brokers.zerodha.adapter import KiteAdapter
from openalgo_proxy.brokers.zerodha.codec import ErrorMessage, KiteMode
from openalgo_proxy.brokers.zerodha.simulator import KiteSimulator
from openalgo_proxy.errors import ErrorCode
from openalgo_proxy.model import Instrument, Mode

from .conftest import Collector, make_adapter, wait_for

USDINR_FUT = future_symbol("USDINR")
NIFTY_FUT = future_symbol("NIFTY")
CRUDE_FUT = future_symbol("CRUDEOIL")
GOLD_FUT = future_symbol("GOLD")

pytestmark = pytest.mark.timeout(30)


def instrument(adapter: object, exchange: str, symbol: str) -> Instrument:
    found = adapter.lookup(exchange, symbol)  # type: ignore[attr-defined]
    assert found is not None, f"{symbol}.{exchange} not in the master"
    assert isinstance(found, Instrument)
    return found


async def test_streams_every_segment_in_its_mode(sim: KiteSimulator) -> None:
    adapter = make_adapter(sim)
    got = Collector()
    await adapter.start(got.on_tick, got.on_reject)
    try:
        assert set(adapter.exchanges()) >= {"NSE", "NSE_INDEX", "BSE_INDEX", "NFO", "MCX", "CDS"}
        wanted = {
            instrument(adapter, "NSE", "RELIANCE"): Mode.DEPTH,
            instrument(adapter, "NSE_INDEX", "NIFTY"): Mode.QUOTE,
            instrument(adapter, "BSE_INDEX", "SENSEX"): Mode.DEPTH,
            instrument(adapter, "NFO", NIFTY_FUT): Mode.QUOTE,
            instrument(adapter, "MCX", CRUDE_FUT): Mode.LTP,
            instrument(adapter, "CDS", USDINR_FUT): Mode.DEPTH,
        }
        await adapter.set_wanted(wanted)
        symbols = {i.symbol for i in wanted}
        await wait_for(lambda: got.symbols() >= symbols, what="ticks of every instrument")
        assert sim.subscribed() == {
            int(i.token): {1: KiteMode.LTP, 2: KiteMode.QUOTE, 3: KiteMode.FULL}[m] for i, m in wanted.items()
        }
        assert len(sim.connections) == 1
        assert sim.connections[0].request.headers.get("X-Kite-Version") == "3"

        rel = got.last("RELIANCE")
        assert rel.exchange == "NSE" and rel.mode is Mode.DEPTH and len(rel.bids) == 5 and len(rel.asks) == 5
        assert rel.bids[0].price < rel.asks[0].price and 1300 < rel.ltp < 1700
        nifty = got.last("NIFTY")
        assert nifty.exchange == "NSE_INDEX" and nifty.mode is Mode.QUOTE and 23000 < nifty.ltp < 29000
        assert nifty.low <= nifty.ltp <= nifty.high and nifty.close > 0
        sensex = got.last("SENSEX")
        assert sensex.exchange == "BSE_INDEX" and sensex.mode is Mode.DEPTH and sensex.bids == ()
        assert sensex.exchange_time > 0
        assert got.last(NIFTY_FUT).mode is Mode.QUOTE
        crude = got.last(CRUDE_FUT)
        assert crude.mode is Mode.LTP and crude.open == 0.0 and 4700 < crude.ltp < 5800
        usd = got.last(USDINR_FUT)
        assert usd.mode is Mode.DEPTH and 80 < usd.ltp < 98  # cds divisor 1e7
        assert abs(usd.ltp / 0.0025 - round(usd.ltp / 0.0025)) < 1e-6
        status = adapter.status()
        assert status.state is ConnectionState.CONNECTED and status.connections == 1 and status.subscriptions == 6
    finally:
        await adapter.stop()


async def test_mode_changes_and_unsubscribes_on_one_warm_connection(sim: KiteSimulator) -> None:
    adapter = make_adapter(sim)
    got = Collector()
    await adapter.start(got.on_tick, got.on_reject)
    try:
        rel = instrument(adapter, "NSE", "RELIANCE")
        infy = instrument(adapter, "NSE", "INFY")
        # the first connection opens at start, subscribed to nothing, and proves the credentials
        await wait_for(lambda: adapter.status().state is ConnectionState.CONNECTED, what="warm connection")
        assert sim.subscriptions() == [{}]
        await adapter.set_wanted({rel: Mode.LTP, infy: Mode.QUOTE})
        await wait_for(lambda: sim.subscribed() == {738561: KiteMode.LTP, 408065: KiteMode.QUOTE}, what="subscribe")
        await adapter.set_wanted({rel: Mode.DEPTH})
        await wait_for(lambda: sim.subscribed() == {738561: KiteMode.FULL}, what="mode change + unsubscribe")
        got.ticks.clear()
        await wait_for(lambda: any(t.symbol == "RELIANCE" and t.mode is Mode.DEPTH for t in got.ticks))
        await adapter.set_wanted({})
        await wait_for(lambda: sim.subscriptions() == [{}], what="unsubscribed, first connection kept")
        await adapter.set_wanted({infy: Mode.LTP})
        await wait_for(lambda: sim.subscribed() == {408065: KiteMode.LTP})
        assert sim.connections_total == 1
        assert adapter.status().state is ConnectionState.CONNECTED
    finally:
        await adapter.stop()


async def test_reconnects_after_drop_and_resubscribes_exactly(sim: KiteSimulator) -> None:
    adapter = make_adapter(sim)
    got = Collector()
    await adapter.start(got.on_tick, got.on_reject)
    try:
        wanted = {
            instrument(adapter, "NSE", "SBIN"): Mode.QUOTE,
            instrument(adapter, "NSE_INDEX", "BANKNIFTY"): Mode.LTP,
        }
        await adapter.set_wanted(wanted)
        await wait_for(lambda: got.symbols() == {"SBIN", "BANKNIFTY"})
        assert sim.drop_connections() == 1
        await wait_for(lambda: sim.connections_total == 2 and len(sim.subscribed()) == 2, what="reconnect")
        assert sim.subscribed() == {3045 * 256 + 1: KiteMode.QUOTE, 260105: KiteMode.LTP}
        got.ticks.clear()
        await wait_for(lambda: got.symbols() == {"SBIN", "BANKNIFTY"}, what="ticks after reconnect")
        assert adapter.status().reconnects == 1
    finally:
        await adapter.stop()


async def test_stall_forces_reconnect(sim: KiteSimulator) -> None:
    adapter = make_adapter(sim, stall_timeout=0.4)
    got = Collector()
    await adapter.start(got.on_tick, got.on_reject)
    try:
        await adapter.set_wanted({instrument(adapter, "NSE", "ITC"): Mode.LTP})
        await wait_for(lambda: got.symbols() == {"ITC"})
        sim.mute = True
        await wait_for(lambda: sim.connections_total >= 2, what="watchdog reconnect")
        assert adapter.status().extra["stalls"] >= 1
        sim.mute = False
        got.ticks.clear()
        await wait_for(lambda: got.symbols() == {"ITC"}, what="ticks after the stall")
    finally:
        await adapter.stop()


async def test_heartbeats_without_ticks_keep_the_connection(sim: KiteSimulator) -> None:
    adapter = make_adapter(sim, stall_timeout=0.4)
    got = Collector()
    await adapter.start(got.on_tick, got.on_reject)
    try:
        await adapter.set_wanted({instrument(adapter, "NSE", "ITC"): Mode.LTP})
        await wait_for(lambda: got.symbols() == {"ITC"})
        sim.heartbeats_only = True

        def heartbeats() -> int:
            count = adapter.status().extra["heartbeats"]
            assert isinstance(count, int)
            return count

        # a heartbeat sent after the switch has arrived: no tick frame is still in flight
        seen = heartbeats()
        await wait_for(lambda: heartbeats() >= seen + 2, what="heartbeats after the switch")
        got.ticks.clear()
        start = sim.heartbeats_sent
        # 15 heartbeats at 0.1 s span ~1.5 s, almost 4 stall timeouts without a tick
        await wait_for(lambda: sim.heartbeats_sent - start >= 15, what="heartbeats")
        assert got.ticks == []
        assert heartbeats() >= seen + 10
        assert sim.connections_total == 1 and adapter.status().extra["stalls"] == 0
        assert adapter.status().state is ConnectionState.CONNECTED
    finally:
        await adapter.stop()


async def test_expired_token_is_reread_from_its_file(
    sim: KiteSimulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token_file = tmp_path / "kite_token"
    token_file.write_text("sim_access_token\n")
    monkeypatch.setenv("KITE_ACCESS_TOKEN_FILE", str(token_file))
    from openalgo_proxy.brokers.zerodha.adapter import env_token_provider

    adapter = make_adapter(sim, token=env_token_provider)
    got = Collector()
    await adapter.start(got.on_tick, got.on_reject)
    try:
        await adapter.set_wanted({instrument(adapter, "NSE", "TCS"): Mode.QUOTE})
        await wait_for(lambda: got.symbols() == {"TCS"})
        sim.expire_token()
        sim.drop_connections()
        await wait_for(lambda: sim.rejections[403] >= 3, what="403s")
        # every 403 made the adapter re-read its token before retrying, with growing delays
        assert adapter.token_refreshes >= sim.rejections[403] - 1
        token_file.write_text("fresh_token\n")
        sim.accept_token("fresh_token")
        got.ticks.clear()
        await wait_for(lambda: got.symbols() == {"TCS"}, within=8, what="ticks with the new token")
        assert sim.connections[0].request.query["access_token"] == "fresh_token"
        attempts = sim.handshake_attempts
        assert attempts < 20  # backed off, never spun
    finally:
        await adapter.stop()


async def test_429_backs_off_long(sim: KiteSimulator) -> None:
    others = [await connect(f"{sim.url}?api_key={sim.api_key}&access_token=sim_access_token") for _ in range(3)]
    adapter = make_adapter(sim)
    got = Collector()
    await adapter.start(got.on_tick, got.on_reject)
    try:
        await adapter.set_wanted({instrument(adapter, "NSE", "WIPRO"): Mode.LTP})
        await wait_for(lambda: sim.rejections[429] >= 1, what="429")
        first = time.monotonic()
        await others[0].close()
        await wait_for(lambda: got.symbols() == {"WIPRO"}, within=5, what="ticks after the slot freed")
        # the retry after a 429 waited at least the long delay (0.6 s in tests), not the 0.05 s base
        assert sim.rejections[429] == 1
        assert time.monotonic() - first >= 0.5
    finally:
        await adapter.stop()
        for ws in others:
            await ws.close()


async def test_malformed_frames_and_errors_are_counted_and_skipped(sim: KiteSimulator) -> None:
    adapter = make_adapter(sim)
    got = Collector()
    await adapter.start(got.on_tick, got.on_reject)
    try:
        await adapter.set_wanted({instrument(adapter, "NSE", "LT"): Mode.QUOTE})
        await wait_for(lambda: got.symbols() == {"LT"})
        await sim.send_malformed()
        await sim.send_text(ErrorMessage("Invalid instrument token"))
        await wait_for(lambda: adapter.status().decode_errors == 1, what="decode error counted")
        got.ticks.clear()
        await wait_for(lambda: got.symbols() == {"LT"}, what="ticks after the bad frame")
        assert sim.connections_total == 1
    finally:
        await adapter.stop()


async def test_pool_shards_across_connections_and_rejects_past_cap(sim: KiteSimulator) -> None:
    adapter = make_adapter(sim, per_connection=8)
    got = Collector()
    await adapter.start(got.on_tick, got.on_reject)
    try:
        nse = sorted(adapter.directory()["NSE"])[:30]
        wanted = {instrument(adapter, "NSE", s): Mode.LTP for s in nse}
        await adapter.set_wanted(wanted)
        await wait_for(lambda: len(sim.connections) == 3 and sum(map(len, sim.subscriptions())) == 24)
        assert sorted(map(len, sim.subscriptions())) == [8, 8, 8]
        assert len(got.rejections) == 6
        assert {r.code for r in got.rejections} == {ErrorCode.LIMIT_EXCEEDED}
        # the same state again reports nothing new; freeing room places a rejected one
        await adapter.set_wanted(wanted)
        assert len(got.rejections) == 6
        first = next(iter(wanted))
        del wanted[first]
        await adapter.set_wanted(wanted)
        await wait_for(lambda: sum(map(len, sim.subscriptions())) == 24 and int(first.token) not in sim.subscribed())
        assert adapter.status().subscriptions == 24 and adapter.status().extra["rejected"] == 5
        # shrinking to one connection's worth closes the second and third, keeps the first
        small = dict(list(wanted.items())[:5])
        await adapter.set_wanted(small)
        await wait_for(lambda: len(sim.connections) == 1, what="lazy connections closed")
        assert set(sim.subscribed()) == {int(i.token) for i in small}
    finally:
        await adapter.stop()


async def test_persistent_403_refreshes_and_backs_off_instead_of_spinning(sim: KiteSimulator) -> None:
    reads = 0

    def provider() -> str:
        nonlocal reads
        reads += 1
        return "sim_access_token"  # the source never gets a new token

    adapter = make_adapter(sim, token=provider)
    got = Collector()
    await adapter.start(got.on_tick, got.on_reject)
    try:
        await wait_for(lambda: adapter.status().state is ConnectionState.CONNECTED)
        sim.expire_token()
        sim.drop_connections()
        started = time.monotonic()
        await wait_for(lambda: sim.rejections[403] >= 5, within=10, what="five 403s")
        elapsed = time.monotonic() - started
        # each 403 re-read the token source before the next attempt
        assert reads - 1 >= sim.rejections[403] - 1
        assert adapter.token_refreshes >= sim.rejections[403] - 1
        # exponential backoff (0.05 s doubling, capped at 0.4 s in tests): no hot loop
        assert sim.rejections[403] / elapsed < 25
        assert adapter.status().state in (ConnectionState.BACKING_OFF, ConnectionState.CONNECTING)
        assert got.ticks == []
    finally:
        await adapter.stop()


async def test_access_token_never_reaches_the_logs_even_at_debug(
    sim: KiteSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "tok_s3cr3t_do_not_log"
    sim.accept_token(secret)
    caplog.set_level(logging.DEBUG)
    adapter = make_adapter(sim, token=secret)
    got = Collector()
    await adapter.start(got.on_tick, got.on_reject)
    try:
        await adapter.set_wanted({instrument(adapter, "NSE", "INFY"): Mode.DEPTH})
        await wait_for(lambda: got.symbols() == {"INFY"})
        sim.expire_token()
        sim.drop_connections()
        await wait_for(lambda: sim.rejections[403] >= 2, what="403s")
        sim.accept_token(secret)
        await wait_for(lambda: sim.connections_total == 2, what="reconnect")
    finally:
        await adapter.stop()
    assert "403" in caplog.text and "connected" in caplog.text  # the events are logged...
    assert secret not in caplog.text  # ...the token is not


@pytest.mark.parametrize("source", ["options", "env"])
async def test_exchange_filter_limits_lookup_and_directory(
    sim: KiteSimulator, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    options = FeedOptions(ws_url=sim.url, instruments=sim.instruments_url)
    if source == "options":
        options = FeedOptions(ws_url=sim.url, instruments=sim.instruments_url, exchanges=("MCX", "CDS"))
    else:
        monkeypatch.setenv("KITE_EXCHANGES", "mcx, cds")
    adapter = KiteAdapter(options, api_key=sim.api_key, access_token="sim_access_token")
    got = Collector()
    await adapter.start(got.on_tick, got.on_reject)
    try:
        assert adapter.exchanges() == ("CDS", "MCX")
        assert set(adapter.directory()) == {"CDS", "MCX"}
        assert adapter.lookup("NSE", "RELIANCE") is None
        assert adapter.lookup("MCX", GOLD_FUT) is not None
    finally:
        await adapter.stop()


async def test_resubscribe_after_reconnect_is_batched_per_mode(sim: KiteSimulator) -> None:
    adapter = make_adapter(sim)
    got = Collector()
    await adapter.start(got.on_tick, got.on_reject)
    try:
        names = sorted(adapter.directory()["NSE"])
        wanted = {instrument(adapter, "NSE", s): Mode.QUOTE for s in names[:30]}
        wanted.update({instrument(adapter, "NSE", s): Mode.DEPTH for s in names[30:40]})
        await adapter.set_wanted(wanted)
        await wait_for(lambda: len(sim.subscribed()) == 40)
        before = sim.requests_received
        sim.drop_connections()
        await wait_for(lambda: sim.connections_total == 2 and len(sim.subscribed()) == 40, what="resubscribed")
        expected = {int(i.token): KiteMode.QUOTE if m is Mode.QUOTE else KiteMode.FULL for i, m in wanted.items()}
        await wait_for(lambda: sim.subscribed() == expected, what="modes restored")
        # one subscribe + one mode message per mode, not one per instrument
        assert sim.requests_received - before == 4
    finally:
        await adapter.stop()
