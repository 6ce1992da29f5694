"""Angel One SmartAPI WebSocket 2.0 wire codec: pure, no I/O, no clock.

Binary frames (server -> client) are little-endian packets, one per frame (docs/adding-a-broker.md, "Angel" wire notes):
LTP 51 bytes, Quote 123, SnapQuote 379, Depth-20 443. Prices on the wire are paise (for currency
derivatives, exchange type 13, units of 1e-7 rupee). Text frames carry JSON requests (client -> server),
JSON error replies and the heartbeat `pong`.

Two message types: the wire packet (`MarketPacket`, `Depth20Packet`: Angel's fields and units) and our
`Tick`; `to_tick` is the one conversion between them. The encoders serve the simulator and the tests.
The codec is table-driven: one struct layout per packet kind, and the packet types list their fields
in wire order, so a packet is its layout's values (records flattened) in field order.
"""

from __future__ import annotations

import enum
import json
import math
import operator
import struct
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import msgspec

from openalgo_proxy.errors import ProxyError
from openalgo_proxy.model import DepthLevel, Mode, Tick


class SubscriptionMode(enum.IntEnum):
    LTP = 1
    QUOTE = 2
    SNAP_QUOTE = 3
    DEPTH_20 = 4


class ExchangeType(enum.IntEnum):
    NSE_CM = 1
    NSE_FO = 2
    BSE_CM = 3
    BSE_FO = 4
    MCX_FO = 5
    NCX_FO = 7
    CDE_FO = 13


class Action(enum.IntEnum):
    UNSUBSCRIBE = 0
    SUBSCRIBE = 1


class ErrorCodes:
    INVALID_REQUEST = "E1001"
    LIMIT_EXCEEDED = "E1002"


ERROR_MESSAGES: dict[str, str] = {
    ErrorCodes.INVALID_REQUEST: "Invalid Request Payload.",
    ErrorCodes.LIMIT_EXCEEDED: "Invalid Request. Subscription Limit Exceeded.",
}

TOKEN_LENGTH = 25
BEST_FIVE_RECORDS = 10  # 5 buy then 5 sell, side decided by each record's flag
DEPTH_20_LEVELS = 20
BUY_FLAG = 1
SELL_FLAG = 0
PAISE = 100.0
CURRENCY_DIVISOR = 10_000_000.0
HEARTBEAT = "ping"
HEARTBEAT_REPLY = "pong"

#: our client mode -> the Angel subscription mode that carries it
UPSTREAM_MODE: dict[Mode, SubscriptionMode] = {
    Mode.LTP: SubscriptionMode.LTP,
    Mode.QUOTE: SubscriptionMode.QUOTE,
    Mode.DEPTH: SubscriptionMode.SNAP_QUOTE,
}

_EPOCH_MS_FLOOR = 100_000_000_000  # below this a timestamp is in seconds (before 1973 in ms)
_TICK_MODE: dict[int, Mode] = {1: Mode.LTP, 2: Mode.QUOTE, 3: Mode.DEPTH, 4: Mode.DEPTH}


def price_divisor(exchange_type: int) -> float:
    """Wire price units per rupee for an exchange type."""
    return CURRENCY_DIVISOR if exchange_type == ExchangeType.CDE_FO else PAISE


# ---------------------------------------------------------------------------------------------
# layouts: one struct.Struct per packet kind; each layout's values are its packet's fields in order

_HEADER = "<BB25sqqq"  # mode, exchange type, token, sequence, exchange timestamp, ltp
_QUOTE_TAIL = "qqqddqqqq"  # ltq, atp, volume, total buy qty, total sell qty, open, high, low, close
_SNAP_TAIL = "qqd" + "hqqh" * BEST_FIVE_RECORDS + "qqqq"  # ltt, oi, oi change %, best five, circuits, 52w

LTP_STRUCT = struct.Struct(_HEADER)
QUOTE_STRUCT = struct.Struct(_HEADER + _QUOTE_TAIL)
SNAP_QUOTE_STRUCT = struct.Struct(_HEADER + _QUOTE_TAIL + _SNAP_TAIL)
DEPTH_20_STRUCT = struct.Struct("<BB25sqq" + "iih" * (2 * DEPTH_20_LEVELS))  # 20 buy then 20 sell levels

