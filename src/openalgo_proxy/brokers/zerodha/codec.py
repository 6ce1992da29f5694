"""Kite Connect WebSocket wire codec: PURE (bytes in, typed values out; no I/O, no clock).

Binary frames are big-endian: uint16 packet count, then per packet a uint16 length and the packet.
The packet kind is told by its length (8 ltp, 28 index quote, 32 index full, 44 quote, 184 full).
A 1-byte binary message is a heartbeat. Text frames are JSON (order updates, errors, messages).

Two message types: `KitePacket` in Kite's own field names and wire units (integers: prices in the
segment's minor unit, times in unix seconds) and the normalized `Tick`, with one conversion between
them (`to_tick`). The simulator side encodes packets and frames with the same layouts, one table
(`LAYOUTS`) for both directions.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import msgspec

from openalgo_proxy.errors import ProxyError
from openalgo_proxy.model import DepthLevel, Mode, Tick


class KiteCodecError(ProxyError, ValueError):
    """Input that is not valid Kite wire data (truncated frame, unknown packet length, bad JSON)."""


class PacketKind(enum.Enum):
    """A packet's kind; its value is the packet's length on the wire."""

    LTP = 8
    INDEX_QUOTE = 28
    INDEX_FULL = 32
    QUOTE = 44
    FULL = 184


# Segment = instrument_token & 0xFF: 1 NSE, 2 NFO, 3 CDS, 4 BSE, 5 BFO, 6 BCD, 7 MCX, 8 MCXSX,
# 9 indices, 12 NCO. Prices are in the segment's minor unit: CDS 1e-7, BCD and NCO 1e-4, others paise.
SEGMENT_INDICES = 9
_DIVISORS = {3: 10_000_000, 6: 10_000, 12: 10_000}

DEPTH_ENTRIES = 10  # 5 bids then 5 asks
HEARTBEAT = b"\x00"


def divisor(token: int) -> int:
    """Price divisor of an instrument token's segment (cds 1e7; bcd, nco 1e4; else 100)."""
    return _DIVISORS.get(token & 0xFF, 100)


def is_index_token(token: int) -> bool:
    return token & 0xFF == SEGMENT_INDICES


class KiteDepthEntry(msgspec.Struct, frozen=True, gc=False):
    quantity: int
    price: int
    orders: int


class KitePacket(msgspec.Struct, frozen=True, gc=False):
    """One decoded packet in wire units. Fields a kind does not carry are 0 / empty."""

    kind: PacketKind
    instrument_token: int
    last_price: int
    last_quantity: int = 0
    average_price: int = 0
    volume: int = 0
    buy_quantity: int = 0
    sell_quantity: int = 0
    open: int = 0
    high: int = 0
    low: int = 0
    close: int = 0
    last_trade_time: int = 0  # unix seconds
    oi: int = 0
    oi_day_high: int = 0
    oi_day_low: int = 0
    exchange_timestamp: int = 0  # unix seconds
    depth: tuple[KiteDepthEntry, ...] = ()  # full packets only: 5 bids then 5 asks
    change: int = 0  # index packets only: last price - close, signed


# ---------------------------------------------------------------------------------------------
# The packet layouts: every field is 4 bytes; prices and the index change are signed (commodity
# prices have gone negative), token, quantities and times unsigned, as the official SDK reads them.
# A full packet ends with 10 depth entries of quantity, price, orders and 2 pad bytes.

_SIGNED = frozenset({"last_price", "average_price", "open", "high", "low", "close", "change"})
_INDEX = "instrument_token last_price high low open close change"
_QUOTE = "instrument_token last_price last_quantity average_price volume buy_quantity sell_quantity open high low close"


class Layout(NamedTuple):
    """How one packet kind sits on the wire and which tick mode it fills."""

    kind: PacketKind
    mode: Mode
    fields: tuple[str, ...]  # KitePacket fields in wire order (a full packet's depth follows them)
    wire: struct.Struct
    positional: bool  # the fields are KitePacket's first fields in order (decoded without keywords)


def _layout(kind: PacketKind, mode: Mode, fields: str) -> Layout:
    names = tuple(fields.split())
    depth = "IiH2x" * DEPTH_ENTRIES if kind is PacketKind.FULL else ""
    wire = struct.Struct(">" + "".join("i" if name in _SIGNED else "I" for name in names) + depth)
    assert wire.size == kind.value, kind
    return Layout(kind, mode, names, wire, names == KitePacket.__struct_fields__[1 : len(names) + 1])


LAYOUTS = {
    PacketKind.LTP: _layout(PacketKind.LTP, Mode.LTP, "instrument_token last_price"),
    PacketKind.INDEX_QUOTE: _layout(PacketKind.INDEX_QUOTE, Mode.QUOTE, _INDEX),
    PacketKind.INDEX_FULL: _layout(PacketKind.INDEX_FULL, Mode.DEPTH, _INDEX + " exchange_timestamp"),
    PacketKind.QUOTE: _layout(PacketKind.QUOTE, Mode.QUOTE, _QUOTE),
    PacketKind.FULL: _layout(
        PacketKind.FULL, Mode.DEPTH, _QUOTE + " last_trade_time oi oi_day_high oi_day_low exchange_timestamp"
    ),
}
_BY_LENGTH = {kind.value: layout for kind, layout in LAYOUTS.items()}
_TICK_MODE = {kind: layout.mode for kind, layout in LAYOUTS.items()}
_COUNT = struct.Struct(">H")

