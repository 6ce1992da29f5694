"""Dhan Live Market Feed v2 and 20/200-level depth wire codec: pure, no I/O, no clock.

Market feed (server -> client): binary frames of one or more little-endian packets, each with an
8-byte header `u8 response code, u16 packet length (header included), u8 exchange segment, u32
security id`. Prices are float32 rupees, times epoch seconds. Packets: Ticker (2), Quote (4), OI (5),
previous close (6), market status (7), Full (8) and disconnect (50, with a reason 805-809).

Depth feeds (20 and 200 levels): frames of one or more packets with a 12-byte header `i16 packet
length, u8 response code (41 bid, 51 ask, 50 disconnect), u8 segment, i32 security id, u32 sequence
(20-depth) or row count (200-depth)`, then rows of `f64 price, u32 quantity, u32 orders`. Bid and ask
arrive as separate packets.

Requests (client -> server) are JSON text: `{"RequestCode":15,"InstrumentCount":N,"InstrumentList":
[{"ExchangeSegment":"NSE_EQ","SecurityId":"1333"}]}`, at most 100 instruments each; unsubscribe is
the subscribe code + 1.

Traps this codec handles: OHLC order is open, close, high, low; total sell quantity precedes total
buy; Quote LTQ is 16-bit; a Full depth row interleaves bid and ask; security ids are unique only
within a segment; currency prices carry four decimals (float32 noise is rounded away per segment).
"""

from __future__ import annotations

import enum
import json
import struct
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec

from openalgo_proxy.errors import ProxyError
from openalgo_proxy.model import DepthLevel, Mode, Tick

# ---------------------------------------------------------------------------------------------
# constants


class Segment(enum.IntEnum):
    """Exchange segment: the wire byte and its request text (`Segment.NSE_EQ.name`)."""

    IDX_I = 0
    NSE_EQ = 1
    NSE_FNO = 2
    NSE_CURRENCY = 3
    BSE_EQ = 4
    MCX_COMM = 5
    BSE_CURRENCY = 7
    BSE_FNO = 8


class RequestCode(enum.IntEnum):
    DISCONNECT = 12
    TICKER = 15
    UNSUBSCRIBE_TICKER = 16
    QUOTE = 17
    UNSUBSCRIBE_QUOTE = 18
    FULL = 21
    UNSUBSCRIBE_FULL = 22
    DEPTH = 23  # 20- and 200-level depth feeds
    UNSUBSCRIBE_DEPTH = 24


class ResponseCode(enum.IntEnum):
    TICKER = 2
    QUOTE = 4
    OI = 5
    PREV_CLOSE = 6
    MARKET_STATUS = 7
    FULL = 8
    DISCONNECT = 50
    DEPTH_BID = 41
    DEPTH_ASK = 51


class DisconnectReason(enum.IntEnum):
    TOO_MANY_CONNECTIONS = 805
    DATA_PLAN_NOT_SUBSCRIBED = 806
    TOKEN_EXPIRED = 807
    INVALID_CLIENT_ID = 808
    AUTH_FAILED = 809


DISCONNECT_MESSAGES: dict[int, str] = {
    805: "number of active WebSocket connections exceeded",
    806: "Data APIs not subscribed",
    807: "access token expired",
    808: "invalid client id",
    809: "authentication failed",
}

MAX_INSTRUMENTS_PER_REQUEST = 100
MAX_INSTRUMENTS_PER_CONNECTION = 5000
MAX_CONNECTIONS = 5
MAX_DEPTH_20_INSTRUMENTS = 50  # per 20-depth connection
DEPTH_SEGMENTS = frozenset({Segment.NSE_EQ, Segment.NSE_FNO})  # the only segments with 20/200 depth
CURRENCY_SEGMENTS = frozenset({Segment.NSE_CURRENCY, Segment.BSE_CURRENCY})

#: our client mode -> the subscribe request that carries it
SUBSCRIBE_CODE: dict[Mode, RequestCode] = {
    Mode.LTP: RequestCode.TICKER,
    Mode.QUOTE: RequestCode.QUOTE,
    Mode.DEPTH: RequestCode.FULL,
}
#: subscribe request code -> our client mode
CODE_MODE: dict[int, Mode] = {code: mode for mode, code in SUBSCRIBE_CODE.items()}

