"""Kite Connect WebSocket wire codec: PURE (bytes in, typed values out; no I/O, no clock).

Binary frames are big-endian: uint16 packet count, then per packet a uint16 length and the packet.
The packet kind is told by its length (8 ltp, 28 index quote, 32 index full, 44 quote, 184 full).
A 1-byte binary message is a heartbeat. Text frames are JSON (order updates, errors, messages).

Two message types: `KitePacket` in Kite's own field names and wire units (integers: prices in the
segment's minor unit, times in unix seconds) and the normalized `Tick`, with one conversion between
them (`to_tick`). The simulator side encodes packets and frames with the same layouts.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable, Sequence

import msgspec

from openalgo_proxy.errors import ProxyError
from openalgo_proxy.model import DepthLevel, Mode, Tick


class KiteCodecError(ProxyError, ValueError):
    """Input that is not valid Kite wire data (truncated frame, unknown packet length, bad JSON)."""


class PacketKind(enum.Enum):
    LTP = 8
    INDEX_QUOTE = 28
    INDEX_FULL = 32
    QUOTE = 44
    FULL = 184


# Segment = instrument_token & 0xFF.
SEGMENT_NSE = 1
SEGMENT_NFO = 2
SEGMENT_CDS = 3
SEGMENT_BSE = 4
SEGMENT_BFO = 5
SEGMENT_BCD = 6
SEGMENT_MCX = 7
SEGMENT_MCXSX = 8
SEGMENT_INDICES = 9
SEGMENT_NCO = 12

_DIVISORS = {SEGMENT_CDS: 10_000_000, SEGMENT_BCD: 10_000, SEGMENT_NCO: 10_000}
DEFAULT_DIVISOR = 100

DEPTH_ENTRIES = 10  # 5 bids then 5 asks
HEARTBEAT = b"\x00"

# One struct.Struct per layout, built once. Prices and the index change are signed (commodity
# prices have gone negative); token, quantities and times are unsigned, as the official SDK reads them.
_COUNT = struct.Struct(">H")
_LTP = struct.Struct(">Ii")
_INDEX_QUOTE = struct.Struct(">Iiiiiii")  # token, ltp, high, low, open, close, change
_INDEX_FULL = struct.Struct(">IiiiiiiI")  # index quote + exchange timestamp
_QUOTE = struct.Struct(">IiIiIIIiiii")  # token, ltp, ltq, avg, volume, buy qty, sell qty, o, h, l, c
# full = quote + ltt, oi, oi day high, oi day low, exchange ts, then 10 x (qty, price, orders, 2 pad)
_FULL = struct.Struct(">IiIiIIIiiiiIIIII" + "IiH2x" * DEPTH_ENTRIES)
assert _LTP.size == 8 and _INDEX_QUOTE.size == 28 and _INDEX_FULL.size == 32
assert _QUOTE.size == 44 and _FULL.size == 184


def divisor(token: int) -> int:
    """Price divisor of an instrument token's segment (cds 1e7; bcd, nco 1e4; else 100)."""
    return _DIVISORS.get(token & 0xFF, DEFAULT_DIVISOR)


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
    change: int = 0  # index packets only: last price - close, signed
    last_trade_time: int = 0  # unix seconds
    oi: int = 0
    oi_day_high: int = 0
    oi_day_low: int = 0
    exchange_timestamp: int = 0  # unix seconds
    depth: tuple[KiteDepthEntry, ...] = ()  # full packets only: 5 bids then 5 asks


# ---------------------------------------------------------------------------------------------
# Binary decoding


def is_heartbeat(message: bytes) -> bool:
    return len(message) == 1


def _quote_packet(kind: PacketKind, v: tuple[int, ...]) -> KitePacket:
    return KitePacket(
        kind,
        v[0],
        v[1],
        last_quantity=v[2],
        average_price=v[3],
        volume=v[4],
        buy_quantity=v[5],
        sell_quantity=v[6],
        open=v[7],
        high=v[8],
        low=v[9],
        close=v[10],
    )


