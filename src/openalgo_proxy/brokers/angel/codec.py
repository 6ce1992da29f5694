"""Angel One SmartAPI WebSocket 2.0 wire codec: pure, no I/O, no clock.

Binary frames (server -> client) are little-endian packets, one per frame (docs/adding-a-broker.md, "Angel" wire notes):
LTP 51 bytes, Quote 123, SnapQuote 379, Depth-20 443. Prices on the wire are paise (for currency
derivatives, exchange type 13, units of 1e-7 rupee). Text frames carry JSON requests (client -> server),
JSON error replies and the heartbeat `pong`.

Two message types: the wire packet (`MarketPacket`, `Depth20Packet`: Angel's fields and units) and our
`Tick`; `to_tick` is the one conversion between them. The encoders serve the simulator and the tests.
"""

from __future__ import annotations

import enum
import json
import math
import struct
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from openalgo_proxy.errors import ProxyError
from openalgo_proxy.model import DepthLevel, Mode, Tick

# ---------------------------------------------------------------------------------------------
# constants


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
LTP_SIZE = 51
QUOTE_SIZE = 123
SNAP_QUOTE_SIZE = 379
DEPTH_20_SIZE = 443
BEST_FIVE_RECORDS = 10  # 5 buy then 5 sell, side decided by each record's flag
DEPTH_20_LEVELS = 20
BUY_FLAG = 1
SELL_FLAG = 0
PAISE = 100.0
CURRENCY_DIVISOR = 10_000_000.0
HEARTBEAT = "ping"
HEARTBEAT_REPLY = "pong"

PACKET_SIZES: dict[int, int] = {
    SubscriptionMode.LTP: LTP_SIZE,
    SubscriptionMode.QUOTE: QUOTE_SIZE,
    SubscriptionMode.SNAP_QUOTE: SNAP_QUOTE_SIZE,
    SubscriptionMode.DEPTH_20: DEPTH_20_SIZE,
}

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
# layouts: one struct.Struct per packet layout, built once

_HEADER = "<BB25sqqq"  # mode, exchange type, token, sequence, exchange timestamp, ltp
_QUOTE_TAIL = "qqqddqqqq"  # ltq, atp, volume, total buy qty, total sell qty, open, high, low, close
_SNAP_TAIL = "qqd" + "hqqh" * BEST_FIVE_RECORDS + "qqqq"  # ltt, oi, oi change %, best five, circuits, 52w

LTP_STRUCT = struct.Struct(_HEADER)
QUOTE_STRUCT = struct.Struct(_HEADER + _QUOTE_TAIL)
SNAP_QUOTE_STRUCT = struct.Struct(_HEADER + _QUOTE_TAIL + _SNAP_TAIL)
DEPTH_20_STRUCT = struct.Struct("<BB25sqq" + "iih" * (2 * DEPTH_20_LEVELS))
_HEAD_STRUCT = struct.Struct("<BB")

assert LTP_STRUCT.size == LTP_SIZE
assert QUOTE_STRUCT.size == QUOTE_SIZE
assert SNAP_QUOTE_STRUCT.size == SNAP_QUOTE_SIZE
assert DEPTH_20_STRUCT.size == DEPTH_20_SIZE

# a SnapQuote unpack: 0-17 header, quote and OI fields; 18-57 best five (4 values each); 58-61 circuits, 52w


# ---------------------------------------------------------------------------------------------
# typed packets (Angel's names and units)


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
    end = raw.find(b"\x00")
    try:
        return (raw[:end] if end >= 0 else raw).decode("ascii")
    except UnicodeDecodeError:
        raise AngelCodecError("token is not ASCII") from None


def _check_quantities(v: tuple[Any, ...]) -> None:
    """Total buy/sell quantities are doubles on the wire: NaN or infinity is a malformed packet
    (int() of it would raise in to_tick, out of the read loop, and drop the connection)."""
    if not (math.isfinite(v[9]) and math.isfinite(v[10])):
        raise AngelCodecError("total buy/sell quantity is not a finite number")