# ---------------------------------------------------------------------------------------------
# layouts

HEADER = struct.Struct("<BHBI")  # response code, packet length, segment, security id
TICKER = struct.Struct("<BHBIfI")
QUOTE = struct.Struct("<BHBIfHIfIIIffff")
OI = struct.Struct("<BHBII")
PREV_CLOSE = struct.Struct("<BHBIfI")
DISCONNECT = struct.Struct("<BHBIH")
FULL_ROW = "IIHHff"  # bid qty, ask qty, bid orders, ask orders, bid price, ask price
FULL_ROWS = 5
FULL = struct.Struct("<BHBIfHIfIIIIIIffff" + FULL_ROW * FULL_ROWS)
DEPTH_HEADER = struct.Struct("<hBBiI")  # length, code, segment, security id, sequence | row count
DEPTH_ROW = struct.Struct("<dII")  # price, quantity, orders

HEADER_SIZE = HEADER.size
DEPTH_HEADER_SIZE = DEPTH_HEADER.size
assert TICKER.size == 16
assert QUOTE.size == 50
assert OI.size == 12
assert PREV_CLOSE.size == 16
assert DISCONNECT.size == 10
assert FULL.size == 162
assert DEPTH_HEADER.size == 12
assert DEPTH_ROW.size == 16

PACKET_SIZES: dict[int, int] = {
    ResponseCode.TICKER: TICKER.size,
    ResponseCode.QUOTE: QUOTE.size,
    ResponseCode.OI: OI.size,
    ResponseCode.PREV_CLOSE: PREV_CLOSE.size,
    ResponseCode.MARKET_STATUS: HEADER.size,
    ResponseCode.FULL: FULL.size,
    ResponseCode.DISCONNECT: DISCONNECT.size,
}
DEPTH_20_LEVELS = 20
DEPTH_200_LEVELS = 200
DEPTH_20_PACKET_SIZE = DEPTH_HEADER_SIZE + DEPTH_20_LEVELS * DEPTH_ROW.size  # 332


# ---------------------------------------------------------------------------------------------
# typed packets (Dhan's fields and units: float32 rupees, epoch seconds)


class DhanCodecError(ProxyError):
    """Bytes or text that are not a valid Dhan message."""


class TickerPacket(msgspec.Struct, gc=False):
    segment: int
    security_id: int
    ltp: float
    ltt: int  # epoch seconds


class QuotePacket(msgspec.Struct, gc=False):
    segment: int
    security_id: int
    ltp: float
    ltq: int  # 16-bit on the wire
    ltt: int
    atp: float
    volume: int
    total_sell_quantity: int
    total_buy_quantity: int
    open: float
    close: float
    high: float
    low: float


class FullDepthRow(msgspec.Struct, frozen=True, gc=False):
    """One best-five row of a Full packet: bid and ask side by side, as on the wire."""

    bid_quantity: int
    ask_quantity: int
    bid_orders: int
    ask_orders: int
    bid_price: float
    ask_price: float


class FullPacket(msgspec.Struct, gc=False):
    segment: int
    security_id: int
    ltp: float
    ltq: int
    ltt: int
    atp: float
    volume: int
    total_sell_quantity: int
    total_buy_quantity: int
    oi: int
    oi_day_high: int
    oi_day_low: int
    open: float
    close: float
    high: float
    low: float
    depth: tuple[FullDepthRow, ...]


class OiPacket(msgspec.Struct, gc=False):
    segment: int
    security_id: int
    oi: int


class PrevClosePacket(msgspec.Struct, gc=False):
    segment: int
    security_id: int
    prev_close: float
    prev_oi: int


class MarketStatusPacket(msgspec.Struct, gc=False):
    segment: int
    security_id: int


class DisconnectPacket(msgspec.Struct, gc=False):
    segment: int
    security_id: int
    reason: int  # 805-809

    @property
    def message(self) -> str:
        return DISCONNECT_MESSAGES.get(self.reason, f"disconnect code {self.reason}")


class DepthRow(msgspec.Struct, frozen=True, gc=False):
    price: float  # float64 rupees
    quantity: int
    orders: int