def decode_packet(packet: bytes | memoryview) -> KitePacket:
    """Decode one packet (without its length prefix)."""
    size = len(packet)
    if size == 8:
        token, ltp = _LTP.unpack(packet)
        return KitePacket(PacketKind.LTP, token, ltp)
    if size == 28 or size == 32:
        if size == 28:
            token, ltp, high, low, open_, close, change = _INDEX_QUOTE.unpack(packet)
            kind, ts = PacketKind.INDEX_QUOTE, 0
        else:
            token, ltp, high, low, open_, close, change, ts = _INDEX_FULL.unpack(packet)
            kind = PacketKind.INDEX_FULL
        return KitePacket(
            kind, token, ltp, open=open_, high=high, low=low, close=close, change=change, exchange_timestamp=ts
        )
    if size == 44:
        return _quote_packet(PacketKind.QUOTE, _QUOTE.unpack(packet))
    if size == 184:
        v = _FULL.unpack(packet)
        depth = tuple(KiteDepthEntry(v[i], v[i + 1], v[i + 2]) for i in range(16, 16 + 3 * DEPTH_ENTRIES, 3))
        # positional, in KitePacket's field order (one call on the hot path): the 11 quote fields,
        # change (0, index only), last trade time, oi, oi day high, oi day low, exchange timestamp
        return KitePacket(
            PacketKind.FULL,
            v[0],
            v[1],
            v[2],
            v[3],
            v[4],
            v[5],
            v[6],
            v[7],
            v[8],
            v[9],
            v[10],
            0,
            v[11],
            v[12],
            v[13],
            v[14],
            v[15],
            depth,
        )
    raise KiteCodecError(f"unknown packet length {size}")


def split_frame(frame: bytes) -> list[memoryview]:
    """The packets of a binary frame (a heartbeat has none). Raises KiteCodecError on bad framing."""
    size = len(frame)
    if size == 1:
        return []
    if size < 2:
        raise KiteCodecError("empty binary frame")
    view = memoryview(frame)
    (count,) = _COUNT.unpack_from(frame, 0)
    packets: list[memoryview] = []
    offset = 2
    for index in range(count):
        if offset + 2 > size:
            raise KiteCodecError(f"frame truncated before packet {index + 1} of {count}")
        (length,) = _COUNT.unpack_from(frame, offset)
        offset += 2
        end = offset + length
        if end > size:
            raise KiteCodecError(f"packet {index + 1} of {count} needs {length} bytes, {size - offset} left")
        packets.append(view[offset:end])
        offset = end
    if offset != size:
        raise KiteCodecError(f"{size - offset} trailing bytes after {count} packets")
    return packets


def decode_frame(frame: bytes) -> list[KitePacket]:
    """Every packet of a binary message; a heartbeat decodes to an empty list."""
    return [decode_packet(packet) for packet in split_frame(frame)]


# ---------------------------------------------------------------------------------------------
# The one conversion to the normalized tick

_TICK_MODE = {
    PacketKind.LTP: Mode.LTP,
    PacketKind.INDEX_QUOTE: Mode.QUOTE,
    PacketKind.QUOTE: Mode.QUOTE,
    PacketKind.INDEX_FULL: Mode.DEPTH,
    PacketKind.FULL: Mode.DEPTH,
}


def to_tick(packet: KitePacket, symbol: str, exchange: str, received_ms: int = 0) -> Tick:
    """Normalize a packet: rupees via the segment divisor, unix seconds -> epoch ms.

    Packets without an exchange timestamp (ltp, quote, index quote) are stamped `received_ms`.
    An index full packet has no depth: bids and asks stay empty.
    """
    div = float(divisor(packet.instrument_token))
    exchange_ms = packet.exchange_timestamp * 1000 if packet.exchange_timestamp else received_ms
    ltt = packet.last_trade_time * 1000 if packet.last_trade_time else exchange_ms
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
        ltt=ltt,
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
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        raise KiteCodecError("text frame is not an object with a string 'type'")
    kind = value["type"]
    data = value.get("data")
    if kind == "order":
        if not isinstance(data, dict):
            raise KiteCodecError("order update without an object 'data'")
        return OrderUpdate(data)
    if kind == "error":
        return ErrorMessage(data if isinstance(data, str) else str(data))
    return InfoMessage(kind, data)


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


def encode_subscribe(tokens: Iterable[int]) -> bytes:
    return _json_encode({"a": "subscribe", "v": list(tokens)})


def encode_unsubscribe(tokens: Iterable[int]) -> bytes:
    return _json_encode({"a": "unsubscribe", "v": list(tokens)})


def encode_mode(mode: KiteMode, tokens: Iterable[int]) -> bytes:
    return _json_encode({"a": "mode", "v": [mode.value, list(tokens)]})


def _tokens(value: object) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in value):
        raise KiteCodecError("tokens must be a list of integers")
    return tuple(value)


def parse_request(message: str | bytes) -> Request:
    """Simulator side: decode a client request; KiteCodecError for anything malformed."""
    try:
        value = _json_decode(message)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise KiteCodecError(f"invalid JSON request: {exc}") from None
    if not isinstance(value, dict):
        raise KiteCodecError("request is not a JSON object")
    action = value.get("a")
    payload = value.get("v")
    if action in ("subscribe", "unsubscribe"):
        return Request(action, _tokens(payload))
    if action == "mode":
        if not isinstance(payload, list) or len(payload) != 2 or not isinstance(payload[0], str):
            raise KiteCodecError('mode request must be {"a":"mode","v":[MODE,[tokens]]}')
        try:
            mode = KiteMode(payload[0])
        except ValueError:
            raise KiteCodecError(f"unknown mode {payload[0]!r}") from None
        return Request("mode", _tokens(payload[1]), mode)
    raise KiteCodecError(f"unknown action {action!r}")