#: subscription mode -> the layout of its packets
LAYOUTS: dict[int, struct.Struct] = {1: LTP_STRUCT, 2: QUOTE_STRUCT, 3: SNAP_QUOTE_STRUCT, 4: DEPTH_20_STRUCT}
PACKET_SIZES: dict[int, int] = {mode: layout.size for mode, layout in LAYOUTS.items()}
LTP_SIZE, QUOTE_SIZE, SNAP_QUOTE_SIZE, DEPTH_20_SIZE = PACKET_SIZES.values()
#: market mode -> how many of MarketPacket's fields (in order) its packets carry
_MARKET_FIELDS: dict[int, int] = {1: 6, 2: 15, 3: 23}
_BEST_FIVE_AT, _BEST_FIVE_END = 18, 58  # the best-five records: SnapQuote values 18-57, MarketPacket field 18


def _record_fields(start: int, width: int, count: int) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
    """Of `count` records of `width` values laid out from `values[start]`: each field's values, in order."""
    return operator.itemgetter(*(slice(start + i, start + width * count, width) for i in range(width)))


_BEST_FIVE = _record_fields(_BEST_FIVE_AT, 4, BEST_FIVE_RECORDS)
_DEPTH_20_BUY = _record_fields(5, 3, DEPTH_20_LEVELS)
_DEPTH_20_SELL = _record_fields(5 + 3 * DEPTH_20_LEVELS, 3, DEPTH_20_LEVELS)


# ---------------------------------------------------------------------------------------------
# typed packets (Angel's names and units, fields in wire order)


class AngelCodecError(ProxyError):
    """Bytes or text that are not a valid Angel message."""


class BestFiveRecord(msgspec.Struct, frozen=True, gc=False):
    flag: int  # 1 buy, 0 sell
    quantity: int
    price: int  # wire units
    orders: int


class Depth20Level(msgspec.Struct, frozen=True, gc=False):
    quantity: int
    price: int  # wire units
    orders: int


class MarketPacket(msgspec.Struct, gc=False):
    """Modes 1 (LTP), 2 (Quote) and 3 (SnapQuote). Fields a mode does not carry stay 0."""

    mode: int
    exchange_type: int
    token: str
    sequence_number: int
    exchange_timestamp: int
    last_traded_price: int
    last_traded_quantity: int = 0
    average_traded_price: int = 0
    volume: int = 0
    total_buy_quantity: float = 0.0
    total_sell_quantity: float = 0.0
    open: int = 0
    high: int = 0
    low: int = 0
    close: int = 0
    last_traded_timestamp: int = 0  # epoch seconds on the real service
    open_interest: int = 0
    open_interest_change_percent: float = 0.0  # documented as a dummy field
    best_five: tuple[BestFiveRecord, ...] = ()
    upper_circuit: int = 0
    lower_circuit: int = 0
    week_52_high: int = 0
    week_52_low: int = 0


class Depth20Packet(msgspec.Struct, gc=False):
    """Mode 4: 20 levels per side, NSE cash only."""

    mode: int
    exchange_type: int
    token: str
    exchange_timestamp: int
    packet_received_time: int
    buy: tuple[Depth20Level, ...]
    sell: tuple[Depth20Level, ...]


AngelPacket = MarketPacket | Depth20Packet


class ErrorReply(msgspec.Struct, frozen=True):
    """`{"correlationID":..,"errorCode":"E1002","errorMessage":..}`"""

    correlation_id: str
    code: str
    message: str

    @property
    def limit_exceeded(self) -> bool:
        return self.code == ErrorCodes.LIMIT_EXCEEDED


class Pong(msgspec.Struct, frozen=True):
    """The server's answer to a text `ping`."""


TextMessage = ErrorReply | Pong


class Request(msgspec.Struct, frozen=True):
    """A subscribe/unsubscribe request as the server reads it."""

    action: Action
    mode: SubscriptionMode
    tokens: dict[int, tuple[str, ...]]  # exchange type -> tokens, in request order
    correlation_id: str = ""