class DepthPacket(msgspec.Struct, gc=False):
    """One side of a 20- or 200-level book."""

    bid: bool  # response code 41 (bid) or 51 (ask)
    segment: int
    security_id: int
    sequence: int  # 20-depth: sequence number; 200-depth: row count
    rows: tuple[DepthRow, ...]


MarketPacket = (
    TickerPacket | QuotePacket | FullPacket | OiPacket | PrevClosePacket | MarketStatusPacket | DisconnectPacket
)
TickPacket = TickerPacket | QuotePacket | FullPacket


class WireInstrument(msgspec.Struct, frozen=True, gc=False):
    """An instrument as Dhan's requests name it: (segment, security id); ids are unique only per segment."""

    segment: Segment
    security_id: str


class Request(msgspec.Struct, frozen=True):
    """A JSON request as the server reads it."""

    code: int
    instruments: tuple[WireInstrument, ...] = ()


# ---------------------------------------------------------------------------------------------
# decoding


def decode_frame(data: bytes) -> list[MarketPacket]:
    """A binary market-feed frame -> its packets, in order (a frame may carry several).

    Unknown response codes and code 0 are skipped by their length. Raises DhanCodecError for a
    truncated or malformed frame.
    """
    size = len(data)
    if size == 162 and data[0] == 8 and data[1] == 162 and data[2] == 0:  # one Full packet: the hot path
        return [_decode_one(8, data, 0)]
    out: list[MarketPacket] = []
    at = 0
    while at < size:
        if size - at < HEADER_SIZE:
            raise DhanCodecError(f"{size - at} trailing bytes are shorter than a packet header")
        code = data[at]
        length = data[at + 1] | (data[at + 2] << 8)
        expected = PACKET_SIZES.get(code)
        if expected is None:
            if length < HEADER_SIZE:
                raise DhanCodecError(f"response code {code} with impossible length {length}")
            at += length
            continue
        if length < expected:
            raise DhanCodecError(f"response code {code} needs {expected} bytes, header says {length}")
        if at + length > size:
            raise DhanCodecError(f"response code {code} packet of {length} bytes overruns the frame")
        out.append(_decode_one(code, data, at))
        at += length
    return out


def decode_packet(data: bytes, at: int = 0) -> MarketPacket:
    """The one packet at `at` (its header decides the layout)."""
    if len(data) - at < HEADER_SIZE:
        raise DhanCodecError("packet shorter than its header")
    code = data[at]
    expected = PACKET_SIZES.get(code)
    if expected is None:
        raise DhanCodecError(f"unknown response code {code}")
    if len(data) - at < expected:
        raise DhanCodecError(f"response code {code} needs {expected} bytes, got {len(data) - at}")
    return _decode_one(code, data, at)


def _decode_one(code: int, data: bytes, at: int) -> MarketPacket:
    if code == 8:
        v = FULL.unpack_from(data, at)
        row = FullDepthRow  # unrolled without slices: this is the hot path of the Full feed
        rows = (
            row(v[18], v[19], v[20], v[21], v[22], v[23]),
            row(v[24], v[25], v[26], v[27], v[28], v[29]),
            row(v[30], v[31], v[32], v[33], v[34], v[35]),
            row(v[36], v[37], v[38], v[39], v[40], v[41]),
            row(v[42], v[43], v[44], v[45], v[46], v[47]),
        )
        return FullPacket(
            v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12], v[13], v[14], v[15], v[16], v[17], rows
        )
    if code == 4:
        v = QUOTE.unpack_from(data, at)
        return QuotePacket(*v[2:])
    if code == 2:
        v = TICKER.unpack_from(data, at)
        return TickerPacket(v[2], v[3], v[4], v[5])
    if code == 5:
        v = OI.unpack_from(data, at)
        return OiPacket(v[2], v[3], v[4])
    if code == 6:
        v = PREV_CLOSE.unpack_from(data, at)
        return PrevClosePacket(v[2], v[3], v[4], v[5])
    if code == 7:
        v = HEADER.unpack_from(data, at)
        return MarketStatusPacket(v[2], v[3])
    v = DISCONNECT.unpack_from(data, at)
    return DisconnectPacket(v[2], v[3], v[4])


