"""Dhan codec on byte fixtures laid out from the documented offsets, plus requests, round trips and bad input."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openalgo_proxy.brokers.dhan import codec
from openalgo_proxy.brokers.dhan.codec import (
    DepthPacket,
    DepthRow,
    DhanCodecError,
    DisconnectPacket,
    FullPacket,
    MarketStatusPacket,
    OiPacket,
    PrevClosePacket,
    QuotePacket,
    RequestCode,
    Segment,
    TickerPacket,
    WireInstrument,
    decode_depth_frame,
    decode_frame,
    decode_request,
    encode_depth_packet,
    encode_packet,
    packets_from_tick,
    to_tick,
)
from openalgo_proxy.brokers.market import UNIVERSE, SimulatedMarket
from openalgo_proxy.model import DepthLevel, Mode

FIXTURES = Path(__file__).parents[2] / "fixtures" / "dhan"
EXPECTED: dict[str, dict[str, Any]] = json.loads((FIXTURES / "expected.json").read_text())
MARKET = sorted(name for name, case in EXPECTED.items() if "levels" not in case)
DEPTH = sorted(name for name, case in EXPECTED.items() if "levels" in case)
KINDS: dict[str, type] = {
    "ticker": TickerPacket,
    "quote": QuotePacket,
    "full": FullPacket,
    "oi": OiPacket,
    "prev_close": PrevClosePacket,
    "market_status": MarketStatusPacket,
    "disconnect": DisconnectPacket,
    "depth": DepthPacket,
}


def _levels(levels: tuple[DepthLevel, ...]) -> list[list[float]]:
    return [[lv.price, lv.quantity, lv.orders] for lv in levels]


def _first(data: bytes) -> codec.TickPacket:
    packet = decode_frame(data)[0]
    assert isinstance(packet, TickerPacket | QuotePacket | FullPacket)
    return packet


def _check_packet(packet: object, want: dict[str, Any]) -> None:
    assert type(packet) is KINDS[want["kind"]]
    for field, value in want.items():
        if field == "kind":
            continue
        got = getattr(packet, field)
        if field == "depth":
            got = [[r.bid_quantity, r.ask_quantity, r.bid_orders, r.ask_orders, r.bid_price, r.ask_price] for r in got]
        elif field == "rows":
            got = [[r.price, r.quantity, r.orders] for r in got]
            value = [list(r) for r in value]
        assert got == value, field


@pytest.mark.parametrize("name", MARKET)
def test_market_fixture_decodes_to_documented_values(name: str) -> None:
    case = EXPECTED[name]
    packets = decode_frame((FIXTURES / f"{name}.bin").read_bytes())
    assert len(packets) == len(case["packets"])
    for packet, want in zip(packets, case["packets"], strict=True):
        _check_packet(packet, want)
    tick_packets = [p for p in packets if isinstance(p, TickerPacket | QuotePacket | FullPacket)]
    for packet, want in zip(tick_packets, case["ticks"], strict=False):
        tick = to_tick(packet, case["symbol"], case["exchange"])
        assert (tick.symbol, tick.exchange) == (case["symbol"], case["exchange"])
        for field, value in want.items():
            got = getattr(tick, field)
            if field in ("bids", "asks"):
                got = _levels(got)
            elif field == "mode":
                got = int(got)
            assert got == value, field


@pytest.mark.parametrize("name", DEPTH)
def test_depth_fixture_decodes_to_documented_values(name: str) -> None:
    case = EXPECTED[name]
    packets = decode_depth_frame((FIXTURES / f"{name}.bin").read_bytes(), case["levels"])
    assert len(packets) == len(case["packets"])
    for packet, want in zip(packets, case["packets"], strict=True):
        _check_packet(packet, want)


def test_every_packet_kind_and_segment_is_covered() -> None:
    kinds = {p["kind"] for case in EXPECTED.values() for p in case["packets"]}
    assert kinds == set(KINDS)
    for kind in ("ticker", "quote", "full"):
        segments = {p["segment"] for c in EXPECTED.values() for p in c["packets"] if p["kind"] == kind}
        assert segments == {int(s) for s in Segment}, kind
    reasons = {p["reason"] for c in EXPECTED.values() for p in c["packets"] if p["kind"] == "disconnect"}
    assert reasons == {805, 806, 807, 808, 809}


def test_fixture_bytes_reencode_identically() -> None:
    for name in MARKET:
        data = (FIXTURES / f"{name}.bin").read_bytes()
        assert b"".join(encode_packet(p) for p in decode_frame(data)) == data, name
    for name in DEPTH:
        data = (FIXTURES / f"{name}.bin").read_bytes()
        levels = EXPECTED[name]["levels"]
        assert b"".join(encode_depth_packet(p, levels) for p in decode_depth_frame(data, levels)) == data, name


def test_ohlc_order_is_open_close_high_low() -> None:
    data = (FIXTURES / "quote_nse_eq.bin").read_bytes()
    open_, close, high, low = struct.unpack_from("<ffff", data, 34)
    tick = to_tick(_first(data), "RELIANCE", "NSE")
    assert (tick.open, tick.close, tick.high, tick.low) == (
        round(open_, 2),
        round(close, 2),
        round(high, 2),
        round(low, 2),
    )
    assert tick.high > tick.open > tick.close > tick.low  # fixture values are distinct on purpose


def test_sell_quantity_comes_before_buy() -> None:
    data = (FIXTURES / "full_nse_eq.bin").read_bytes()
    sell, buy = struct.unpack_from("<II", data, 26)
    tick = to_tick(_first(data), "RELIANCE", "NSE")
    assert (tick.total_sell_quantity, tick.total_buy_quantity) == (sell, buy) == (70_000, 50_000)


def test_full_depth_rows_are_split_into_bid_and_ask() -> None:
    tick = to_tick(_first((FIXTURES / "full_nse_eq.bin").read_bytes()), "RELIANCE", "NSE")
    assert [lv.price for lv in tick.bids] == [1485.0, 1484.95, 1484.9, 1484.85, 1484.8]
    assert [lv.price for lv in tick.asks] == [1485.1, 1485.15, 1485.2, 1485.25, 1485.3]
    assert [lv.orders for lv in tick.bids] == [1, 2, 3, 4, 5]
    assert [lv.orders for lv in tick.asks] == [11, 12, 13, 14, 15]


def test_currency_prices_keep_four_decimals() -> None:
    for name in ("full_nse_currency", "full_bse_currency"):
        tick = to_tick(_first((FIXTURES / f"{name}.bin").read_bytes()), "X", "CDS")
        assert tick.ltp in (89.1525, 89.1675)
        assert tick.bids[0].price == round(tick.ltp - 0.0025, 4)
        assert all(round(lv.price, 4) == lv.price for lv in tick.bids + tick.asks)
    # the same float32 in an equity segment rounds to paise
    assert codec.round_price(struct.unpack("<f", struct.pack("<f", 89.1525))[0], Segment.NSE_EQ) == 89.15


def test_same_security_id_in_two_segments_stays_two_instruments() -> None:
    packets = decode_frame((FIXTURES / "multi_packet_frame.bin").read_bytes())
    keys = [(p.segment, p.security_id) for p in packets if isinstance(p, TickerPacket)]
    assert keys == [(1, 2885), (3, 2885), (0, 13)]
    eq, cur = (p for p in packets if isinstance(p, TickerPacket) and p.security_id == 2885)
    assert isinstance(eq, TickerPacket) and isinstance(cur, TickerPacket)
    assert to_tick(eq, "RELIANCE", "NSE").ltp == 1485.05
    assert to_tick(cur, "EURINR", "CDS").ltp == 83.4375


def test_quote_takes_oi_and_previous_close_from_the_adapter() -> None:
    data = (FIXTURES / "quote_nse_fno.bin").read_bytes()
    quote, oi = decode_frame(data)
    assert isinstance(oi, OiPacket) and isinstance(quote, QuotePacket)
    assert to_tick(quote, "NIFTY30DEC25FUT", "NFO", oi=oi.oi).oi == oi.oi
    assert isinstance(quote, QuotePacket)
    quote.close = 0.0
    assert to_tick(quote, "NIFTY30DEC25FUT", "NFO", prev_close=26100.5).close == 26100.5


def test_disconnect_messages() -> None:
    packet = decode_frame((FIXTURES / "disconnect_807.bin").read_bytes())[0]
    assert isinstance(packet, DisconnectPacket)
    assert packet.reason == codec.DisconnectReason.TOKEN_EXPIRED
    assert "expired" in packet.message


def test_200_depth_row_count_comes_from_the_header() -> None:
    bid, ask = decode_depth_frame((FIXTURES / "depth200_nse_eq.bin").read_bytes(), 200)
    assert isinstance(bid, DepthPacket) and isinstance(ask, DepthPacket)
    assert (len(bid.rows), len(ask.rows)) == (200, 137)
    assert bid.bid and not ask.bid


@pytest.mark.parametrize(
    "data",
    [
        b"\x02\x10",  # shorter than a header
        b"\x02\x10\x00\x01\x45\x0b\x00\x00\x00",  # Ticker header, body cut off
        b"\x08\x10\x00\x01\x45\x0b\x00\x00" + b"\x00" * 8,  # Full whose length field is too small
        b"\x63\x03\x00\x01\x00\x00\x00\x00",  # unknown code with a length below the header
    ],
)
def test_malformed_frames_raise(data: bytes) -> None:
    with pytest.raises(DhanCodecError):
        decode_frame(data)


def test_unknown_and_zero_codes_are_skipped_by_length() -> None:
    ticker = (FIXTURES / "ticker_nse_eq.bin").read_bytes()
    unknown = bytes([99, 12, 0, 1, 0, 0, 0, 0]) + b"\x00" * 4
    zero = bytes([0, 8, 0, 1, 0, 0, 0, 0])
    packets = decode_frame(unknown + ticker + zero)
    assert [type(p) for p in packets] == [TickerPacket]


def test_malformed_depth_frames_raise() -> None:
    with pytest.raises(DhanCodecError):
        decode_depth_frame(b"\x00" * 11)
    with pytest.raises(DhanCodecError):
        decode_depth_frame(struct.pack("<hBBiI", 400, 41, 1, 2885, 1) + b"\x00" * 100)
    with pytest.raises(ValueError):
        decode_depth_frame(b"", 30)


# -- requests -------------------------------------------------------------------------------


def test_subscribe_requests_batch_100_with_segment_names() -> None:
    instruments = [WireInstrument(Segment.NSE_EQ, str(i)) for i in range(1, 251)]
    messages = codec.subscribe_requests(RequestCode.FULL, instruments)
    bodies = [json.loads(m) for m in messages]
    assert [b["InstrumentCount"] for b in bodies] == [100, 100, 50]
    assert all(b["RequestCode"] == 21 for b in bodies)
    assert bodies[0]["InstrumentList"][0] == {"ExchangeSegment": "NSE_EQ", "SecurityId": "1"}
    unsub = [json.loads(m) for m in codec.unsubscribe_requests(RequestCode.TICKER, instruments[:3])]
    assert unsub == [
        {
            "RequestCode": 16,
            "InstrumentCount": 3,
            "InstrumentList": [{"ExchangeSegment": "NSE_EQ", "SecurityId": s} for s in ("1", "2", "3")],
        }
    ]


def test_depth_requests() -> None:
    twenty = [
        json.loads(m) for m in codec.subscribe_requests(RequestCode.DEPTH, [WireInstrument(Segment.NSE_FNO, "1")] * 60)
    ]
    assert [b["InstrumentCount"] for b in twenty] == [50, 10]
    assert json.loads(codec.depth_200_request(WireInstrument(Segment.NSE_EQ, "1333"))) == {
        "RequestCode": 23,
        "ExchangeSegment": "NSE_EQ",
        "SecurityId": "1333",
    }
    assert (
        json.loads(codec.depth_200_request(WireInstrument(Segment.NSE_EQ, "1333"), subscribe=False))["RequestCode"]
        == 24
    )
    assert json.loads(codec.disconnect_request()) == {"RequestCode": 12}


def test_decode_request_reads_every_form() -> None:
    sent = codec.subscribe_requests(RequestCode.QUOTE, [WireInstrument(Segment.BSE_FNO, "1130203")])[0]
    assert decode_request(sent) == codec.Request(17, (WireInstrument(Segment.BSE_FNO, "1130203"),))
    assert decode_request('{"RequestCode":23,"ExchangeSegment":"NSE_EQ","SecurityId":"1333"}').instruments == (
        WireInstrument(Segment.NSE_EQ, "1333"),
    )
    assert decode_request('{"RequestCode":12}') == codec.Request(12)


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        '{"InstrumentList":[]}',
        '{"RequestCode":"15","InstrumentCount":0,"InstrumentList":[]}',
        '{"RequestCode":15,"InstrumentCount":2,"InstrumentList":[{"ExchangeSegment":"NSE_EQ","SecurityId":"1"}]}',
        '{"RequestCode":15,"InstrumentCount":1,"InstrumentList":[{"ExchangeSegment":"NYSE","SecurityId":"1"}]}',
        '{"RequestCode":15,"InstrumentCount":1,"InstrumentList":[{"ExchangeSegment":"NSE_EQ","SecurityId":"x"}]}',
        '{"RequestCode":15,"InstrumentList":"NSE_EQ"}',
    ],
)
def test_invalid_requests_raise(text: str) -> None:
    with pytest.raises(DhanCodecError):
        decode_request(text)


def test_request_over_100_instruments_is_refused() -> None:
    entries = [{"ExchangeSegment": "NSE_EQ", "SecurityId": str(i)} for i in range(101)]
    with pytest.raises(DhanCodecError):
        decode_request(json.dumps({"RequestCode": 15, "InstrumentCount": 101, "InstrumentList": entries}))


# -- round trips ----------------------------------------------------------------------------


def test_simulated_market_round_trips_through_every_code() -> None:
    market = SimulatedMarket(UNIVERSE, seed=3)
    for listing in UNIVERSE:
        tick = market.advance(listing.exchange, listing.symbol)
        currency = listing.exchange == "CDS"
        segment = Segment.NSE_CURRENCY if currency else Segment.NSE_EQ

        def q(value: float, currency: bool = currency) -> float:  # Dhan's precision: paise, or 1/10000 rupee
            return round(value, 4 if currency else 2)

        for code, mode in ((15, Mode.LTP), (17, Mode.QUOTE), (21, Mode.DEPTH)):
            frame = b"".join(encode_packet(p) for p in packets_from_tick(tick, code, segment, 7))
            packets = decode_frame(frame)
            (first,) = (p for p in packets if isinstance(p, TickerPacket | QuotePacket | FullPacket))
            oi = next((p.oi for p in packets if isinstance(p, OiPacket)), 0)
            back = to_tick(first, tick.symbol, tick.exchange, oi=oi)
            assert back.mode == mode
            assert back.ltp == q(tick.ltp), listing.symbol
            assert back.ltt == tick.ltt // 1000 * 1000
            if mode >= Mode.QUOTE:
                assert (back.open, back.high, back.low, back.close) == tuple(
                    q(v) for v in (tick.open, tick.high, tick.low, tick.close)
                )
                assert (back.volume, back.avg_trade_price, back.oi) == (tick.volume, q(tick.avg_trade_price), tick.oi)
                assert back.total_buy_quantity == tick.total_buy_quantity
            if mode == Mode.DEPTH:
                empty = (DepthLevel(0.0, 0, 0),) * 5  # an index has no book: five empty rows on the wire
                assert back.bids == (tick.bids + empty)[:5] and back.asks == (tick.asks + empty)[:5]


_price2 = st.integers(min_value=1, max_value=9_999_999).map(lambda p: p / 100)  # up to 99,999.99
_price4 = st.integers(min_value=1, max_value=9_999_999).map(lambda p: p / 10_000)  # up to 999.9999
_u32 = st.integers(min_value=0, max_value=2**32 - 1)
_u16 = st.integers(min_value=0, max_value=2**16 - 1)


@settings(max_examples=200, deadline=None)
@given(
    currency=st.booleans(),
    data=st.data(),
    security_id=_u32,
    ltq=_u16,
    ltt=_u32,
    quantities=st.lists(_u32, min_size=7, max_size=7),
    rows=st.lists(st.tuples(_u32, _u32, _u16, _u16), min_size=5, max_size=5),
)
def test_full_packet_round_trip(
    currency: bool,
    data: st.DataObject,
    security_id: int,
    ltq: int,
    ltt: int,
    quantities: list[int],
    rows: list[tuple[int, int, int, int]],
) -> None:
    prices = data.draw(st.lists(_price4 if currency else _price2, min_size=16, max_size=16))
    segment = Segment.NSE_CURRENCY if currency else Segment.NSE_FNO
    depth = tuple(
        codec.FullDepthRow(bq, aq, bo, ao, prices[6 + i], prices[11 + i]) for i, (bq, aq, bo, ao) in enumerate(rows)
    )
    packet = FullPacket(
        segment,
        security_id,
        prices[0],
        ltq,
        ltt,
        prices[1],
        quantities[0],
        quantities[1],
        quantities[2],
        quantities[3],
        quantities[4],
        quantities[5],
        prices[2],
        prices[3],
        prices[4],
        prices[5],
        depth,
    )
    frame = encode_packet(packet)
    (decoded,) = decode_frame(frame)
    assert isinstance(decoded, FullPacket)
    assert (decoded.security_id, decoded.ltq, decoded.ltt, decoded.oi) == (security_id, ltq, ltt, quantities[3])
    tick = to_tick(decoded, "S", "X")
    assert tick.ltp == prices[0]
    assert tick.avg_trade_price == prices[1]
    assert (tick.open, tick.close, tick.high, tick.low) == (prices[2], prices[3], prices[4], prices[5])
    assert [lv.price for lv in tick.bids] == prices[6:11]
    assert [lv.price for lv in tick.asks] == prices[11:16]
    assert [lv.quantity for lv in tick.bids] == [r[0] for r in rows]
    assert [lv.orders for lv in tick.asks] == [r[3] for r in rows]


@settings(max_examples=100, deadline=None)
@given(
    levels=st.sampled_from([20, 200]),
    sides=st.lists(
        st.tuples(
            st.booleans(),
            st.integers(min_value=-(2**31), max_value=2**31 - 1),
            st.lists(st.tuples(st.floats(allow_nan=False, allow_infinity=False), _u32, _u32), max_size=200),
        ),
        min_size=1,
        max_size=4,
    ),
)
def test_depth_frames_round_trip(levels: int, sides: list[tuple[bool, int, list[tuple[float, int, int]]]]) -> None:
    packets = [DepthPacket(bid, 1, sid, 0, tuple(DepthRow(*r) for r in rows[:levels])) for bid, sid, rows in sides]
    frame = b"".join(encode_depth_packet(p, levels) for p in packets)
    decoded = decode_depth_frame(frame, levels)
    assert len(decoded) == len(packets)
    for got, sent in zip(decoded, packets, strict=True):
        assert isinstance(got, DepthPacket)
        assert (got.bid, got.security_id) == (sent.bid, sent.security_id)
        if levels == 200:
            assert got.rows == sent.rows
        else:
            assert got.rows[: len(sent.rows)] == sent.rows
            assert len(got.rows) == 20


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_never_escape_as_other_errors(data: bytes) -> None:
    try:
        decode_frame(data)
    except DhanCodecError:
        pass
    try:
        decode_depth_frame(data, 20)
        decode_depth_frame(data, 200)
    except DhanCodecError:
        pass


def test_bench_row_measures_full_packets() -> None:
    """The `make bench` Dhan row decodes and normalises every Full packet of its frames (rate > 0)."""
    from bench import dhan_codec

    frames = dhan_codec.make_frames(40, per_frame=8)
    assert len(frames) == 5 and all(len(decode_frame(f)) == 8 for f in frames)
    assert dhan_codec.run_once(frames) > 0
