"""Angel codec on byte fixtures laid out from the documented offsets, plus round trips and bad input."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openalgo_proxy.brokers.angel import codec
from openalgo_proxy.brokers.angel.codec import (
    AngelCodecError,
    Depth20Packet,
    ErrorReply,
    MarketPacket,
    Pong,
    SubscriptionMode,
    decode_packet,
    encode_packet,
    packet_from_tick,
    to_tick,
)
from openalgo_proxy.brokers.angel.instruments import EXCHANGE_TYPES
from openalgo_proxy.brokers.market import UNIVERSE, SimulatedMarket
from openalgo_proxy.model import DepthLevel, Mode

FIXTURES = Path(__file__).parents[2] / "fixtures" / "angel"
EXPECTED: dict[str, dict[str, Any]] = json.loads((FIXTURES / "expected.json").read_text())


def _levels(levels: tuple[DepthLevel, ...]) -> list[list[float]]:
    return [[lv.price, lv.quantity, lv.orders] for lv in levels]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_decodes_to_documented_values(name: str) -> None:
    case = EXPECTED[name]
    data = (FIXTURES / f"{name}.bin").read_bytes()
    packet = decode_packet(data)
    assert packet.mode == case["mode"]
    assert packet.exchange_type == case["exchange_type"]
    assert packet.token == case["token"]
    for field, value in case["packet"].items():
        got = getattr(packet, field)
        if field in ("buy", "sell"):
            got = [[lv.quantity, lv.price, lv.orders] for lv in got]
        assert got == value, field
    tick = to_tick(packet, case["symbol"], case["exchange"])
    assert (tick.symbol, tick.exchange) == (case["symbol"], case["exchange"])
    for field, value in case["tick"].items():
        got = getattr(tick, field)
        if field in ("bids", "asks"):
            got = _levels(got)
        elif field == "mode":
            got = int(got)
        assert got == value, field


def test_every_mode_and_exchange_type_is_covered() -> None:
    covered = {(case["mode"], case["exchange_type"]) for case in EXPECTED.values()}
    etypes = {1, 2, 3, 4, 5, 7, 13}
    assert {(mode, etype) for mode in (1, 2, 3) for etype in etypes} | {(4, 1)} == covered


def test_fixture_bytes_reencode_identically() -> None:
    for name in EXPECTED:
        data = (FIXTURES / f"{name}.bin").read_bytes()
        assert encode_packet(decode_packet(data)) == data, name


def test_side_is_decided_by_flag_not_position() -> None:
    tick = to_tick(decode_packet((FIXTURES / "snapquote_nse_flags.bin").read_bytes()), "RELIANCE", "NSE")
    assert tick.bids[0].price == 1485.0 and tick.asks[0].price == 1485.05
    assert all(b.price < a.price for b, a in zip(tick.bids, tick.asks, strict=True))


def test_negative_change_keeps_ohlc() -> None:
    tick = to_tick(decode_packet((FIXTURES / "quote_nfo_negative_change.bin").read_bytes()), "X", "NFO")
    assert tick.ltp - tick.close == pytest.approx(-170.2)
    assert (tick.open, tick.high, tick.low) == (26200.0, 26245.9, 25980.0)


@pytest.mark.parametrize(
    "listing",
    [
        lst
        for lst in UNIVERSE
        if lst.symbol in {"RELIANCE", "NIFTY", "SENSEX"} or lst.name in {"USDINR", "CRUDEOIL", "BANKNIFTY"}
    ],
    ids=lambda lst: lst.symbol,
)
@pytest.mark.parametrize("mode", [1, 2, 3])
def test_simulator_encoding_round_trips_to_the_market_tick(listing: Any, mode: int) -> None:
    market = SimulatedMarket(UNIVERSE, seed=3)
    tick = market.advance(listing.exchange, listing.symbol)
    etype = int(EXCHANGE_TYPES[listing.exchange])
    packet = packet_from_tick(tick, mode, etype, listing.angel_token, 5)
    data = encode_packet(packet)
    assert len(data) == codec.PACKET_SIZES[mode]
    back = to_tick(decode_packet(data), listing.symbol, listing.exchange)
    assert back.mode == Mode(mode)
    assert back.ltp == tick.ltp
    assert back.exchange_time == tick.exchange_time
    if mode >= 2:
        for field in (
            "open",
            "high",
            "low",
            "close",
            "volume",
            "avg_trade_price",
            "last_trade_quantity",
            "total_buy_quantity",
            "total_sell_quantity",
        ):
            assert getattr(back, field) == getattr(tick, field), field
    if mode == 3:
        assert back.oi == tick.oi
        assert (back.upper_circuit, back.lower_circuit) == (tick.upper_circuit, tick.lower_circuit)
        expected_bids = tick.bids or (DepthLevel(0.0, 0, 0),) * 5
        expected_asks = tick.asks or (DepthLevel(0.0, 0, 0),) * 5
        assert back.bids == expected_bids and back.asks == expected_asks
        assert back.ltt == tick.ltt


def test_depth20_round_trip() -> None:
    market = SimulatedMarket(UNIVERSE, seed=4)
    tick = market.advance("NSE", "SBIN")
    packet = packet_from_tick(tick, SubscriptionMode.DEPTH_20, 1, "3045")
    assert isinstance(packet, Depth20Packet)
    data = encode_packet(packet)
    assert len(data) == 443
    back = decode_packet(data)
    assert back == packet
    assert to_tick(back, "SBIN", "NSE").bids == tick.bids


prices = st.integers(min_value=-(2**63), max_value=2**63 - 1)
tokens = st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-", min_size=1, max_size=25)


@settings(max_examples=150, deadline=None)
@given(
    mode=st.sampled_from([1, 2, 3]),
    etype=st.sampled_from([1, 2, 3, 4, 5, 7, 13]),
    token=tokens,
    values=st.lists(prices, min_size=20, max_size=20),
    flags=st.lists(st.sampled_from([0, 1]), min_size=10, max_size=10),
)
def test_encode_decode_round_trip_property(
    mode: int, etype: int, token: str, values: list[int], flags: list[int]
) -> None:
    packet = MarketPacket(mode, etype, token, values[0], values[1], values[2])
    if mode >= 2:
        packet.last_traded_quantity, packet.average_traded_price, packet.volume = values[3:6]
        packet.total_buy_quantity, packet.total_sell_quantity = float(values[6] % 10**9), 0.5
        packet.open, packet.high, packet.low, packet.close = values[7:11]
    if mode == 3:
        packet.last_traded_timestamp, packet.open_interest = values[11:13]
        packet.best_five = tuple(codec.BestFiveRecord(f, values[13], values[14], i) for i, f in enumerate(flags))
        packet.upper_circuit, packet.lower_circuit, packet.week_52_high, packet.week_52_low = values[15:19]
    assert decode_packet(encode_packet(packet)) == packet


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=500))
def test_arbitrary_bytes_raise_only_codec_errors(data: bytes) -> None:
    try:
        packet = decode_packet(data)
    except AngelCodecError:
        return
    to_tick(packet, "X", "NSE")


@pytest.mark.parametrize(
    "data",
    [b"", b"\x01", b"\x09" + bytes(60), b"\x03\x01" + bytes(100), b"\x01\x01\xff\xfe" + bytes(47), bytes(51)],
    ids=["empty", "one-byte", "unknown-mode", "short-snapquote", "non-ascii-token", "mode-zero"],
)
def test_malformed_packets_raise_codec_error(data: bytes) -> None:
    with pytest.raises(AngelCodecError):
        decode_packet(data)


def test_encoder_rejects_bad_tokens_and_ranges() -> None:
    with pytest.raises(AngelCodecError):
        encode_packet(MarketPacket(1, 1, "X" * 26, 0, 0, 0))
    with pytest.raises(AngelCodecError):
        encode_packet(MarketPacket(1, 1, "", 0, 0, 0))
    with pytest.raises(AngelCodecError):
        encode_packet(MarketPacket(1, 1, "1", 0, 0, 2**64))


def test_subscribe_request_shape() -> None:
    text = codec.subscribe_request(2, {1: ["2885", "3045"], 13: ["1185"]}, "abcde12345")
    assert json.loads(text) == {
        "correlationID": "abcde12345",
        "action": 1,
        "params": {
            "mode": 2,
            "tokenList": [{"exchangeType": 1, "tokens": ["2885", "3045"]}, {"exchangeType": 13, "tokens": ["1185"]}],
        },
    }
    assert json.loads(codec.unsubscribe_request(3, {2: ["52175"]}))["action"] == 0
    request = codec.decode_request(text)
    assert request.mode is SubscriptionMode.QUOTE and request.tokens == {1: ("2885", "3045"), 13: ("1185",)}


@pytest.mark.parametrize(
    "text",
    [
        '{"action":1}',
        "not json",
        '{"action":1,"params":{"mode":9,"tokenList":[]}}',
        '{"action":1,"params":{"mode":1,"tokenList":[{"exchangeType":6,"tokens":["1"]}]}}',
        '{"action":1,"params":{"mode":1,"tokenList":[{"exchangeType":1,"tokens":[2885]}]}}',
        "[]",
    ],
)
def test_invalid_requests_are_codec_errors(text: str) -> None:
    with pytest.raises(AngelCodecError):
        codec.decode_request(text)


def test_error_frames_and_pong() -> None:
    assert codec.decode_text("pong") == Pong()
    reply = codec.decode_text(
        '{"correlationID":"abcde12345","errorCode":"E1002",'
        '"errorMessage":"Invalid Request. Subscription Limit Exceeded."}'
    )
    assert isinstance(reply, ErrorReply) and reply.limit_exceeded and reply.correlation_id == "abcde12345"
    invalid = codec.decode_text(codec.encode_error("E1001", "x1"))
    assert invalid == ErrorReply("x1", "E1001", "Invalid Request Payload.")
    with pytest.raises(AngelCodecError):
        codec.decode_text('{"hello":1}')
    with pytest.raises(AngelCodecError):
        codec.decode_text("hello")


def test_struct_sizes_match_documented_packet_sizes() -> None:
    assert [
        codec.LTP_STRUCT.size,
        codec.QUOTE_STRUCT.size,
        codec.SNAP_QUOTE_STRUCT.size,
        codec.DEPTH_20_STRUCT.size,
    ] == [51, 123, 379, 443]
    assert struct.calcsize("<hqqh") == 20