# ---------------------------------------------------------------------------------------------
# Simulator side: packets and frames


def encode_packet(packet: KitePacket) -> bytes:
    """The packet bytes (without the length prefix) for the packet's kind."""
    try:
        return _encode_packet(packet)
    except struct.error as exc:
        raise KiteCodecError(f"packet field out of range: {exc}") from None


def _encode_packet(packet: KitePacket) -> bytes:
    p = packet
    kind = p.kind
    if kind is PacketKind.LTP:
        return _LTP.pack(p.instrument_token, p.last_price)
    if kind is PacketKind.INDEX_QUOTE:
        return _INDEX_QUOTE.pack(p.instrument_token, p.last_price, p.high, p.low, p.open, p.close, p.change)
    if kind is PacketKind.INDEX_FULL:
        return _INDEX_FULL.pack(
            p.instrument_token, p.last_price, p.high, p.low, p.open, p.close, p.change, p.exchange_timestamp
        )
    quote = (
        p.instrument_token,
        p.last_price,
        p.last_quantity,
        p.average_price,
        p.volume,
        p.buy_quantity,
        p.sell_quantity,
        p.open,
        p.high,
        p.low,
        p.close,
    )
    if kind is PacketKind.QUOTE:
        return _QUOTE.pack(*quote)
    depth = list(p.depth[:DEPTH_ENTRIES])
    depth += [KiteDepthEntry(0, 0, 0)] * (DEPTH_ENTRIES - len(depth))
    flat = [x for e in depth for x in (e.quantity, e.price, e.orders)]
    return _FULL.pack(*quote, p.last_trade_time, p.oi, p.oi_day_high, p.oi_day_low, p.exchange_timestamp, *flat)


def encode_frame(packets: Sequence[bytes]) -> bytes:
    """A binary message of already-encoded packets: count, then length-prefixed packets."""
    if len(packets) > 0xFFFF:
        raise KiteCodecError("at most 65535 packets per frame")
    parts = [_COUNT.pack(len(packets))]
    for packet in packets:
        parts.append(_COUNT.pack(len(packet)))
        parts.append(packet)
    return b"".join(parts)


_KIND_FOR_MODE = {
    (KiteMode.LTP, False): PacketKind.LTP,
    (KiteMode.QUOTE, False): PacketKind.QUOTE,
    (KiteMode.FULL, False): PacketKind.FULL,
    (KiteMode.LTP, True): PacketKind.LTP,
    (KiteMode.QUOTE, True): PacketKind.INDEX_QUOTE,
    (KiteMode.FULL, True): PacketKind.INDEX_FULL,
}


def packet_from_tick(tick: Tick, token: int, mode: KiteMode) -> KitePacket:
    """Simulator side: the packet Kite would send for `tick` under `mode` (index by token segment)."""
    div = divisor(token)
    index = is_index_token(token)
    kind = _KIND_FOR_MODE[(mode, index)]

    def px(value: float) -> int:
        return round(value * div)

    ltp = px(tick.ltp)
    if kind is PacketKind.LTP:
        return KitePacket(kind, token, ltp)
    seconds = tick.exchange_time // 1000
    if index:
        close = px(tick.close)
        return KitePacket(
            kind,
            token,
            ltp,
            open=px(tick.open),
            high=px(tick.high),
            low=px(tick.low),
            close=close,
            change=ltp - close,
            exchange_timestamp=seconds if kind is PacketKind.INDEX_FULL else 0,
        )
    quote = KitePacket(
        kind,
        token,
        ltp,
        last_quantity=tick.last_trade_quantity,
        average_price=px(tick.avg_trade_price),
        volume=tick.volume,
        buy_quantity=tick.total_buy_quantity,
        sell_quantity=tick.total_sell_quantity,
        open=px(tick.open),
        high=px(tick.high),
        low=px(tick.low),
        close=px(tick.close),
    )
    if kind is PacketKind.QUOTE:
        return quote
    depth = tuple(KiteDepthEntry(level.quantity, px(level.price), level.orders) for level in (*tick.bids, *tick.asks))
    return msgspec.structs.replace(
        quote,
        last_trade_time=tick.ltt // 1000,
        oi=tick.oi,
        oi_day_high=tick.oi,
        oi_day_low=tick.oi,
        exchange_timestamp=seconds,
        depth=depth,
    )