def decode_depth_frame(data: bytes, levels: int = DEPTH_20_LEVELS) -> list[DepthPacket | DisconnectPacket]:
    """A binary frame of the 20- (`levels=20`) or 200-level (`levels=200`) depth feed -> its packets.

    20-depth packets carry 20 rows and a sequence number; 200-depth packets carry the row count in
    the header's last field. A disconnect packet (code 50) carries its reason in that same field.
    """
    if levels not in (DEPTH_20_LEVELS, DEPTH_200_LEVELS):
        raise ValueError(f"depth feeds have 20 or 200 levels, not {levels}")
    out: list[DepthPacket | DisconnectPacket] = []
    size = len(data)
    at = 0
    row_size = DEPTH_ROW.size
    while at < size:
        if size - at < DEPTH_HEADER_SIZE:
            raise DhanCodecError(f"{size - at} trailing bytes are shorter than a depth header")
        length, code, segment, security_id, last = DEPTH_HEADER.unpack_from(data, at)
        if length < DEPTH_HEADER_SIZE or at + length > size:
            raise DhanCodecError(f"depth packet length {length} is impossible in a {size - at}-byte remainder")
        if code == ResponseCode.DISCONNECT:
            out.append(DisconnectPacket(segment, security_id, last))
        elif code == ResponseCode.DEPTH_BID or code == ResponseCode.DEPTH_ASK:
            room = (length - DEPTH_HEADER_SIZE) // row_size
            count = min(room, DEPTH_20_LEVELS) if levels == DEPTH_20_LEVELS else min(last, room, DEPTH_200_LEVELS)
            base = at + DEPTH_HEADER_SIZE
            rows = tuple(DepthRow(*DEPTH_ROW.unpack_from(data, base + i * row_size)) for i in range(count))
            out.append(DepthPacket(code == ResponseCode.DEPTH_BID, segment, security_id, last, rows))
        at += length
    return out


_PRICE_CACHE_LIMIT = 100_000
#: float32 wire price -> its rounded rupee value, one table per precision (a dict lookup costs a
#: fifth of round(); prices repeat heavily, so nearly every lookup hits)
_ROUNDED: dict[float, dict[float, float]] = {100.0: {}, 10_000.0: {}}


def _learn(cache: dict[float, float], value: float, scale: float) -> float:
    if len(cache) >= _PRICE_CACHE_LIMIT:
        cache.clear()
    rounded = cache[value] = round(value * scale) / scale
    return rounded


def round_price(value: float, segment: int) -> float:
    """A wire float32 price as the rupee value it stands for (2 decimals, 4 for currency)."""
    scale = 10_000.0 if segment == 3 or segment == 7 else 100.0
    cache = _ROUNDED[scale]
    return cache[value] if value in cache else _learn(cache, value, scale)