# ---------------------------------------------------------------------------------------------
# decoding


def _token(raw: bytes) -> str:
    try:
        return raw.split(b"\x00", 1)[0].decode("ascii")
    except UnicodeDecodeError:
        raise AngelCodecError("token is not ASCII") from None


def decode_packet(data: bytes) -> AngelPacket:
    """One binary frame -> its typed packet. Raises AngelCodecError for anything malformed."""
    size = len(data)
    if size < 2:
        raise AngelCodecError(f"packet of {size} bytes is too short")
    mode = data[0]
    layout = LAYOUTS.get(mode)
    if layout is None:
        raise AngelCodecError(f"unknown subscription mode {mode}")
    if size < layout.size:
        raise AngelCodecError(f"mode {mode} packet needs {layout.size} bytes, got {size}")
    v = layout.unpack_from(data)
    token = _token(v[2])
    if mode == 4:
        buy, sell = tuple(map(Depth20Level, *_DEPTH_20_BUY(v))), tuple(map(Depth20Level, *_DEPTH_20_SELL(v)))
        return Depth20Packet(4, v[1], token, v[3], v[4], buy, sell)
    # total buy/sell quantities are doubles: NaN or infinity is a malformed packet (int() of it
    # would raise in to_tick, out of the read loop, and drop the connection)
    if mode > 1 and not (math.isfinite(v[9]) and math.isfinite(v[10])):
        raise AngelCodecError("total buy/sell quantity is not a finite number")
    if mode == 3:
        five = tuple(map(BestFiveRecord, *_BEST_FIVE(v)))
        return MarketPacket(*(3, v[1], token, *v[3:_BEST_FIVE_AT], five, *v[_BEST_FIVE_END:]))
    return MarketPacket(*(mode, v[1], token, *v[3:]))


def depth_levels(records: Sequence[BestFiveRecord | Depth20Level], divisor: float) -> tuple[DepthLevel, ...]:
    """Wire book records -> our levels in rupees, in order."""
    return tuple([DepthLevel(r.price / divisor, r.quantity, r.orders) for r in records])


_NO_FIVE = (BestFiveRecord(-1, 0, 0, 0),) * BEST_FIVE_RECORDS  # not the usual layout


def _five_levels(
    a: BestFiveRecord, b: BestFiveRecord, c: BestFiveRecord, d: BestFiveRecord, e: BestFiveRecord, div: float
) -> tuple[DepthLevel, ...]:
    """`depth_levels` of five records, unrolled: the hot path of every SnapQuote (twice as fast as a loop)."""
    return (
        DepthLevel(a.price / div, a.quantity, a.orders),
        DepthLevel(b.price / div, b.quantity, b.orders),
        DepthLevel(c.price / div, c.quantity, c.orders),
        DepthLevel(d.price / div, d.quantity, d.orders),
        DepthLevel(e.price / div, e.quantity, e.orders),
    )


