"""The Dhan adapter against the simulator: streaming, multi-packet frames, pooling, caps, faults and
every disconnect code."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from openalgo_proxy.brokers.base import ConnectionState
from openalgo_proxy.brokers.dhan.codec import (
    FullPacket,
    OiPacket,
    PrevClosePacket,
    QuotePacket,
    TickerPacket,
    decode_frame,
    to_tick,
)
from openalgo_proxy.brokers.dhan.credentials import DhanCredentials
from openalgo_proxy.brokers.market import Listing, future_symbol
from openalgo_proxy.errors import ErrorCode
from openalgo_proxy.model import Mode, Tick
from tests.integration.dhan.conftest import until

pytestmark = pytest.mark.timeout(60)

USDINR_FUT = future_symbol("USDINR")
NIFTY_FUT = future_symbol("NIFTY")
FAST = {"stall_timeout": 0.6}


def expected_tick(frame: bytes, symbol: str, exchange: str) -> Tick:
    """Our tick for the last tick-bearing packet of a frame the simulator sent (OI folded in)."""
    packets = decode_frame(frame)
    oi = next((p.oi for p in packets if isinstance(p, OiPacket)), 0)
    prev = next((p.prev_close for p in packets if isinstance(p, PrevClosePacket)), 0.0)
    main = [p for p in packets if isinstance(p, TickerPacket | QuotePacket | FullPacket)][-1]
    return to_tick(main, symbol, exchange, oi, prev)


async def test_lazy_connect_streams_each_code_with_sent_values(harness: Any) -> None:
    h = await harness({"ticks_per_second": 0})  # only the snapshot sent on subscribe
    assert h.sim.connections() == [] and h.sim.handshake_attempts == 0
    rel = h.instrument("NSE", "RELIANCE")
    nifty = h.instrument("NSE_INDEX", "NIFTY")
    usd = h.instrument("CDS", USDINR_FUT)
    fut = h.instrument("NFO", NIFTY_FUT)
    async with asyncio.timeout(10):
        await h.adapter.set_wanted({rel: Mode.DEPTH, nifty: Mode.LTP, usd: Mode.QUOTE, fut: Mode.QUOTE})
        await until(lambda: len({t.symbol for t in h.ticks}) == 4, what="four snapshots")
    assert h.sim.subscribed() == {(1, 2885, 21), (0, 13, 15), (3, 1185, 17), (2, 52175, 17)}
    for symbol, exchange, key in (
        ("RELIANCE", "NSE", (1, 2885, 21)),
        ("NIFTY", "NSE_INDEX", (0, 13, 15)),
        (USDINR_FUT, "CDS", (3, 1185, 17)),
        (NIFTY_FUT, "NFO", (2, 52175, 17)),
    ):
        assert h.ticks_for(symbol)[-1] == expected_tick(h.sim.last_sent[key], symbol, exchange), symbol
    depth = h.ticks_for("RELIANCE")[-1]
    assert depth.mode is Mode.DEPTH and len(depth.bids) == 5 and depth.bids[0].price < depth.asks[0].price
    quote = h.ticks_for(USDINR_FUT)[-1]
    assert quote.mode is Mode.QUOTE and 80 < quote.ltp < 100 and quote.close > 0
    assert round(quote.ltp, 4) == quote.ltp
    assert h.ticks_for(NIFTY_FUT)[-1].oi > 0  # a Quote carries no OI: the OI packet's value folded in
    status = h.adapter.status()
    assert status.state is ConnectionState.CONNECTED and status.connections == 1 and status.subscriptions == 4
    async with asyncio.timeout(5):
        await h.adapter.set_wanted({})
        await until(lambda: not h.sim.connections(), what="the last connection to close")


async def test_several_packets_per_frame_all_reach_the_sink(harness: Any) -> None:
    h = await harness({"ticks_per_second": 20, "packets_per_frame": 8})
    names = ("RELIANCE", "SBIN", "INFY", "TCS", "ITC", "HDFCBANK")
    wanted = {h.instrument("NSE", s): Mode.QUOTE for s in names}
    async with asyncio.timeout(10):
        await h.adapter.set_wanted(wanted)
        await until(lambda: all(len(h.ticks_for(s)) >= 5 for s in names), what="ticks for every symbol")
    multi = [f for _, f in h.sim.history if len(decode_frame(f)) > 1]
    assert multi, "the simulator packed several packets into a frame"
    assert h.adapter.status().decode_errors == 0


async def test_mode_change_unsubscribes_the_old_code(harness: Any) -> None:
    h = await harness({"ticks_per_second": 0})
    rel = h.instrument("NSE", "RELIANCE")
    async with asyncio.timeout(10):
        await h.adapter.set_wanted({rel: Mode.LTP})
        await until(lambda: h.sim.subscribed() == {(1, 2885, 15)}, what="ticker")
        await h.adapter.set_wanted({rel: Mode.DEPTH})
        await until(lambda: h.sim.subscribed() == {(1, 2885, 21)}, what="full instead of ticker")
    codes = [r.code for r in h.sim.requests]
    assert codes == [15, 16, 21]


async def test_requests_carry_at_most_100_instruments(harness: Any) -> None:
    listings = tuple(
        Listing(f"SYM{i:03d}", "NSE", str(100_000 + i), 0, 100.0 + i, 0.05, 1, f"SYM{i:03d}") for i in range(250)
    )
    h = await harness({"ticks_per_second": 0, "listings": listings})
    wanted = {h.instrument("NSE", lst.symbol): Mode.LTP for lst in listings}
    async with asyncio.timeout(15):
        await h.adapter.set_wanted(wanted)
        await until(lambda: len(h.sim.subscribed()) == 250, what="250 instruments subscribed")
    assert sorted(len(r.instruments) for r in h.sim.requests) == [50, 100, 100]
    assert len(h.sim.connections()) == 1


async def test_drop_mid_stream_reconnects_and_resubscribes_exactly_the_wanted_set(harness: Any) -> None:
    h = await harness({"ticks_per_second": 20}, options=FAST)
    rel, sbin, infy = (h.instrument("NSE", s) for s in ("RELIANCE", "SBIN", "INFY"))
    async with asyncio.timeout(10):
        await h.adapter.set_wanted({rel: Mode.DEPTH, sbin: Mode.QUOTE, infy: Mode.LTP})
        await until(lambda: {t.symbol for t in h.ticks} == {"RELIANCE", "SBIN", "INFY"}, what="ticks")
        await h.adapter.set_wanted({rel: Mode.LTP, infy: Mode.LTP})  # SBIN gone, RELIANCE down to LTP
        wanted = {(1, 2885, 15), (1, 1594, 15)}
        await until(lambda: h.sim.subscribed() == wanted, what="diff applied")
        assert h.sim.drop_connections() == 1
        await until(lambda: h.adapter.status().reconnects == 1, what="reconnect")
        await until(lambda: h.sim.subscribed() == wanted and len(h.sim.connections()) == 1, what="resubscribe")
        before = len(h.ticks)
        await until(lambda: len(h.ticks) > before + 2, what="fresh ticks after reconnect")
    assert h.adapter.status().state is ConnectionState.CONNECTED


async def test_807_rereads_the_token_file_and_resumes(harness: Any, tmp_path: Path) -> None:
    token_file = tmp_path / "dhan-token"
    token_file.write_text("sim-dhan-access-token\n")
    h = await harness({"ticks_per_second": 20}, credentials=DhanCredentials("1000000001", token_file=str(token_file)))
    async with asyncio.timeout(15):
        await h.adapter.set_wanted({h.instrument("NSE", "INFY"): Mode.LTP})
        await until(lambda: len(h.ticks) > 0, what="ticks")
        await h.sim.rotate_token("next-day-token")  # the open connection gets 807
        await until(lambda: 807 in h.sim.disconnects_sent, what="807 sent")
        await until(lambda: h.sim.handshake_attempts >= 3, what="a retry refused with 807 (old token)")
        token_file.write_text("next-day-token\n")  # the operator drops in the new token
        await until(lambda: len(h.sim.connections()) == 1, within=10, what="reconnect with the new token")
        count = len(h.ticks)
        await until(lambda: len(h.ticks) > count, what="ticks after the new token")
    assert h.sim.disconnects_sent.count(807) >= 2


@pytest.mark.parametrize(("reason", "long"), [(805, True), (806, True), (807, False), (808, False), (809, False)])
async def test_each_disconnect_code_gets_its_reaction(harness: Any, reason: int, long: bool) -> None:
    h = await harness({"ticks_per_second": 20}, backoff_base=0.02, backoff_cap=0.05, backoff_long=1.0)
    async with asyncio.timeout(15):
        await h.adapter.set_wanted({h.instrument("NSE", "INFY"): Mode.LTP})
        await until(lambda: len(h.sim.connections()) == 1, what="connected")
        attempts = h.sim.handshake_attempts
        started = time.monotonic()
        await h.sim.disconnect_all(reason)
        await until(lambda: h.sim.handshake_attempts > attempts, within=5, what="a reconnect attempt")
        waited = time.monotonic() - started
    assert h.adapter.connections()[0].disconnects == [reason]
    if long:  # 805/806: the account is busy elsewhere or not entitled; hammering cannot help
        assert waited >= 1.0, waited
    else:  # 807-809: credentials are refreshed and retried on the ordinary back-off
        assert waited < 1.0, waited


async def test_wrong_client_id_backs_off_instead_of_spinning(harness: Any) -> None:
    h = await harness(
        {"ticks_per_second": 20},
        credentials=DhanCredentials("999", "sim-dhan-access-token"),
        backoff_base=0.1,
        backoff_cap=0.3,
    )
    async with asyncio.timeout(10):
        await h.adapter.set_wanted({h.instrument("NSE", "INFY"): Mode.LTP})
        await until(lambda: h.sim.disconnects_sent.count(808) >= 3, what="a few 808s")
        await asyncio.sleep(1.0)  # measuring a rate over a fixed window, not synchronising
    assert 3 <= h.sim.handshake_attempts <= 25
    assert h.adapter.status().state is not ConnectionState.CONNECTED or not h.sim.connections()


async def test_cap_reports_limit_exceeded(harness: Any) -> None:
    h = await harness({"ticks_per_second": 0}, options={"max_connections": 1}, max_instruments_per_connection=2)
    a, b, c = (h.instrument("NSE", s) for s in ("RELIANCE", "SBIN", "INFY"))
    async with asyncio.timeout(5):
        await h.adapter.set_wanted({a: Mode.LTP, b: Mode.LTP, c: Mode.DEPTH})
        await until(lambda: len(h.sim.subscribed()) == 2, what="two instruments placed")
    assert [(r.instrument.symbol, r.mode, r.code) for r in h.rejections] == [
        ("INFY", Mode.DEPTH, ErrorCode.LIMIT_EXCEEDED)
    ]


async def test_credentials_from_the_environment() -> None:
    from openalgo_proxy.errors import ConfigError

    with pytest.raises(ConfigError, match="DHAN_CLIENT_ID"):
        DhanCredentials.from_env({})
    with pytest.raises(ConfigError, match="DHAN_ACCESS_TOKEN"):
        DhanCredentials.from_env({"DHAN_CLIENT_ID": "1"})
    creds = DhanCredentials.from_env({"DHAN_CLIENT_ID": "1", "DHAN_ACCESS_TOKEN": "secret-token"})
    assert creds.token() == "secret-token" and "secret-token" not in repr(creds)
    assert json.dumps({"id": creds.client_id}) == '{"id": "1"}'
