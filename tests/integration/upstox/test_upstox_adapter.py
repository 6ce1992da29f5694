"""The Upstox adapter against the Upstox simulator on loopback: modes and change_mode, the merge of
partial updates, reconnect and exact resubscribe, token rotation, idle pings, the caps, 30-level
books and order updates."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import msgspec
import pytest

from openalgo_proxy import control
from openalgo_proxy.brokers.base import ConnectionState, FeedOptions
from openalgo_proxy.brokers.market import NIFTY50, Listing
from openalgo_proxy.brokers.upstox.adapter import UpstoxAdapter
from openalgo_proxy.brokers.upstox.credentials import UpstoxCredentials
from openalgo_proxy.brokers.upstox.instruments import listing_key
from openalgo_proxy.errors import ErrorCode
from openalgo_proxy.model import DepthLevel, Mode
from tests.integration.upstox.conftest import sim_options, until

pytestmark = pytest.mark.timeout(60)

RELIANCE_KEY = "NSE_EQ|INE002A01018"


async def test_modes_map_to_ltpc_and_full_and_changes_use_change_mode(harness: Any) -> None:
    h = await harness({"ticks_per_second": 20})
    rel, tcs, nifty = h.instrument("NSE", "RELIANCE"), h.instrument("NSE", "TCS"), h.instrument("NSE_INDEX", "NIFTY")
    await h.adapter.set_wanted({rel: Mode.DEPTH, tcs: Mode.LTP, nifty: Mode.QUOTE})
    tcs_key = h.adapter.wire_key(tcs)
    expected = {RELIANCE_KEY: "full", tcs_key: "ltpc", "NSE_INDEX|Nifty 50": "full"}
    await until(lambda: h.sim.subscribed() == expected, what="the subscriptions")
    await until(lambda: all(h.ticks_for(s) for s in ("RELIANCE", "TCS", "NIFTY")), what="ticks of all three")
    assert h.ticks_for("RELIANCE")[-1].mode is Mode.DEPTH and len(h.ticks_for("RELIANCE")[-1].bids) == 5
    assert h.ticks_for("TCS")[-1].mode is Mode.LTP
    nifty_tick = h.ticks_for("NIFTY")[-1]
    assert nifty_tick.mode is Mode.DEPTH and nifty_tick.bids == () and nifty_tick.close == 26050.0
    before = len(h.sim.requests)
    await h.adapter.set_wanted({rel: Mode.LTP, tcs: Mode.QUOTE})
    await until(lambda: h.sim.subscribed() == {RELIANCE_KEY: "ltpc", tcs_key: "full"}, what="the new modes")
    assert sorted((r.method, tuple(r.keys), r.mode) for r in h.sim.requests[before:]) == [
        ("change_mode", (RELIANCE_KEY,), "ltpc"),
        ("change_mode", (tcs_key,), "full"),
        ("unsub", ("NSE_INDEX|Nifty 50",), None),
    ]
    assert h.sim.text_frames == 0 and h.sim.invalid_requests == 0 and h.sim.redirects == 1
    assert h.adapter.status().state is ConnectionState.CONNECTED


def book(levels: tuple[DepthLevel, ...]) -> list[tuple[float, int]]:
    """Price and quantity per level (Upstox sends no order counts)."""
    return [(level.price, level.quantity) for level in levels]


async def test_partial_updates_are_merged_into_whole_ticks(harness: Any) -> None:
    h = await harness({"ticks_per_second": 30, "partial_every": 2})
    await h.adapter.set_wanted({h.instrument("NSE", "RELIANCE"): Mode.DEPTH})
    await until(lambda: len(h.ticks_for("RELIANCE")) >= 8, within=10, what="eight ticks")
    sent = [m[RELIANCE_KEY] for _, m in list(h.sim.meant) if RELIANCE_KEY in m]
    ticks = h.ticks_for("RELIANCE")
    assert any(m.book_only for m in sent[: len(ticks)])
    last_trade = None
    for meant, tick in zip(sent, ticks, strict=False):
        if not meant.book_only:
            last_trade = meant.tick
        assert last_trade is not None
        # the trade fields are the last full update's; the book and its totals are this update's
        assert (tick.ltp, tick.ltt, tick.volume, tick.open) == (
            last_trade.ltp,
            last_trade.ltt,
            last_trade.volume,
            last_trade.open,
        )
        assert book(tick.bids) == book(meant.tick.bids) and book(tick.asks) == book(meant.tick.asks)
        assert tick.total_buy_quantity == meant.tick.total_buy_quantity


async def test_reconnect_resubscribes_exactly_through_a_new_authorised_url(harness: Any) -> None:
    h = await harness({"ticks_per_second": 20})
    wanted = {h.instrument("NSE", "RELIANCE"): Mode.DEPTH, h.instrument("NSE", "SBIN"): Mode.LTP}
    await h.adapter.set_wanted(wanted)
    await until(lambda: len(h.sim.subscribed()) == 2, what="two subscriptions")
    before = h.sim.subscribed()
    requests_before = len(h.sim.requests)
    assert h.sim.drop_connections() == 1
    await until(lambda: h.sim.redirects == 2 and h.sim.subscribed() == before, within=10, what="the resubscription")
    assert sorted((r.method, r.mode) for r in h.sim.requests[requests_before:]) == [("sub", "full"), ("sub", "ltpc")]
    await until(lambda: h.adapter.status().reconnects == 1, what="one reconnect counted")
    count = len(h.ticks)
    await until(lambda: len(h.ticks) > count, what="ticks after the reconnect")


async def test_a_new_token_is_read_from_the_token_file_after_a_401(harness: Any, tmp_path: Path) -> None:
    token_file = tmp_path / "upstox.token"
    token_file.write_text("sim-upstox-access-token\n")
    h = await harness({"ticks_per_second": 20}, credentials=UpstoxCredentials(token_file=str(token_file)))
    await h.adapter.set_wanted({h.instrument("NSE", "INFY"): Mode.QUOTE})
    await until(lambda: h.ticks_for("INFY"), what="first ticks")
    await h.sim.rotate_token("next-day-token")  # 03:30 IST: the old token stops working
    await until(lambda: h.sim.rejections[401] >= 1, what="the old token refused")
    token_file.write_text("next-day-token\n")
    count = len(h.ticks)
    await until(lambda: len(h.ticks) > count + 2, within=10, what="ticks on the new token")
    assert h.sim.authorization_headers[-1] == "Bearer next-day-token"


async def test_refused_credentials_back_off_and_report_it(harness: Any) -> None:
    h = await harness({"ticks_per_second": 20}, credentials=UpstoxCredentials("wrong-token"))
    await h.adapter.set_wanted({h.instrument("NSE", "INFY"): Mode.LTP})
    await until(lambda: h.sim.rejections[401] >= 2, what="two refused handshakes")
    assert h.adapter.status().state in (ConnectionState.BACKING_OFF, ConnectionState.CONNECTING)
    assert not h.ticks and not h.sim.connections()


async def test_idle_pings_keep_a_quiet_connection_alive_and_silence_is_a_stall(harness: Any) -> None:
    h = await harness({"ticks_per_second": 0, "ping_interval": 0.1}, options={"stall_timeout": 0.6})
    await h.adapter.set_wanted({h.instrument("NSE", "INFY"): Mode.LTP})
    await until(lambda: h.sim.pings_sent >= 12, within=10, what="server pings on a quiet connection")
    status = h.adapter.status()
    assert status.extra["stalls"] == 0 and status.reconnects == 0 and status.extra["heartbeats"] >= 10
    h.sim.mute = True  # no pings, no data: a stalled upstream
    await until(lambda: h.adapter.status().extra["stalls"] >= 1, within=10, what="a stall")


async def test_one_connection_per_user(harness: Any) -> None:
    h = await harness({"ticks_per_second": 20})
    await h.adapter.set_wanted({h.instrument("NSE", "INFY"): Mode.LTP})
    await until(lambda: len(h.sim.connections()) == 1, what="the first connection")
    second = UpstoxAdapter(
        sim_options(h.sim), UpstoxCredentials(h.sim.access_token), backoff_base=0.05, backoff_cap=0.2, backoff_long=0.2
    )
    await second.start(lambda _: None, lambda _: None)
    try:
        infy = second.lookup("NSE", "INFY")
        assert infy is not None
        await second.set_wanted({infy: Mode.LTP})
        await until(lambda: h.sim.rejections[429] >= 1, what="the second connection refused")
        assert len(h.sim.connections()) == 1 and second.status().state is not ConnectionState.CONNECTED
    finally:
        await second.stop()


def many_equities(count: int) -> tuple[Listing, ...]:
    template = NIFTY50[0]
    return tuple(
        dataclasses.replace(
            template,
            symbol=f"EQ{i:05d}",
            angel_token=str(30000 + i),
            exchange_token=str(30000 + i),
            isin=f"INE{30000 + i:09d}",  # a key of its own (Upstox keys equities by ISIN)
            name=f"EQ {i}",
        )
        for i in range(count)
    )


async def test_caps_per_mode_refuse_newcomers_with_limit_exceeded(harness: Any) -> None:
    listings = many_equities(2101)
    h = await harness({"ticks_per_second": 0, "listings": listings})
    names = [lst.symbol for lst in listings]
    full = {h.instrument("NSE", name): Mode.QUOTE for name in names[:2001]}
    await h.adapter.set_wanted(full)
    assert [(r.instrument.symbol, r.code) for r in h.rejections] == [("EQ02000", ErrorCode.LIMIT_EXCEEDED)]
    assert "full 2000" in h.rejections[0].message
    await until(lambda: len(h.sim.subscribed()) == 2000, within=15, what="2000 full subscriptions")
    # 1600 full alone is within the individual cap; one ltpc more would make the combined cap (full
    # 1500) apply, so the newcomer is refused and the placed ones stay
    h.rejections.clear()
    mixed = {h.instrument("NSE", name): Mode.DEPTH for name in names[:1600]}
    mixed[h.instrument("NSE", names[2100])] = Mode.LTP
    await h.adapter.set_wanted(mixed)
    assert [(r.instrument.symbol, r.mode, r.code) for r in h.rejections] == [
        ("EQ02100", Mode.LTP, ErrorCode.LIMIT_EXCEEDED)
    ]
    await until(lambda: len(h.sim.subscribed()) == 1600, within=15, what="1600 full subscriptions")
    assert h.sim.refused_requests == 0  # the adapter never asks past a cap
    # the refusal is reported once while the instrument stays wanted
    await h.adapter.set_wanted(mixed)
    assert len(h.rejections) == 1


async def test_thirty_level_books(harness: Any) -> None:
    h = await harness({"ticks_per_second": 20})
    infy, nifty = h.instrument("NSE", "INFY"), h.instrument("NSE_INDEX", "NIFTY")
    assert h.adapter.depth_levels(infy) == (5, 30) and h.adapter.depth_levels(nifty) == (5,)
    await h.adapter.set_wanted({infy: Mode.DEPTH, nifty: Mode.DEPTH})
    await h.adapter.set_wanted_depth({infy: 30, nifty: 30})
    assert [(r.instrument.symbol, r.code, r.depth) for r in h.rejections] == [("NIFTY", ErrorCode.INVALID_DEPTH, 30)]
    key = h.adapter.wire_key(infy)
    await until(lambda: h.sim.subscribed().get(key) == "full_d30", what="full_d30 upstream")
    await until(lambda: len(h.ticks_for("INFY", depth=30)) >= 2, what="30-level ticks")
    deep = h.ticks_for("INFY", depth=30)[-1]
    assert len(deep.bids) == 30 and len(deep.asks) == 30 and deep.ltp > 0
    standard = h.ticks_for("INFY")[-1]
    assert len(standard.bids) == 5 and standard.bids == deep.bids[:5]
    # back to five levels: one change_mode to full
    before = len(h.sim.requests)
    await h.adapter.set_wanted_depth({})
    await until(lambda: h.sim.subscribed().get(key) == "full", what="full again")
    assert [(r.method, r.mode) for r in h.sim.requests[before:]] == [("change_mode", "full")]


async def test_thirty_level_books_need_upstox_plus(harness: Any) -> None:
    h = await harness({"ticks_per_second": 0}, credentials=UpstoxCredentials("sim-upstox-access-token"))
    infy = h.instrument("NSE", "INFY")
    assert h.adapter.depth_levels(infy) == (5,)
    await h.adapter.set_wanted({infy: Mode.DEPTH})
    await h.adapter.set_wanted_depth({infy: 30})
    assert [(r.code, r.depth) for r in h.rejections] == [(ErrorCode.INVALID_DEPTH, 30)]
    assert "Upstox Plus" in h.rejections[0].message


async def test_the_51st_thirty_level_book_is_refused_and_streams_five_levels(harness: Any) -> None:
    equities = many_equities(51)
    h = await harness({"ticks_per_second": 0, "listings": equities})
    wanted = {h.instrument("NSE", lst.symbol): Mode.DEPTH for lst in equities[:51]}
    await h.adapter.set_wanted(wanted)
    await h.adapter.set_wanted_depth(dict.fromkeys(wanted, 30))
    assert [(r.instrument.symbol, r.code, r.depth) for r in h.rejections] == [
        (equities[50].symbol, ErrorCode.LIMIT_EXCEEDED, 30)
    ]
    last = listing_key(equities[50])
    await until(lambda: len(h.sim.subscribed()) == 51, what="51 subscriptions")
    modes = h.sim.subscribed()
    assert modes[last] == "full" and sum(1 for m in modes.values() if m == "full_d30") == 50


async def test_order_updates_from_the_portfolio_stream(harness: Any) -> None:
    h = await harness({"ticks_per_second": 0})
    events: list[Any] = []
    h.adapter.set_order_sink(events.append)
    await until(lambda: h.sim.connections("orders"), what="the portfolio stream")
    sent = await h.sim.push_order(
        {
            "user_id": "AB1234",
            "instrument_key": RELIANCE_KEY,
            "trading_symbol": "RELIANCE",
            "order_id": "250101000000001",
            "transaction_type": "SELL",
            "quantity": 5,
            "filled_quantity": 5,
            "pending_quantity": 0,
            "average_price": 1490.5,
            "price": 0,
            "order_type": "MARKET",
            "product": "I",
            "status": "complete",
        }
    )
    assert sent == 1
    await until(lambda: events, what="the order event")
    assert events[0]["orderid"] == "250101000000001" and events[0]["order_status"] == "complete"
    assert (events[0]["symbol"], events[0]["exchange"], events[0]["broker"]) == ("RELIANCE", "NSE", "upstox")
    # what the feed publishes on #orders|upstox|AB1234: the event must be a whole control.OrderUpdate
    assert msgspec.convert(events[0], control.OrderUpdate).user_id == "AB1234"
    assert h.sim.authorization_headers[-1] == "Bearer sim-upstox-access-token"
    assert h.adapter.status().extra["order_updates"] == 1


async def test_missing_credentials_are_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from openalgo_proxy.errors import ConfigError

    for name in ("UPSTOX_ACCESS_TOKEN", "UPSTOX_ACCESS_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError, match="UPSTOX_ACCESS_TOKEN"):
        await asyncio.wait_for(UpstoxAdapter(FeedOptions()).start(lambda _: None, lambda _: None), 5)