def to_tick(packet: TickPacket, symbol: str, exchange: str, oi: int = 0, prev_close: float = 0.0) -> Tick:
    """The one conversion from a Dhan Ticker, Quote or Full packet to our tick.

    Prices are rounded to the segment's precision (2 decimals, 4 for currency) to drop float32 noise;
    times become epoch milliseconds. `oi` and `prev_close` are what the adapter last received in OI
    and previous-close packets for this instrument (a Quote carries neither; a Full carries its OI).
    A Quote or Full with close 0 takes `prev_close`.
    """
    scale = 10_000.0 if packet.segment == 3 or packet.segment == 7 else 100.0
    cache = _ROUNDED[scale]
    ltt = packet.ltt * 1000
    if type(packet) is FullPacket:
        r1, r2, r3, r4, r5 = packet.depth
        wire = (
            packet.ltp,
            packet.open,
            packet.high,
            packet.low,
            packet.close or prev_close,
            packet.atp,
            r1.bid_price,
            r2.bid_price,
            r3.bid_price,
            r4.bid_price,
            r5.bid_price,
            r1.ask_price,
            r2.ask_price,
            r3.ask_price,
            r4.ask_price,
            r5.ask_price,
        )
        try:
            prices: Sequence[float] = tuple(map(cache.__getitem__, wire))
        except KeyError:
            prices = [cache[v] if v in cache else _learn(cache, v, scale) for v in wire]
        ltp, open_, high, low, close, atp, b1, b2, b3, b4, b5, a1, a2, a3, a4, a5 = prices
        lv = DepthLevel
        return Tick(
            symbol,
            exchange,
            Mode.DEPTH,
            ltp,
            ltt,
            ltt,
            open_,
            high,
            low,
            close,
            packet.volume,
            atp,
            packet.ltq,
            packet.total_buy_quantity,
            packet.total_sell_quantity,
            packet.oi,
            0.0,
            0.0,
            (
                lv(b1, r1.bid_quantity, r1.bid_orders),
                lv(b2, r2.bid_quantity, r2.bid_orders),
                lv(b3, r3.bid_quantity, r3.bid_orders),
                lv(b4, r4.bid_quantity, r4.bid_orders),
                lv(b5, r5.bid_quantity, r5.bid_orders),
            ),
            (
                lv(a1, r1.ask_quantity, r1.ask_orders),
                lv(a2, r2.ask_quantity, r2.ask_orders),
                lv(a3, r3.ask_quantity, r3.ask_orders),
                lv(a4, r4.ask_quantity, r4.ask_orders),
                lv(a5, r5.ask_quantity, r5.ask_orders),
            ),
        )
    if type(packet) is QuotePacket:
        quote_wire = (packet.ltp, packet.open, packet.high, packet.low, packet.close or prev_close, packet.atp)
        try:
            prices = list(map(cache.__getitem__, quote_wire))
        except KeyError:
            prices = [cache[v] if v in cache else _learn(cache, v, scale) for v in quote_wire]
        return Tick(
            symbol,
            exchange,
            Mode.QUOTE,
            prices[0],
            ltt,
            ltt,
            prices[1],
            prices[2],
            prices[3],
            prices[4],
            packet.volume,
            prices[5],
            packet.ltq,
            packet.total_buy_quantity,
            packet.total_sell_quantity,
            oi,
        )
    ltp = packet.ltp
    return Tick(symbol, exchange, Mode.LTP, cache[ltp] if ltp in cache else _learn(cache, ltp, scale), ltt, ltt)


def depth_levels(rows: Sequence[DepthRow], count: int) -> tuple[DepthLevel, ...]:
    """The first `count` rows of a 20/200-depth side as our levels (prices are float64 already)."""
    return tuple(DepthLevel(r.price, r.quantity, r.orders) for r in rows[:count])


# ---------------------------------------------------------------------------------------------
# requests


def _instrument_entry(inst: WireInstrument) -> dict[str, str]:
    return {"ExchangeSegment": Segment(inst.segment).name, "SecurityId": inst.security_id}


def batches(
    items: Sequence[WireInstrument], size: int = MAX_INSTRUMENTS_PER_REQUEST
) -> list[tuple[WireInstrument, ...]]:
    return [tuple(items[i : i + size]) for i in range(0, len(items), size)]


def subscribe_requests(code: RequestCode | int, instruments: Sequence[WireInstrument]) -> list[str]:
    """Subscribe (15/17/21/23) requests for `instruments`, 100 per message (50 for 20-depth)."""
    size = MAX_DEPTH_20_INSTRUMENTS if int(code) == RequestCode.DEPTH else MAX_INSTRUMENTS_PER_REQUEST
    return [_list_request(int(code), batch) for batch in batches(instruments, size)]


def unsubscribe_requests(subscribe_code: RequestCode | int, instruments: Sequence[WireInstrument]) -> list[str]:
    """Unsubscribe requests: the subscribe code + 1, same batching."""
    size = MAX_DEPTH_20_INSTRUMENTS if int(subscribe_code) == RequestCode.DEPTH else MAX_INSTRUMENTS_PER_REQUEST
    return [_list_request(int(subscribe_code) + 1, batch) for batch in batches(instruments, size)]


def _list_request(code: int, batch: Iterable[WireInstrument]) -> str:
    entries = [_instrument_entry(inst) for inst in batch]
    body = {"RequestCode": code, "InstrumentCount": len(entries), "InstrumentList": entries}
    return json.dumps(body, separators=(",", ":"))