def to_tick(packet: AngelPacket, instrument_symbol: str, client_exchange: str) -> Tick:
    """The one conversion from Angel's packet to our tick: rupees, best five by flag.

    A Depth-20 packet carries no trade fields: its tick has mode DEPTH, the best five levels of each
    side, and zeros elsewhere (the adapter never subscribes mode 4; this serves direct codec users).
    """
    div = CURRENCY_DIVISOR if packet.exchange_type == 13 else PAISE
    if isinstance(packet, Depth20Packet):
        bids, asks = depth_levels(packet.buy[:5], div), depth_levels(packet.sell[:5], div)
        return Tick(
            instrument_symbol, client_exchange, Mode.DEPTH, 0.0, 0, packet.exchange_timestamp, bids=bids, asks=asks
        )
    mode = packet.mode
    if mode == 1:
        return Tick(
            instrument_symbol, client_exchange, Mode.LTP, packet.last_traded_price / div, 0, packet.exchange_timestamp
        )
    bids = asks = ()
    if mode == 3:
        five = packet.best_five
        b1, b2, b3, b4, b5, s1, s2, s3, s4, s5 = five if len(five) == BEST_FIVE_RECORDS else _NO_FIVE
        if (
            b1.flag == b2.flag == b3.flag == b4.flag == b5.flag == 1
            and s1.flag == s2.flag == s3.flag == s4.flag == s5.flag == 0
        ):
            bids, asks = _five_levels(b1, b2, b3, b4, b5, div), _five_levels(s1, s2, s3, s4, s5, div)
        else:  # any other order: the flag decides the side
            bids = depth_levels([r for r in five if r.flag == BUY_FLAG][:5], div)
            asks = depth_levels([r for r in five if r.flag != BUY_FLAG][:5], div)
    ltt = packet.last_traded_timestamp
    if 0 < ltt < _EPOCH_MS_FLOOR:  # Angel sends the last trade time in epoch seconds
        ltt *= 1000
    return Tick(
        instrument_symbol,
        client_exchange,
        _TICK_MODE[mode],
        packet.last_traded_price / div,
        ltt,
        packet.exchange_timestamp,
        packet.open / div,
        packet.high / div,
        packet.low / div,
        packet.close / div,
        packet.volume,
        packet.average_traded_price / div,
        packet.last_traded_quantity,
        int(packet.total_buy_quantity),
        int(packet.total_sell_quantity),
        packet.open_interest,
        packet.upper_circuit / div,
        packet.lower_circuit / div,
        bids,
        asks,
    )


def decode_text(text: str) -> TextMessage:
    """A text frame from the server: `pong` or an error reply."""
    if text.strip() == HEARTBEAT_REPLY:
        return Pong()
    try:
        obj = json.loads(text)
        return ErrorReply(
            str(obj.get("correlationID") or ""), str(obj["errorCode"]), str(obj.get("errorMessage") or "")
        )
    except (ValueError, TypeError, KeyError, AttributeError):
        raise AngelCodecError(f"text frame is neither pong nor an error reply: {text[:80]!r}") from None


def decode_request(text: str) -> Request:
    """A client's JSON request as the server validates it; AngelCodecError for an invalid payload."""
    try:
        obj = json.loads(text)
        action, params = Action(obj["action"]), obj["params"]
        mode, token_list = SubscriptionMode(params["mode"]), params["tokenList"]
        if not isinstance(token_list, list):
            raise TypeError("tokenList")
        tokens: dict[int, tuple[str, ...]] = {}
        for entry in token_list:
            etype, values = int(ExchangeType(entry["exchangeType"])), entry["tokens"]
            if not isinstance(values, list) or not all(
                isinstance(t, str) and 0 < len(t) <= TOKEN_LENGTH for t in values
            ):
                raise TypeError("tokens")
            tokens[etype] = tokens.get(etype, ()) + tuple(values)
        return Request(action, mode, tokens, str(obj.get("correlationID") or ""))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise AngelCodecError(f"invalid request payload ({exc})") from None


# ---------------------------------------------------------------------------------------------
# encoding


def _flat(records: Sequence[BestFiveRecord | Depth20Level]) -> list[int]:
    return [value for record in records for value in msgspec.structs.astuple(record)]


def encode_packet(packet: AngelPacket) -> bytes:
    """The exact bytes Angel sends for `packet` (used by the simulator and fixtures)."""
    raw = packet.token.encode("ascii")
    if not raw or len(raw) > TOKEN_LENGTH:
        raise AngelCodecError(f"token {packet.token!r} must be 1-{TOKEN_LENGTH} ASCII characters")
    values = list(msgspec.structs.astuple(packet))
    values[2] = raw
    if isinstance(packet, Depth20Packet):
        if len(packet.buy) != DEPTH_20_LEVELS or len(packet.sell) != DEPTH_20_LEVELS:
            raise AngelCodecError("a Depth-20 packet needs 20 levels per side")
        layout, values = DEPTH_20_STRUCT, [4, *values[1:5], *_flat(packet.buy + packet.sell)]
    elif packet.mode not in _MARKET_FIELDS:
        raise AngelCodecError(f"cannot encode mode {packet.mode}")
    else:
        layout = LAYOUTS[packet.mode]
        del values[_MARKET_FIELDS[packet.mode] :]
        if packet.mode == 3:
            if len(packet.best_five) != BEST_FIVE_RECORDS:
                raise AngelCodecError("a SnapQuote packet needs 10 best-five records")
            values[_BEST_FIVE_AT : _BEST_FIVE_AT + 1] = _flat(packet.best_five)
    try:
        return layout.pack(*values)
    except struct.error as exc:
        raise AngelCodecError(f"value out of range for the wire layout: {exc}") from None


