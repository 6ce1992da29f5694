"""Conformance with Dhan's official SDK, `dhanhq` 2.3.0 (pinned in requirements/dev.txt).

1. Its parsers (`MarketFeed.process_data`, `FullDepth.process_data`, run without a socket) decode our
   fixtures and our simulator's packets to the values we meant, and equal our codec's decode.
2. Its `MarketFeed` connects to our simulator with its own URL and requests, subscribes and
   receives every packet kind; each message it parsed equals our decode of the frame we sent.
3. Its `FullDepth` connects to our 20- and 200-level depth feeds and pairs our bid and ask packets.
4. Its `OrderUpdate` logs in to our order-update socket and receives our `order_alert`.
The SDK parses only the first packet of a frame, so the simulator runs with one packet per frame.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from openalgo_proxy.brokers.dhan import codec
from openalgo_proxy.brokers.dhan.codec import (
    DepthPacket,
    DisconnectPacket,
    FullPacket,
    MarketStatusPacket,
    OiPacket,
    PrevClosePacket,
    QuotePacket,
    TickerPacket,
    decode_depth_frame,
    decode_frame,
    to_tick,
)
from openalgo_proxy.brokers.dhan.instruments import listing_key
from openalgo_proxy.brokers.dhan.simulator import DhanSimulator
from openalgo_proxy.brokers.market import UNIVERSE, SimulatedMarket

pytestmark = pytest.mark.timeout(60)

FIXTURES = Path(__file__).parents[2] / "fixtures" / "dhan"
EXPECTED: dict[str, dict[str, Any]] = json.loads((FIXTURES / "expected.json").read_text())

dhanhq = pytest.importorskip("dhanhq")


def test_sdk_version_is_the_pinned_one() -> None:
    assert importlib.metadata.version("dhanhq") == "2.3.0"


def _parser() -> Any:
    feed = object.__new__(dhanhq.MarketFeed)  # its parsers need no socket and no constructor
    feed.on_close = None  # its disconnect parser calls this
    return feed


def _depth_parser(levels: int) -> Any:
    fd = object.__new__(dhanhq.FullDepth)
    fd.depth_level = levels
    return fd


def _f2(value: float) -> str:
    return f"{value:.2f}"


def assert_sdk_equals(sdk: Any, packet: codec.MarketPacket) -> None:
    """The SDK's dict for a packet equals our typed packet, field by field (SDK prices are "%.2f")."""
    if isinstance(packet, DisconnectPacket | MarketStatusPacket):
        return  # the SDK prints for these and returns None or a fixed string
    assert sdk["exchange_segment"] == packet.segment
    assert sdk["security_id"] == packet.security_id
    if isinstance(packet, TickerPacket):
        assert sdk["type"] == "Ticker Data"
        assert sdk["LTP"] == _f2(packet.ltp)
        return
    if isinstance(packet, OiPacket):
        assert (sdk["type"], sdk["OI"]) == ("OI Data", packet.oi)
        return
    if isinstance(packet, PrevClosePacket):
        assert sdk["type"] == "Previous Close"
        assert (sdk["prev_close"], sdk["prev_OI"]) == (_f2(packet.prev_close), packet.prev_oi)
        return
    assert isinstance(packet, QuotePacket | FullPacket)
    assert sdk["LTP"] == _f2(packet.ltp)
    assert sdk["LTQ"] == packet.ltq
    assert sdk["avg_price"] == _f2(packet.atp)
    assert sdk["volume"] == packet.volume
    assert sdk["total_sell_quantity"] == packet.total_sell_quantity
    assert sdk["total_buy_quantity"] == packet.total_buy_quantity
    assert (sdk["open"], sdk["close"], sdk["high"], sdk["low"]) == tuple(
        _f2(v) for v in (packet.open, packet.close, packet.high, packet.low)
    )
    if isinstance(packet, FullPacket):
        assert sdk["type"] == "Full Data"
        assert (sdk["OI"], sdk["oi_day_high"], sdk["oi_day_low"]) == (packet.oi, packet.oi_day_high, packet.oi_day_low)
        assert sdk["depth"] == [
            {
                "bid_quantity": r.bid_quantity,
                "ask_quantity": r.ask_quantity,
                "bid_orders": r.bid_orders,
                "ask_orders": r.ask_orders,
                "bid_price": _f2(r.bid_price),
                "ask_price": _f2(r.ask_price),
            }
            for r in packet.depth
        ]
    else:
        assert sdk["type"] == "Quote Data"


# -- 1. parsers on bytes ----------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(n for n, c in EXPECTED.items() if "levels" not in c))
def test_sdk_parses_each_fixture_packet_as_we_do(name: str) -> None:
    data = (FIXTURES / f"{name}.bin").read_bytes()
    at = 0
    parser = _parser()
    for packet in decode_frame(data):
        length = data[at + 1] | data[at + 2] << 8
        assert_sdk_equals(parser.process_data(data[at : at + length]), packet)
        at += length