def depth_200_request(instrument: WireInstrument, subscribe: bool = True) -> str:
    """The 200-depth feed takes one instrument per request, without a list."""
    code = RequestCode.DEPTH if subscribe else RequestCode.UNSUBSCRIBE_DEPTH
    body = {"RequestCode": int(code), **_instrument_entry(instrument)}
    return json.dumps(body, separators=(",", ":"))


def disconnect_request() -> str:
    return '{"RequestCode":12}'


def _segment(value: object) -> Segment:
    if isinstance(value, str):
        if value in Segment.__members__:
            return Segment[value]
        if value.isdigit():
            return Segment(int(value))
    elif isinstance(value, int) and not isinstance(value, bool):
        return Segment(value)
    raise ValueError(f"unknown exchange segment {value!r}")


def _instrument(entry: object) -> WireInstrument:
    if not isinstance(entry, dict):
        raise TypeError("instrument entry is not an object")
    security_id = entry["SecurityId"]
    if isinstance(security_id, int) and not isinstance(security_id, bool):
        security_id = str(security_id)
    if not isinstance(security_id, str) or not security_id.isdigit() or len(security_id) > 10:
        raise ValueError(f"invalid SecurityId {security_id!r}")
    return WireInstrument(_segment(entry["ExchangeSegment"]), security_id)


def decode_request(text: str | bytes) -> Request:
    """A client's JSON request as the server validates it; DhanCodecError when invalid."""
    try:
        obj: Any = json.loads(text)
    except ValueError:
        raise DhanCodecError("request is not JSON") from None
    if not isinstance(obj, dict):
        raise DhanCodecError("request is not an object")
    try:
        code = obj["RequestCode"]
        if not isinstance(code, int) or isinstance(code, bool):
            raise TypeError("RequestCode")
        if code == RequestCode.DISCONNECT:
            return Request(code)
        if "InstrumentList" in obj:
            entries = obj["InstrumentList"]
            if not isinstance(entries, list):
                raise TypeError("InstrumentList")
            instruments = tuple(_instrument(e) for e in entries)
            count = obj.get("InstrumentCount", len(instruments))
            if count != len(instruments):
                raise ValueError(f"InstrumentCount {count} != {len(instruments)} entries")
            if len(instruments) > MAX_INSTRUMENTS_PER_REQUEST:
                raise ValueError(f"more than {MAX_INSTRUMENTS_PER_REQUEST} instruments in one request")
        else:  # the 200-depth form: one instrument at the top level
            instruments = (_instrument(obj),)
    except (KeyError, TypeError, ValueError) as exc:
        raise DhanCodecError(f"invalid request ({exc})") from None
    return Request(code, instruments)


# ---------------------------------------------------------------------------------------------
# encoding (simulator and tests)


def encode_packet(packet: MarketPacket) -> bytes:
    """The exact bytes Dhan sends for one market-feed packet."""
    p = packet
    try:
        if isinstance(p, FullPacket):
            if len(p.depth) != FULL_ROWS:
                raise DhanCodecError("a Full packet needs 5 depth rows")
            flat: list[float | int] = []
            for r in p.depth:
                flat += (r.bid_quantity, r.ask_quantity, r.bid_orders, r.ask_orders, r.bid_price, r.ask_price)
            return FULL.pack(
                ResponseCode.FULL,
                FULL.size,
                p.segment,
                p.security_id,
                p.ltp,
                p.ltq,
                p.ltt,
                p.atp,
                p.volume,
                p.total_sell_quantity,
                p.total_buy_quantity,
                p.oi,
                p.oi_day_high,
                p.oi_day_low,
                p.open,
                p.close,
                p.high,
                p.low,
                *flat,
            )
        if isinstance(p, QuotePacket):
            return QUOTE.pack(
                ResponseCode.QUOTE,
                QUOTE.size,
                p.segment,
                p.security_id,
                p.ltp,
                p.ltq,
                p.ltt,
                p.atp,
                p.volume,
                p.total_sell_quantity,
                p.total_buy_quantity,
                p.open,
                p.close,
                p.high,
                p.low,
            )
        if isinstance(p, TickerPacket):
            return TICKER.pack(ResponseCode.TICKER, TICKER.size, p.segment, p.security_id, p.ltp, p.ltt)
        if isinstance(p, OiPacket):
            return OI.pack(ResponseCode.OI, OI.size, p.segment, p.security_id, p.oi)
        if isinstance(p, PrevClosePacket):
            return PREV_CLOSE.pack(
                ResponseCode.PREV_CLOSE, PREV_CLOSE.size, p.segment, p.security_id, p.prev_close, p.prev_oi
            )
        if isinstance(p, MarketStatusPacket):
            return HEADER.pack(ResponseCode.MARKET_STATUS, HEADER.size, p.segment, p.security_id)
        return DISCONNECT.pack(ResponseCode.DISCONNECT, DISCONNECT.size, p.segment, p.security_id, p.reason)
    except struct.error as exc:
        raise DhanCodecError(f"value out of range for the wire layout: {exc}") from None