def _records(levels: Sequence[DepthLevel], flag: int, div: float) -> tuple[BestFiveRecord, ...]:
    out = [BestFiveRecord(flag, lv.quantity, round(lv.price * div), lv.orders) for lv in levels[:5]]
    return tuple(out + [BestFiveRecord(flag, 0, 0, 0)] * (5 - len(out)))


def _depth_20_records(levels: Sequence[DepthLevel], div: float) -> tuple[Depth20Level, ...]:
    out = [Depth20Level(lv.quantity, round(lv.price * div), lv.orders) for lv in levels[:DEPTH_20_LEVELS]]
    return tuple(out + [Depth20Level(0, 0, 0)] * (DEPTH_20_LEVELS - len(out)))


def packet_from_tick(
    tick: Tick,
    mode: SubscriptionMode | int,
    exchange_type: int,
    token: str,
    sequence_number: int = 0,
    week_52: tuple[float, float] = (0.0, 0.0),
) -> AngelPacket:
    """The packet Angel would send for `tick` in `mode` (simulator side; rupees -> wire units)."""
    div = price_divisor(exchange_type)
    if mode == 4:
        book = _depth_20_records(tick.bids, div), _depth_20_records(tick.asks, div)
        return Depth20Packet(4, exchange_type, token, tick.exchange_time, tick.exchange_time, *book)

    def units(value: float) -> int:
        return round(value * div)

    head = (int(mode), exchange_type, token, sequence_number, tick.exchange_time, units(tick.ltp))
    trade = (tick.last_trade_quantity, units(tick.avg_trade_price), tick.volume)
    totals = (float(tick.total_buy_quantity), float(tick.total_sell_quantity))
    ohlc = map(units, (tick.open, tick.high, tick.low, tick.close))
    five = _records(tick.bids, BUY_FLAG, div) + _records(tick.asks, SELL_FLAG, div)
    snap = (tick.ltt, tick.oi, 0.0, five, *map(units, (tick.upper_circuit, tick.lower_circuit, *week_52)))
    values: tuple[Any, ...] = (*head, *trade, *totals, *ohlc, *snap)
    return MarketPacket(*values[: _MARKET_FIELDS.get(int(mode), len(values))])


def _request(
    action: Action, mode: SubscriptionMode | int, tokens: Mapping[int, Sequence[str]], correlation_id: str
) -> str:
    token_list = [{"exchangeType": int(etype), "tokens": list(values)} for etype, values in tokens.items() if values]
    body = {
        "correlationID": correlation_id,
        "action": int(action),
        "params": {"mode": int(mode), "tokenList": token_list},
    }
    return json.dumps(body, separators=(",", ":"))


def subscribe_request(
    mode: SubscriptionMode | int, tokens: Mapping[int, Sequence[str]], correlation_id: str = ""
) -> str:
    """`{"correlationID":..,"action":1,"params":{"mode":M,"tokenList":[{"exchangeType":E,"tokens":[..]}]}}`"""
    return _request(Action.SUBSCRIBE, mode, tokens, correlation_id)


def unsubscribe_request(
    mode: SubscriptionMode | int, tokens: Mapping[int, Sequence[str]], correlation_id: str = ""
) -> str:
    return _request(Action.UNSUBSCRIBE, mode, tokens, correlation_id)


def encode_error(code: str, correlation_id: str = "") -> str:
    """The server's JSON error reply for an error code (E1001, E1002)."""
    message = ERROR_MESSAGES.get(code, "Error")
    return json.dumps(
        {"correlationID": correlation_id, "errorCode": code, "errorMessage": message}, separators=(",", ":")
    )