def decode_packet(data: bytes) -> AngelPacket:
    """One binary frame -> its typed packet. Raises AngelCodecError for anything malformed."""
    size = len(data)
    if size < 2:
        raise AngelCodecError(f"packet of {size} bytes is too short")
    mode = data[0]
    expected = PACKET_SIZES.get(mode)
    if expected is None:
        raise AngelCodecError(f"unknown subscription mode {mode}")
    if size < expected:
        raise AngelCodecError(f"mode {mode} packet needs {expected} bytes, got {size}")
    if mode == 3:
        v = SNAP_QUOTE_STRUCT.unpack_from(data)
        _check_quantities(v)
        rec = BestFiveRecord  # unrolled: a generator here costs a third of the decode time
        records = (
            rec(*v[18:22]),
            rec(*v[22:26]),
            rec(*v[26:30]),
            rec(*v[30:34]),
            rec(*v[34:38]),
            rec(*v[38:42]),
            rec(*v[42:46]),
            rec(*v[46:50]),
            rec(*v[50:54]),
            rec(*v[54:58]),
        )
        return MarketPacket(
            3,
            v[1],
            _token(v[2]),
            v[3],
            v[4],
            v[5],
            v[6],
            v[7],
            v[8],
            v[9],
            v[10],
            v[11],
            v[12],
            v[13],
            v[14],
            v[15],
            v[16],
            v[17],
            records,
            v[58],
            v[59],
            v[60],
            v[61],
        )
    if mode == 2:
        v = QUOTE_STRUCT.unpack_from(data)
        _check_quantities(v)
        return MarketPacket(2, v[1], _token(v[2]), *v[3:])
    if mode == 1:
        v = LTP_STRUCT.unpack_from(data)
        return MarketPacket(1, v[1], _token(v[2]), v[3], v[4], v[5])
    v = DEPTH_20_STRUCT.unpack_from(data)
    levels = v[5:]
    half = 3 * DEPTH_20_LEVELS
    buy = tuple(Depth20Level(levels[i], levels[i + 1], levels[i + 2]) for i in range(0, half, 3))
    sell = tuple(Depth20Level(levels[i], levels[i + 1], levels[i + 2]) for i in range(half, 2 * half, 3))
    return Depth20Packet(4, v[1], _token(v[2]), v[3], v[4], buy, sell)


