"""The Kite codec on byte fixtures (tests/fixtures/zerodha, packed field by field from the wire table)."""

from __future__ import annotations

from pathlib import Path

import pytest

from openalgo_proxy.brokers.zerodha import codec
from openalgo_proxy.brokers.zerodha.codec import (
    ErrorMessage,
    InfoMessage,
    KiteCodecError,
    KiteMode,
    OrderUpdate,
    PacketKind,
)
from openalgo_proxy.model import DepthLevel, Mode, Tick

FIXTURES = Path(__file__).parents[2] / "fixtures" / "zerodha"
TS = 1_744_799_445


def load(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def only(name: str) -> codec.KitePacket:
    packets = codec.decode_frame(load(name))
    assert len(packets) == 1
    return packets[0]


def test_ltp_packet_nse() -> None:
    p = only("ltp_nse.bin")
    assert p.kind is PacketKind.LTP
    assert (p.instrument_token, p.last_price) == (738561, 148_550)
    tick = codec.to_tick(p, "RELIANCE", "NSE", received_ms=1_000)
    assert tick.mode is Mode.LTP
    assert tick.ltp == 1485.5
    assert tick.exchange_time == 1_000 and tick.ltt == 1_000
    assert tick.open == 0.0 and tick.bids == ()


def test_quote_packet_nfo() -> None:
    p = only("quote_nfo.bin")
    assert p.kind is PacketKind.QUOTE
    tick = codec.to_tick(p, "NIFTY30DEC25FUT", "NFO", received_ms=5)
    assert tick.mode is Mode.QUOTE
    assert (tick.ltp, tick.avg_trade_price) == (26180.1, 26175.5)
    assert (tick.open, tick.high, tick.low, tick.close) == (26100.0, 26200.0, 26050.0, 26000.2)
    assert (tick.volume, tick.last_trade_quantity) == (4_512_300, 25)
    assert (tick.total_buy_quantity, tick.total_sell_quantity) == (310_000, 290_500)
    assert tick.bids == () and tick.asks == ()


def test_full_packet_nse_with_depth() -> None:
    p = only("full_nse.bin")
    assert p.kind is PacketKind.FULL
    assert p.exchange_timestamp == TS and p.last_trade_time == TS - 1
    tick = codec.to_tick(p, "RELIANCE", "NSE", received_ms=1)
    assert tick.mode is Mode.DEPTH
    assert tick.exchange_time == TS * 1000 and tick.ltt == (TS - 1) * 1000
    assert (tick.open, tick.high, tick.low, tick.close) == (1470.0, 1490.0, 1465.0, 1468.0)
    assert tick.bids == tuple(DepthLevel(round(1485.45 - 0.05 * i, 2), 100 + i, 3 + i) for i in range(5))
    assert tick.asks == tuple(DepthLevel(round(1485.55 + 0.05 * i, 2), 200 + i, 7 + i) for i in range(5))
    assert tick.bids[0].price < tick.asks[0].price


def test_full_packet_cds_divisor_and_oi() -> None:
    p = only("full_cds.bin")
    tick = codec.to_tick(p, "USDINR29DEC25FUT", "CDS")
    assert tick.ltp == 89.1525
    assert tick.avg_trade_price == 89.14 and tick.close == 89.05
    assert tick.oi == 1_234_000
    assert (p.oi_day_high, p.oi_day_low) == (1_300_000, 1_200_000)
    assert tick.bids[0] == DepthLevel(89.15, 1000, 1)
    assert tick.asks[4] == DepthLevel(89.165, 6000, 6)


def test_quote_mcx_uses_paise() -> None:
    tick = codec.to_tick(only("quote_mcx.bin"), "GOLD05FEB26FUT", "MCX")
    assert tick.ltp == 127500.0


@pytest.mark.parametrize(("name", "expected"), [("ltp_bcd.bin", 89.1525), ("ltp_nco.bin", 1234.5678)])
def test_bcd_and_nco_divide_by_ten_thousand(name: str, expected: float) -> None:
    p = only(name)
    assert codec.divisor(p.instrument_token) == 10_000
    assert codec.to_tick(p, "X", "BCD").ltp == expected


def test_index_quote_order_and_negative_change() -> None:
    p = only("index_quote_negative.bin")
    assert p.kind is PacketKind.INDEX_QUOTE
    # wire order is high, low, open, close
    assert (p.high, p.low, p.open, p.close) == (2_612_000, 2_595_010, 2_610_000, 2_605_000)
    assert p.change == 2_598_525 - 2_605_000 < 0
    tick = codec.to_tick(p, "NIFTY", "NSE_INDEX", received_ms=7)
    assert tick.mode is Mode.QUOTE
    assert (tick.ltp, tick.open, tick.high, tick.low, tick.close) == (25985.25, 26100.0, 26120.0, 25950.1, 26050.0)
    assert tick.exchange_time == 7


def test_index_full_has_timestamp_and_no_depth() -> None:
    p = only("index_full_bse.bin")
    assert p.kind is PacketKind.INDEX_FULL and p.exchange_timestamp == TS
    tick = codec.to_tick(p, "SENSEX", "BSE_INDEX", received_ms=1)
    assert tick.mode is Mode.DEPTH
    assert tick.bids == () and tick.asks == ()
    assert tick.exchange_time == TS * 1000 and tick.ltp == 85412.3 and p.change == 11_230


def test_multi_packet_frame() -> None:
    packets = codec.decode_frame(load("multi.bin"))
    assert [p.kind for p in packets] == [
        PacketKind.LTP,
        PacketKind.QUOTE,
        PacketKind.INDEX_QUOTE,
        PacketKind.FULL,
        PacketKind.INDEX_FULL,
    ]
    assert [p.instrument_token for p in packets] == [738561, 52175 * 256 + 2, 256265, 1185 * 256 + 3, 265]
    assert packets[2] == only("index_quote_negative.bin")


def test_heartbeat_and_empty_frame() -> None:
    assert codec.is_heartbeat(load("heartbeat.bin"))
    assert codec.decode_frame(load("heartbeat.bin")) == []
    assert codec.decode_frame(load("empty_frame.bin")) == []


@pytest.mark.parametrize("name", ["truncated.bin", "unknown_length.bin", "trailing.bin", "count_too_high.bin"])
def test_malformed_frames_raise_codec_error(name: str) -> None:
    with pytest.raises(KiteCodecError):
        codec.decode_frame(load(name))


@pytest.mark.parametrize("data", [b"", b"\x00\x01", b"\x00\x01\x00", b"\x00\x01\x00\x08\x00"])
def test_short_inputs_raise_codec_error(data: bytes) -> None:
    with pytest.raises(KiteCodecError):
        codec.decode_frame(data)


def test_every_truncation_of_a_frame_is_a_codec_error() -> None:
    frame = load("multi.bin")
    for cut in range(2, len(frame)):
        if cut == 1:
            continue
        with pytest.raises(KiteCodecError):
            codec.decode_frame(frame[:cut])


def test_text_frames() -> None:
    order = codec.parse_text(load("text_order.json"))
    assert isinstance(order, OrderUpdate) and order.data["status"] == "COMPLETE"
    error = codec.parse_text(load("text_error.json"))
    assert error == ErrorMessage("Invalid instrument token")
    message = codec.parse_text(load("text_message.json").decode())
    assert message == InfoMessage("message", "Market is closed")
    for bad in (b"not json", b"[1,2]", b'{"data":1}', b'{"type":"order","data":"x"}', b"\xff"):
        with pytest.raises(KiteCodecError):
            codec.parse_text(bad)
    for value in (order, error, message):
        assert codec.parse_text(codec.encode_text(value)) == value


def test_request_encoders_and_parser() -> None:
    assert codec.encode_subscribe([408065, 884737]) == b'{"a":"subscribe","v":[408065,884737]}'
    assert codec.encode_unsubscribe([408065]) == b'{"a":"unsubscribe","v":[408065]}'
    assert codec.encode_mode(KiteMode.FULL, [738561]) == b'{"a":"mode","v":["full",[738561]]}'
    assert codec.parse_request(codec.encode_mode(KiteMode.LTP, [1, 2])) == codec.Request("mode", (1, 2), KiteMode.LTP)
    assert codec.parse_request('{"a":"subscribe","v":[5]}') == codec.Request("subscribe", (5,))
    for bad in (
        b"{",
        b'{"a":"subscribe","v":["5"]}',
        b'{"a":"mode","v":["deep",[1]]}',
        b'{"a":"mode","v":[[1]]}',
        b'{"a":"nope","v":[]}',
        b'{"a":"subscribe","v":[true]}',
    ):
        with pytest.raises(KiteCodecError):
            codec.parse_request(bad)


@pytest.mark.parametrize(
    "name",
    [
        "ltp_nse.bin",
        "quote_nfo.bin",
        "full_nse.bin",
        "full_cds.bin",
        "index_quote_negative.bin",
        "index_full_bse.bin",
        "multi.bin",
    ],
)
def test_encoders_reproduce_fixture_bytes(name: str) -> None:
    frame = load(name)
    packets = codec.decode_frame(frame)
    assert codec.encode_frame([codec.encode_packet(p) for p in packets]) == frame


def test_packet_from_tick_round_trips_through_to_tick() -> None:
    depth = tuple(DepthLevel(round(89.15 - 0.0025 * i, 4), 1000 * (i + 1), i + 1) for i in range(5))
    tick = Tick(
        symbol="USDINR29DEC25FUT",
        exchange="CDS",
        mode=Mode.DEPTH,
        ltp=89.1525,
        ltt=TS * 1000,
        exchange_time=TS * 1000,
        open=89.0,
        high=89.2,
        low=88.9975,
        close=89.05,
        volume=123,
        avg_trade_price=89.14,
        last_trade_quantity=2,
        total_buy_quantity=10,
        total_sell_quantity=11,
        oi=500,
        bids=depth,
        asks=depth,
    )
    token = 1185 * 256 + 3
    for mode, kind in (
        (KiteMode.LTP, PacketKind.LTP),
        (KiteMode.QUOTE, PacketKind.QUOTE),
        (KiteMode.FULL, PacketKind.FULL),
    ):
        packet = codec.packet_from_tick(tick, token, mode)
        assert packet.kind is kind
        wire = codec.encode_frame([codec.encode_packet(packet)])
        back = codec.to_tick(codec.decode_frame(wire)[0], tick.symbol, tick.exchange, received_ms=TS * 1000)
        assert back.ltp == tick.ltp and back.exchange_time == tick.exchange_time
        if mode is KiteMode.FULL:
            assert back == tick
    index = codec.packet_from_tick(tick, 256265, KiteMode.FULL)
    assert index.kind is PacketKind.INDEX_FULL and index.change == round(89.1525 * 100) - round(89.05 * 100)


def test_encode_packet_out_of_range_is_codec_error() -> None:
    with pytest.raises(KiteCodecError):
        codec.encode_packet(codec.KitePacket(PacketKind.LTP, -1, 0))