def encode_depth_packet(packet: DepthPacket | DisconnectPacket, levels: int = DEPTH_20_LEVELS) -> bytes:
    """The exact bytes of one 20/200-depth packet (a 200-depth packet's last header field is its row count)."""
    try:
        if isinstance(packet, DisconnectPacket):
            return DEPTH_HEADER.pack(
                DEPTH_HEADER_SIZE, ResponseCode.DISCONNECT, packet.segment, packet.security_id, packet.reason
            )
        rows = packet.rows
        if levels == DEPTH_20_LEVELS:
            rows = tuple(rows[:DEPTH_20_LEVELS]) + (DepthRow(0.0, 0, 0),) * (DEPTH_20_LEVELS - len(rows))
            last = packet.sequence
        else:
            rows = tuple(rows[:DEPTH_200_LEVELS])
            last = len(rows)
        length = DEPTH_HEADER_SIZE + DEPTH_ROW.size * len(rows)
        code = ResponseCode.DEPTH_BID if packet.bid else ResponseCode.DEPTH_ASK
        head = DEPTH_HEADER.pack(length, code, packet.segment, packet.security_id, last)
        return head + b"".join(DEPTH_ROW.pack(r.price, r.quantity, r.orders) for r in rows)
    except struct.error as exc:
        raise DhanCodecError(f"value out of range for the depth layout: {exc}") from None


def packets_from_tick(
    tick: Tick, code: RequestCode | int, segment: int, security_id: int, prev_close: float = 0.0
) -> list[MarketPacket]:
    """The packets Dhan sends for `tick` under subscription `code` (15, 17, 21; simulator side).

    Ticker: one Ticker packet. Quote: for derivatives an OI packet, then a Quote packet. Full: one
    Full packet. Epoch-millisecond times become epoch seconds.
    """
    code = int(code)
    ltt = tick.ltt // 1000
    if code == RequestCode.TICKER:
        return [TickerPacket(segment, security_id, tick.ltp, ltt)]
    if code == RequestCode.QUOTE:
        quote = QuotePacket(
            segment,
            security_id,
            tick.ltp,
            tick.last_trade_quantity & 0xFFFF,
            ltt,
            tick.avg_trade_price,
            tick.volume,
            tick.total_sell_quantity,
            tick.total_buy_quantity,
            tick.open,
            tick.close or prev_close,
            tick.high,
            tick.low,
        )
        # the OI first, so that the Quote it belongs to already carries it downstream
        return [OiPacket(segment, security_id, tick.oi), quote] if tick.oi else [quote]
    if code != RequestCode.FULL:
        raise DhanCodecError(f"no market-feed packet for request code {code}")
    rows = []
    for i in range(FULL_ROWS):
        bid = tick.bids[i] if i < len(tick.bids) else DepthLevel(0.0, 0, 0)
        ask = tick.asks[i] if i < len(tick.asks) else DepthLevel(0.0, 0, 0)
        rows.append(FullDepthRow(bid.quantity, ask.quantity, bid.orders, ask.orders, bid.price, ask.price))
    return [
        FullPacket(
            segment,
            security_id,
            tick.ltp,
            tick.last_trade_quantity & 0xFFFF,
            ltt,
            tick.avg_trade_price,
            tick.volume,
            tick.total_sell_quantity,
            tick.total_buy_quantity,
            tick.oi,
            tick.oi,
            tick.oi,
            tick.open,
            tick.close or prev_close,
            tick.high,
            tick.low,
            tuple(rows),
        )
    ]