def to_tick(packet: AngelPacket, instrument_symbol: str, client_exchange: str) -> Tick:
    """The one conversion from Angel's packet to our tick: rupees, best five by flag.

    A Depth-20 packet carries no trade fields: its tick has mode DEPTH, the best five levels of each
    side, and zeros elsewhere (the adapter never subscribes mode 4; this serves direct codec users).
    """
    div = CURRENCY_DIVISOR if packet.exchange_type == 13 else PAISE
    if isinstance(packet, Depth20Packet):
        return Tick(
            symbol=instrument_symbol,
            exchange=client_exchange,
            mode=Mode.DEPTH,
            ltp=0.0,
            exchange_time=packet.exchange_timestamp,
            bids=tuple(DepthLevel(lv.price / div, lv.quantity, lv.orders) for lv in packet.buy[:5]),
            asks=tuple(DepthLevel(lv.price / div, lv.quantity, lv.orders) for lv in packet.sell[:5]),
        )
    mode = packet.mode
    if mode == 1:
        return Tick(
            instrument_symbol,
            client_exchange,
            Mode.LTP,
            packet.last_traded_price / div,
            0,
            packet.exchange_timestamp,
        )
    bids: tuple[DepthLevel, ...] = ()
    asks: tuple[DepthLevel, ...] = ()
    if mode == 3:
        five = packet.best_five
        if len(five) == BEST_FIVE_RECORDS:
            b1, b2, b3, b4, b5, s1, s2, s3, s4, s5 = five
            usual = b1.flag == b2.flag == b3.flag == b4.flag == b5.flag == 1 and (
                s1.flag == s2.flag == s3.flag == s4.flag == s5.flag == 0
            )
        else:
            usual = False
        if usual:  # the usual layout: five buys then five sells
            lv = DepthLevel
            bids = (
                lv(b1.price / div, b1.quantity, b1.orders),
                lv(b2.price / div, b2.quantity, b2.orders),
                lv(b3.price / div, b3.quantity, b3.orders),
                lv(b4.price / div, b4.quantity, b4.orders),
                lv(b5.price / div, b5.quantity, b5.orders),
            )
            asks = (
                lv(s1.price / div, s1.quantity, s1.orders),
                lv(s2.price / div, s2.quantity, s2.orders),
                lv(s3.price / div, s3.quantity, s3.orders),
                lv(s4.price / div, s4.quantity, s4.orders),
                lv(s5.price / div, s5.quantity, s5.orders),
            )
        else:  # any other order: the flag decides the side
            buy: list[DepthLevel] = []
            sell: list[DepthLevel] = []
            for rec in five:
                level = DepthLevel(rec.price / div, rec.quantity, rec.orders)
                if rec.flag == BUY_FLAG:
                    buy.append(level)
                else:
                    sell.append(level)
            bids = tuple(buy[:5])
            asks = tuple(sell[:5])
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
    except ValueError:
        raise AngelCodecError(f"text frame is neither pong nor JSON: {text[:80]!r}") from None
    if not isinstance(obj, dict) or "errorCode" not in obj:
        raise AngelCodecError(f"unexpected text frame: {text[:80]!r}")
    return ErrorReply(str(obj.get("correlationID") or ""), str(obj["errorCode"]), str(obj.get("errorMessage") or ""))


def decode_request(text: str) -> Request:
    """A client's JSON request as the server validates it; AngelCodecError for an invalid payload."""
    try:
        obj = json.loads(text)
    except ValueError:
        raise AngelCodecError("request is not JSON") from None
    if not isinstance(obj, dict):
        raise AngelCodecError("request is not an object")
    try:
        action = Action(obj["action"])
        params = obj["params"]
        mode = SubscriptionMode(params["mode"])
        token_list = params["tokenList"]
        if not isinstance(token_list, list):
            raise TypeError("tokenList")
        tokens: dict[int, tuple[str, ...]] = {}
        for entry in token_list:
            etype = ExchangeType(entry["exchangeType"])
            values = entry["tokens"]
            if not isinstance(values, list) or not all(isinstance(t, str) and 0 < len(t) <= 25 for t in values):
                raise TypeError("tokens")
            tokens[int(etype)] = tokens.get(int(etype), ()) + tuple(values)
    except (KeyError, TypeError, ValueError) as exc:
        raise AngelCodecError(f"invalid request payload ({exc})") from None
    correlation = obj.get("correlationID") or ""
    return Request(action, mode, tokens, str(correlation))


# ---------------------------------------------------------------------------------------------
# encoding


def _token_bytes(token: str) -> bytes:
    raw = token.encode("ascii")
    if not raw or len(raw) > TOKEN_LENGTH:
        raise AngelCodecError(f"token {token!r} must be 1-{TOKEN_LENGTH} ASCII characters")
    return raw