def test_sdk_parses_simulator_packets_to_the_values_we_meant() -> None:
    """Every listing, every code: the SDK reads the simulated market's values from our bytes."""
    market = SimulatedMarket(UNIVERSE, seed=5)
    parser = _parser()
    for listing in UNIVERSE:
        tick = market.advance(listing.exchange, listing.symbol)
        segment, security_id = listing_key(listing)
        for code in (15, 17, 21):
            for packet in codec.packets_from_tick(tick, code, segment, security_id):
                data = codec.encode_packet(packet)
                sdk = parser.process_data(data)
                assert sdk["security_id"] == security_id and sdk["exchange_segment"] == segment
                if isinstance(packet, OiPacket):
                    assert sdk["OI"] == tick.oi
                    continue
                if listing.exchange != "CDS":  # "%.2f" cannot show four decimals; compared as floats below
                    assert sdk["LTP"] == _f2(tick.ltp)
                if code >= 17:
                    assert (sdk["volume"], sdk["total_buy_quantity"], sdk["total_sell_quantity"]) == (
                        tick.volume,
                        tick.total_buy_quantity,
                        tick.total_sell_quantity,
                    )
                    if listing.exchange != "CDS":
                        assert (sdk["open"], sdk["high"], sdk["low"], sdk["close"]) == tuple(
                            _f2(v) for v in (tick.open, tick.high, tick.low, tick.close)
                        )
                if code == 21 and tick.bids and listing.exchange != "CDS":
                    assert [d["bid_price"] for d in sdk["depth"]] == [_f2(lv.price) for lv in tick.bids]
                    assert [d["ask_quantity"] for d in sdk["depth"]] == [lv.quantity for lv in tick.asks]
                ours = decode_frame(data)[0]
                assert_sdk_equals(sdk, ours)
                assert isinstance(ours, TickerPacket | QuotePacket | FullPacket)
                back = to_tick(ours, listing.symbol, listing.exchange)
                digits = 4 if listing.exchange == "CDS" else 2
                assert back.ltp == round(tick.ltp, digits)


def _sdk_depth_sides(levels: int, frame: bytes) -> list[dict[str, Any]]:
    parser = _depth_parser(levels)
    out = []
    remaining: bytes | None = frame
    while remaining:
        update = parser.process_data(remaining)
        if not update:
            break
        remaining = update.pop("remaining_data", None)
        out.append(update)
    return out


@pytest.mark.parametrize("name", sorted(n for n, c in EXPECTED.items() if "levels" in c and "disconnect" not in n))
def test_sdk_full_depth_parses_depth_fixtures_as_we_do(name: str) -> None:
    levels = EXPECTED[name]["levels"]
    data = (FIXTURES / f"{name}.bin").read_bytes()
    ours = decode_depth_frame(data, levels)
    theirs = _sdk_depth_sides(levels, data)
    assert len(theirs) == len(ours)
    for sdk, packet in zip(theirs, ours, strict=True):
        assert isinstance(packet, DepthPacket)
        assert sdk["type"] == ("Bid" if packet.bid else "Ask")
        assert (sdk["exchange_segment"], sdk["security_id"]) == (packet.segment, packet.security_id)
        assert [(d["price"], d["quantity"], d["orders"]) for d in sdk["depth"]] == [
            (r.price, r.quantity, r.orders) for r in packet.rows
        ]


# -- 2-4. the SDK's clients against the simulator ----------------------------------------------


