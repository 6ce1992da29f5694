"""mStock Type B codec: batched frames, seconds since 1980, best five by position."""

from __future__ import annotations

import struct

import pytest

from openalgo_proxy.brokers.angel import codec as angel
from openalgo_proxy.brokers.angel.codec import AngelCodecError, BestFiveRecord, MarketPacket
from openalgo_proxy.brokers.mstock import codec

NOW_MS = 1_765_000_000_000  # 2025-12-06T05:46:40Z


def snap(token: str = "2885", ts_ms: int = NOW_MS) -> MarketPacket:
    packet = MarketPacket(3, 1, token, 7, ts_ms, 148_550, 5, 148_000, 1000, 10.0, 20.0, 1, 2, 3, 4)
    packet.last_traded_timestamp = ts_ms // 1000
    packet.open_interest = 0
    # flags deliberately wrong: mStock's parser decides the side by position
    packet.best_five = tuple(BestFiveRecord(0, 10 + i, 148_500 - i, 1) for i in range(10))
    return packet


def test_timestamps_are_seconds_since_1980_on_the_wire() -> None:
    raw = angel.encode_packet(codec.to_wire(snap()))
    assert struct.unpack_from("<q", raw, 35)[0] == NOW_MS // 1000 - 315_532_800
    assert struct.unpack_from("<q", raw, 123)[0] == NOW_MS // 1000 - 315_532_800
    (packet,) = codec.decode_frame(raw)
    assert packet.exchange_timestamp == NOW_MS
    tick = angel.to_tick(packet, "RELIANCE", "NSE")
    assert tick.exchange_time == NOW_MS and tick.ltt == NOW_MS and tick.ltp == 1485.5


def test_best_five_by_position_whatever_the_flags() -> None:
    (packet,) = codec.decode_frame(angel.encode_packet(codec.to_wire(snap())))
    tick = angel.to_tick(packet, "RELIANCE", "NSE")
    assert [lv.quantity for lv in tick.bids] == [10, 11, 12, 13, 14]
    assert [lv.quantity for lv in tick.asks] == [15, 16, 17, 18, 19]


@pytest.mark.parametrize("fmt", ["<HH", ">HH"])
def test_batched_frames_split(fmt: str) -> None:
    packets = [angel.encode_packet(codec.to_wire(snap(str(t)))) for t in (2885, 3045, 1594)]
    frame = struct.pack(fmt, 3, len(packets[0])) + b"".join(packets)
    assert [p.token for p in codec.decode_frame(frame)] == ["2885", "3045", "1594"]
    if fmt == "<HH":
        assert codec.encode_frame(packets) == frame


def test_single_ltp_packet_and_malformed_frames() -> None:
    ltp = angel.encode_packet(codec.to_wire(MarketPacket(1, 1, "22", 0, NOW_MS, 123_400)))
    assert [p.last_traded_price for p in codec.decode_frame(ltp)] == [123_400]
    quote = angel.encode_packet(codec.to_wire(MarketPacket(2, 1, "22", 0, NOW_MS, 1)))
    for bad in (b"", b"\x01", ltp[:-1], struct.pack("<HH", 2, 51) + ltp, struct.pack("<HH", 2, 51) + ltp + quote):
        with pytest.raises(AngelCodecError):
            codec.decode_frame(bad)
    with pytest.raises(AngelCodecError):
        codec.encode_frame([ltp, quote])