# ---------------------------------------------------------------------------------------------
# Binary decoding


def is_heartbeat(message: bytes) -> bool:
    return len(message) == 1


def decode_packet(packet: bytes | memoryview) -> KitePacket:
    """Decode one packet (without its length prefix)."""
    layout = _BY_LENGTH.get(len(packet))
    if layout is None:
        raise KiteCodecError(f"unknown packet length {len(packet)}")
    values = layout.wire.unpack(packet)
    if layout.kind is PacketKind.FULL:  # the 16 fields, then the depth entries in groups of three
        values = (*values[:16], tuple(map(KiteDepthEntry, values[16::3], values[17::3], values[18::3])))
    if layout.positional:
        return KitePacket(layout.kind, *values)
    return KitePacket(layout.kind, **dict(zip(layout.fields, values, strict=True)))


def decode_frame(frame: bytes) -> list[KitePacket]:
    """Every packet of a binary message; a heartbeat decodes to an empty list. KiteCodecError on bad framing."""
    size = len(frame)
    if size == 1:
        return []
    if size < 2:
        raise KiteCodecError("empty binary frame")
    view = memoryview(frame)
    (count,) = _COUNT.unpack_from(frame, 0)
    packets: list[KitePacket] = []
    offset = 2
    for index in range(count):
        if offset + 2 > size:
            raise KiteCodecError(f"frame truncated before packet {index + 1} of {count}")
        (length,) = _COUNT.unpack_from(frame, offset)
        offset += 2
        end = offset + length
        if end > size:
            raise KiteCodecError(f"packet {index + 1} of {count} needs {length} bytes, {size - offset} left")
        packets.append(decode_packet(view[offset:end]))
        offset = end
    if offset != size:
        raise KiteCodecError(f"{size - offset} trailing bytes after {count} packets")
    return packets


# ---------------------------------------------------------------------------------------------
# The one conversion to the normalized tick


def to_tick(packet: KitePacket, symbol: str, exchange: str, received_ms: int = 0) -> Tick:
    """Normalize a packet: rupees via the segment divisor, unix seconds -> epoch ms.

    Packets without an exchange timestamp (ltp, quote, index quote) are stamped `received_ms`.
    An index full packet has no depth: bids and asks stay empty.
    """
    div = float(divisor(packet.instrument_token))
    exchange_ms = packet.exchange_timestamp * 1000 if packet.exchange_timestamp else received_ms
    bids: tuple[DepthLevel, ...] = ()
    asks: tuple[DepthLevel, ...] = ()
    if packet.depth:
        levels = tuple(DepthLevel(e.price / div, e.quantity, e.orders) for e in packet.depth)
        bids, asks = levels[:5], levels[5:]
    return Tick(
        symbol=symbol,
        exchange=exchange,
        mode=_TICK_MODE[packet.kind],
        ltp=packet.last_price / div,
        ltt=packet.last_trade_time * 1000 if packet.last_trade_time else exchange_ms,
        exchange_time=exchange_ms,
        open=packet.open / div,
        high=packet.high / div,
        low=packet.low / div,
        close=packet.close / div,
        volume=packet.volume,
        avg_trade_price=packet.average_price / div,
        last_trade_quantity=packet.last_quantity,
        total_buy_quantity=packet.buy_quantity,
        total_sell_quantity=packet.sell_quantity,
        oi=packet.oi,
        bids=bids,
        asks=asks,
    )


# ---------------------------------------------------------------------------------------------
# Text frames (server -> client)


class OrderUpdate(msgspec.Struct, frozen=True):
    data: dict[str, object]


class ErrorMessage(msgspec.Struct, frozen=True):
    message: str


class InfoMessage(msgspec.Struct, frozen=True):
    type: str
    data: object


TextMessage = OrderUpdate | ErrorMessage | InfoMessage

_json_decode = msgspec.json.Decoder().decode
_json_encode = msgspec.json.Encoder().encode


def parse_text(message: str | bytes) -> TextMessage:
    """A JSON text frame as a typed value; KiteCodecError if it is not a JSON object with a type."""
    try:
        value = _json_decode(message)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise KiteCodecError(f"invalid JSON text frame: {exc}") from None
    match value:
        case {"type": "order", "data": dict() as data}:
            return OrderUpdate(data)
        case {"type": "error"}:
            data = value.get("data")
            return ErrorMessage(data if isinstance(data, str) else str(data))
        case {"type": str() as kind} if kind != "order":
            return InfoMessage(kind, value.get("data"))
    raise KiteCodecError("text frame is not an object with a string 'type' (an order with an object 'data')")


def encode_text(message: TextMessage) -> bytes:
    """Simulator side: the JSON text frame of a typed message."""
    if isinstance(message, OrderUpdate):
        return _json_encode({"type": "order", "data": message.data})
    if isinstance(message, ErrorMessage):
        return _json_encode({"type": "error", "data": message.message})
    return _json_encode({"type": message.type, "data": message.data})