@pytest.fixture
def sim() -> Iterator[DhanSimulator]:
    """A simulator on its own loop in a thread (the SDK runs its own loop in the test thread)."""
    loop = asyncio.new_event_loop()
    simulator = DhanSimulator(packets_per_frame=1, ticks_per_second=20, seed=9)
    started = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(simulator.start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, name="dhan-sim", daemon=True)
    thread.start()
    assert started.wait(10)
    simulator.loop = loop  # type: ignore[attr-defined]
    yield simulator
    asyncio.run_coroutine_threadsafe(simulator.stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def _on(sim: DhanSimulator, coro: Any) -> Any:
    return asyncio.run_coroutine_threadsafe(coro, sim.loop).result(10)  # type: ignore[attr-defined]


def test_sdk_market_feed_connects_subscribes_and_receives(sim: DhanSimulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dhanhq.MarketFeed, "market_feed_wss", sim.ws_url)
    ctx = dhanhq.DhanContext(sim.client_id, sim.access_token)
    instruments = [(1, "2885", 15), (2, "52175", 17), (0, "13", 21), (3, "1185", 21)]
    feed = dhanhq.MarketFeed(ctx, instruments, version="v2")
    try:
        feed.loop.run_until_complete(feed.connect())
        received = [feed.get_data() for _ in range(40)]
    finally:
        feed.close_connection()
        feed.loop.close()
    # its own requests reached us as it sent them
    subscribed = {(r.code, int(i.segment), i.security_id) for r in sim.requests for i in r.instruments}
    assert subscribed == {(code, seg, sid) for seg, sid, code in instruments}
    kinds = {d["type"] for d in received if isinstance(d, dict)}
    assert {"Ticker Data", "Quote Data", "Full Data", "Previous Close", "OI Data"} <= kinds
    # every message it parsed equals our decode of the frame we sent (one packet per frame)
    frames = [frame for _, frame in sim.history][: len(received)]
    assert len(frames) == len(received)
    for sdk, frame in zip(received, frames, strict=True):
        (packet,) = decode_frame(frame)
        assert_sdk_equals(sdk, packet)
    # the SDK's close: RequestCode 12 then an 83-byte binary header, both tolerated
    assert any(r.code == 12 for r in sim.requests)


@pytest.mark.parametrize(("levels", "path"), [(20, "depth_20_url"), (200, "depth_200_url"), (200, "ws_url")])
def test_sdk_full_depth_connects_and_pairs_our_books(sim: DhanSimulator, levels: int, path: str) -> None:
    ctx = dhanhq.DhanContext(sim.client_id, sim.access_token)
    depth = dhanhq.FullDepth(ctx, [(1, "2885")], depth_level=levels)
    depth.ws_url = getattr(sim, path)  # ws_url ends in "/": the SDK's own 200-depth URL
    books: list[dict[str, Any]] = []
    depth.on_ticks = books.append
    try:
        depth.loop.run_until_complete(depth.connect())
        for _ in range(3):
            depth.get_data()
    finally:
        depth.loop.run_until_complete(depth.ws.close())
        depth.loop.close()
    assert len(books) >= 3
    assert all(b["security_id"] == 2885 and b["exchange_segment"] == 1 for b in books)
    assert all(len(b["depth"]) == levels for b in books)
    kind = "depth20" if levels == 20 else "depth200"
    frames = [f for _, f in sim.history]
    sides = [p for f in frames for p in decode_depth_frame(f, levels) if isinstance(p, DepthPacket)]
    assert sides and all(len(p.rows) == levels for p in sides)
    assert any(r.code == 23 for r in sim.requests)
    assert kind in {"depth20", "depth200"}


def test_sdk_order_update_logs_in_and_receives_alerts(sim: DhanSimulator) -> None:
    ctx = dhanhq.DhanContext(sim.client_id, sim.access_token)
    client = dhanhq.OrderUpdate(ctx)
    client.order_feed_wss = sim.order_update_url
    received: list[dict[str, Any]] = []
    got = threading.Event()

    def on_update(message: dict[str, Any]) -> None:
        received.append(message)
        got.set()

    client.on_update = on_update
    thread = threading.Thread(target=client.connect_to_dhan_websocket_sync, daemon=True)
    thread.start()

    async def push_when_logged_in() -> int:
        for _ in range(500):
            if sim.order_logins:
                return await sim.push_order({"orderNo": "1125120900001", "status": "TRADED", "symbol": "RELIANCE"})
            await asyncio.sleep(0.01)
        return 0

    assert _on(sim, push_when_logged_in()) == 1
    assert got.wait(10)
    assert sim.order_logins[0] == {
        "LoginReq": {"MsgCode": 42, "ClientId": sim.client_id, "Token": sim.access_token},
        "UserType": "SELF",
    }
    assert received[0]["Type"] == "order_alert"
    assert received[0]["Data"]["orderNo"] == "1125120900001"
    _on(sim, sim.stop())
    thread.join(10)


def test_sdk_market_feed_reads_our_disconnect_packet(
    sim: DhanSimulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(dhanhq.MarketFeed, "market_feed_wss", sim.ws_url)
    closed: list[object] = []
    feed = dhanhq.MarketFeed(
        dhanhq.DhanContext(sim.client_id, sim.access_token), [(1, "2885", 15)], version="v2", on_close=closed.append
    )
    try:
        feed.loop.run_until_complete(feed.connect())
        feed.get_data()  # the previous close sent on subscribe
        _on(sim, sim.rotate_token("next-day"))  # the open connection gets 807
        message: Any = "first"
        while message is not None:  # ticks already in flight, then the disconnect (parsed to None)
            message = feed.get_data()
    finally:
        feed.loop.close()
    assert closed == [feed]
    assert "Access Token is expired" in capsys.readouterr().out