def encode_packet(packet: AngelPacket) -> bytes:
    """The exact bytes Angel sends for `packet` (used by the simulator and fixtures)."""
    try:
        token = _token_bytes(packet.token)
        if isinstance(packet, Depth20Packet):
            if len(packet.buy) != DEPTH_20_LEVELS or len(packet.sell) != DEPTH_20_LEVELS:
                raise AngelCodecError("a Depth-20 packet needs 20 levels per side")
            flat: list[int] = []
            for lv in packet.buy + packet.sell:
                flat += (lv.quantity, lv.price, lv.orders)
            return DEPTH_20_STRUCT.pack(
                4, packet.exchange_type, token, packet.exchange_timestamp, packet.packet_received_time, *flat
            )
        p = packet
        head = (p.mode, p.exchange_type, token, p.sequence_number, p.exchange_timestamp, p.last_traded_price)
        if p.mode == 1:
            return LTP_STRUCT.pack(*head)
        quote = (
            p.last_traded_quantity,
            p.average_traded_price,
            p.volume,
            p.total_buy_quantity,
            p.total_sell_quantity,
            p.open,
            p.high,
            p.low,
            p.close,
        )
        if p.mode == 2:
            return QUOTE_STRUCT.pack(*head, *quote)
        if p.mode != 3:
            raise AngelCodecError(f"cannot encode mode {p.mode}")
        if len(p.best_five) != BEST_FIVE_RECORDS:
            raise AngelCodecError("a SnapQuote packet needs 10 best-five records")
        five: list[int] = []
        for rec in p.best_five:
            five += (rec.flag, rec.quantity, rec.price, rec.orders)
        return SNAP_QUOTE_STRUCT.pack(
            *head,
            *quote,
            p.last_traded_timestamp,
            p.open_interest,
            p.open_interest_change_percent,
            *five,
            p.upper_circuit,
            p.lower_circuit,
            p.week_52_high,
            p.week_52_low,
        )
    except struct.error as exc:
        raise AngelCodecError(f"value out of range for the wire layout: {exc}") from None


def _records(levels: Sequence[DepthLevel], flag: int, div: float) -> tuple[BestFiveRecord, ...]:
    out = [BestFiveRecord(flag, lv.quantity, round(lv.price * div), lv.orders) for lv in levels[:5]]
    out += [BestFiveRecord(flag, 0, 0, 0)] * (5 - len(out))
    return tuple(out)


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
    mode = int(mode)

    def units(value: float) -> int:
        return round(value * div)

    if mode == 4:

        def depth20(levels: Sequence[DepthLevel]) -> tuple[Depth20Level, ...]:
            out = [Depth20Level(lv.quantity, units(lv.price), lv.orders) for lv in levels[:DEPTH_20_LEVELS]]
            return tuple(out + [Depth20Level(0, 0, 0)] * (DEPTH_20_LEVELS - len(out)))

        return Depth20Packet(
            4, exchange_type, token, tick.exchange_time, tick.exchange_time, depth20(tick.bids), depth20(tick.asks)
        )
    packet = MarketPacket(mode, exchange_type, token, sequence_number, tick.exchange_time, units(tick.ltp))
    if mode == 1:
        return packet
    packet.last_traded_quantity = tick.last_trade_quantity
    packet.average_traded_price = units(tick.avg_trade_price)
    packet.volume = tick.volume
    packet.total_buy_quantity = float(tick.total_buy_quantity)
    packet.total_sell_quantity = float(tick.total_sell_quantity)
    packet.open = units(tick.open)
    packet.high = units(tick.high)
    packet.low = units(tick.low)
    packet.close = units(tick.close)
    if mode == 2:
        return packet
    packet.last_traded_timestamp = tick.ltt
    packet.open_interest = tick.oi
    packet.best_five = _records(tick.bids, BUY_FLAG, div) + _records(tick.asks, SELL_FLAG, div)
    packet.upper_circuit = units(tick.upper_circuit)
    packet.lower_circuit = units(tick.lower_circuit)
    packet.week_52_high = units(week_52[0])
    packet.week_52_low = units(week_52[1])
    return packet


def _request(
    action: Action, mode: SubscriptionMode | int, tokens: Mapping[int, Sequence[str]], correlation_id: str
) -> str:
    token_list = [{"exchangeType": int(etype), "tokens": list(values)} for etype, values in tokens.items() if values]
    body: dict[str, object] = {
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
    return json.dumps(
        {"correlationID": correlation_id, "errorCode": code, "errorMessage": ERROR_MESSAGES.get(code, "Error")},
        separators=(",", ":"),
    )