# ---------------------------------------------------------------------------------------------
# Requests (client -> server)


class KiteMode(enum.StrEnum):
    LTP = "ltp"
    QUOTE = "quote"
    FULL = "full"


KITE_MODE = {Mode.LTP: KiteMode.LTP, Mode.QUOTE: KiteMode.QUOTE, Mode.DEPTH: KiteMode.FULL}


class Request(msgspec.Struct, frozen=True):
    """A decoded client request: action subscribe/unsubscribe/mode, its tokens, and the mode."""

    action: str
    tokens: tuple[int, ...]
    mode: KiteMode | None = None


class _Subscribe(msgspec.Struct, frozen=True, tag_field="a", tag="subscribe"):
    v: list[int]


class _Unsubscribe(_Subscribe, frozen=True, tag="unsubscribe"):
    pass


class _SetMode(msgspec.Struct, frozen=True, tag_field="a", tag="mode"):
    v: tuple[KiteMode, list[int]]


_request_decode = msgspec.json.Decoder(_Subscribe | _Unsubscribe | _SetMode).decode


def encode_subscribe(tokens: Iterable[int]) -> bytes:
    return _json_encode(_Subscribe(list(tokens)))


def encode_unsubscribe(tokens: Iterable[int]) -> bytes:
    return _json_encode(_Unsubscribe(list(tokens)))


def encode_mode(mode: KiteMode, tokens: Iterable[int]) -> bytes:
    return _json_encode(_SetMode((mode, list(tokens))))


def parse_request(message: str | bytes) -> Request:
    """Simulator side: decode a client request; KiteCodecError for anything malformed."""
    try:
        request = _request_decode(message)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise KiteCodecError(f"invalid request: {exc}") from None
    if isinstance(request, _SetMode):
        mode, tokens = request.v
        return Request("mode", tuple(tokens), mode)
    return Request("unsubscribe" if isinstance(request, _Unsubscribe) else "subscribe", tuple(request.v))


# ---------------------------------------------------------------------------------------------
# Simulator side: packets and frames

_NO_DEPTH = KiteDepthEntry(0, 0, 0)


def encode_packet(packet: KitePacket) -> bytes:
    """The packet bytes (without the length prefix) for the packet's kind."""
    layout = LAYOUTS[packet.kind]
    values = [getattr(packet, name) for name in layout.fields]
    if packet.kind is PacketKind.FULL:
        depth = (*packet.depth[:DEPTH_ENTRIES], *[_NO_DEPTH] * (DEPTH_ENTRIES - len(packet.depth)))
        values += [value for entry in depth for value in (entry.quantity, entry.price, entry.orders)]
    try:
        return layout.wire.pack(*values)
    except struct.error as exc:
        raise KiteCodecError(f"packet field out of range: {exc}") from None


def encode_frame(packets: Sequence[bytes]) -> bytes:
    """A binary message of already-encoded packets: count, then length-prefixed packets."""
    if len(packets) > 0xFFFF:
        raise KiteCodecError("at most 65535 packets per frame")
    return _COUNT.pack(len(packets)) + b"".join(_COUNT.pack(len(packet)) + packet for packet in packets)


# the packet kind a mode subscription gets: (for a tradable instrument, for an index)
_KINDS_OF_MODE = {
    KiteMode.LTP: (PacketKind.LTP, PacketKind.LTP),
    KiteMode.QUOTE: (PacketKind.QUOTE, PacketKind.INDEX_QUOTE),
    KiteMode.FULL: (PacketKind.FULL, PacketKind.INDEX_FULL),
}


def packet_from_tick(tick: Tick, token: int, mode: KiteMode) -> KitePacket:
    """Simulator side: the packet Kite would send for `tick` under `mode` (index by token segment)."""
    div = divisor(token)
    kind = _KINDS_OF_MODE[mode][is_index_token(token)]

    def px(value: float) -> int:
        return round(value * div)

    ltp, close = px(tick.ltp), px(tick.close)
    values = {
        "instrument_token": token,
        "last_price": ltp,
        "last_quantity": tick.last_trade_quantity,
        "average_price": px(tick.avg_trade_price),
        "volume": tick.volume,
        "buy_quantity": tick.total_buy_quantity,
        "sell_quantity": tick.total_sell_quantity,
        "open": px(tick.open),
        "high": px(tick.high),
        "low": px(tick.low),
        "close": close,
        "change": ltp - close,
        "last_trade_time": tick.ltt // 1000,
        "oi": tick.oi,
        "oi_day_high": tick.oi,
        "oi_day_low": tick.oi,
        "exchange_timestamp": tick.exchange_time // 1000,
    }
    fields: dict[str, Any] = {name: values[name] for name in LAYOUTS[kind].fields}
    levels = (*tick.bids, *tick.asks) if kind is PacketKind.FULL else ()
    depth = tuple(KiteDepthEntry(level.quantity, px(level.price), level.orders) for level in levels)
    return KitePacket(kind, **fields, depth=depth)
