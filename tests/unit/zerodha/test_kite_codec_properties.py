"""Property tests: arbitrary bytes only ever raise KiteCodecError; every packet round-trips."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from openalgo_proxy.brokers.zerodha import codec
from openalgo_proxy.brokers.zerodha.codec import KiteCodecError, KiteDepthEntry, KitePacket, PacketKind

u32 = st.integers(0, 2**32 - 1)
i32 = st.integers(-(2**31), 2**31 - 1)
u16 = st.integers(0, 2**16 - 1)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_decode_or_raise_codec_error(data: bytes) -> None:
    try:
        packets = codec.decode_frame(data)
    except KiteCodecError:
        return
    assert all(isinstance(p, KitePacket) for p in packets)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=80) | st.binary(max_size=80))
def test_arbitrary_text_parses_or_raises_codec_error(data: str | bytes) -> None:
    for parse in (codec.parse_text, codec.parse_request):
        try:
            parse(data)
        except KiteCodecError:
            pass


@st.composite
def packets(draw: st.DrawFn) -> KitePacket:
    kind = draw(st.sampled_from(list(PacketKind)))
    token, ltp = draw(u32), draw(i32)
    if kind is PacketKind.LTP:
        return KitePacket(kind, token, ltp)
    o, h, low, c, change = (draw(i32) for _ in range(5))
    if kind in (PacketKind.INDEX_QUOTE, PacketKind.INDEX_FULL):
        ts = draw(u32) if kind is PacketKind.INDEX_FULL else 0
        return KitePacket(kind, token, ltp, open=o, high=h, low=low, close=c, change=change, exchange_timestamp=ts)
    quote = dict(
        last_quantity=draw(u32),
        average_price=draw(i32),
        volume=draw(u32),
        buy_quantity=draw(u32),
        sell_quantity=draw(u32),
        open=o,
        high=h,
        low=low,
        close=c,
    )
    if kind is PacketKind.QUOTE:
        return KitePacket(kind, token, ltp, **quote)
    depth = tuple(KiteDepthEntry(draw(u32), draw(i32), draw(u16)) for _ in range(10))
    return KitePacket(
        kind,
        token,
        ltp,
        **quote,
        last_trade_time=draw(u32),
        oi=draw(u32),
        oi_day_high=draw(u32),
        oi_day_low=draw(u32),
        exchange_timestamp=draw(u32),
        depth=depth,
    )


@settings(max_examples=100, deadline=None)
@given(st.lists(packets(), max_size=6))
def test_frames_round_trip(items: list[KitePacket]) -> None:
    frame = codec.encode_frame([codec.encode_packet(p) for p in items])
    assert codec.decode_frame(frame) == items
