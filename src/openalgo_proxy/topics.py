"""Bus topics and client topic names: built and parsed here and nowhere else.

Bus topic: ``EXCHANGE|SYMBOL|MODE`` (UTF-8, mode one digit). ``|`` never occurs in a symbol or an
exchange, so ZeroMQ prefix matching cannot cross-talk between instruments.
Deeper book: ``EXCHANGE|SYMBOL|Dnnn``, the Depth mode with nnn levels per side as exactly three
digits (``D020``, ``D030``, ``D200``). The letter keeps it apart from the one-digit modes and the fixed
width keeps the depths apart (``D020`` is no prefix of ``D200``), so no topic is a prefix of another.
The five-level book stays ``EXCHANGE|SYMBOL|3``.
Control topics start with ``#``: ``#status|BROKER``, ``#instruments|BROKER``, ``#reject|EXCHANGE|SYMBOL|MODE``,
``#orders|BROKER|ACCOUNT`` (their payloads are typed in `control.py`).
Option chains: ``#chain|EXCHANGE|UNDERLYING|EXPIRY|STRIKES`` (EXPIRY ``DDMMMYY`` or ``NEAREST``,
STRIKES each side of the ATM strike, 1-50), published by the chain service.
Candles: ``#candles|EXCHANGE|SYMBOL|INTERVAL`` (INTERVAL one of 1m 3m 5m 15m 30m 1h 1d), published by
the candle service; the ``#`` keeps feeds from taking them for market data.
Client topic: ``SYMBOL.EXCHANGE``.
"""

from __future__ import annotations

from typing import NamedTuple

from openalgo_proxy.model import Mode

SEPARATOR = "|"
STATUS_PREFIX = b"#status|"
INSTRUMENTS_PREFIX = b"#instruments|"
REJECT_PREFIX = b"#reject|"
ORDERS_PREFIX = b"#orders|"
CHAIN_PREFIX = b"#chain|"
NEAREST_EXPIRY = "NEAREST"
MAX_CHAIN_STRIKES = 50  # strikes each side of the ATM strike
CANDLES_PREFIX = b"#candles|"
#: candle intervals, shortest first (their lengths and session alignment: history/sessions.py)
CANDLE_INTERVALS = ("1m", "3m", "5m", "15m", "30m", "1h", "1d")
CONTROL_MARK = b"#"
DEPTH_MARK = "D"
STANDARD_DEPTH = 5
#: book depths a client may ask for beyond the standard five (a broker serves some of them)
DEEPER_DEPTHS = (20, 30, 200)


class OrdersKey(NamedTuple):
    broker: str
    account: str


class ChainKey(NamedTuple):
    exchange: str  # of the options: NFO, BFO
    underlying: str  # NIFTY, BANKNIFTY, RELIANCE
    expiry: str  # DDMMMYY or NEAREST
    strikes: int  # each side of the ATM strike


class CandleKey(NamedTuple):
    exchange: str
    symbol: str
    interval: str


class TopicKey(NamedTuple):
    exchange: str
    symbol: str
    mode: Mode
    depth: int = STANDARD_DEPTH  # levels per side of the Depth mode's book


def valid_name(name: str) -> bool:
    """A symbol or exchange that can live inside a topic."""
    return bool(name) and SEPARATOR not in name and "\x00" not in name and not name.startswith("#")


def bus_topic(exchange: str, symbol: str, mode: Mode | int, depth: int = STANDARD_DEPTH) -> bytes:
    """``EXCHANGE|SYMBOL|MODE``, or ``EXCHANGE|SYMBOL|Dnnn`` for a Depth book deeper than five levels."""
    if not valid_name(exchange) or not valid_name(symbol):
        raise ValueError(f"invalid topic parts {exchange!r} {symbol!r}")
    if depth != STANDARD_DEPTH:
        if depth not in DEEPER_DEPTHS or int(mode) != Mode.DEPTH:
            raise ValueError(f"no deeper-book topic for mode {int(mode)} depth {depth}")
        return f"{exchange}|{symbol}|{DEPTH_MARK}{depth:03d}".encode()
    return f"{exchange}|{symbol}|{int(mode)}".encode()


def parse_bus_topic(topic: bytes) -> TopicKey:
    """Inverse of bus_topic; ValueError for anything that is not a market-data topic."""
    try:
        text = topic.decode()
    except UnicodeDecodeError:
        raise ValueError("topic is not UTF-8") from None
    parts = text.split(SEPARATOR)
    if len(parts) != 3:
        raise ValueError(f"not a market-data topic: {text!r}")
    exchange, symbol, mode = parts
    if not valid_name(exchange) or not valid_name(symbol):
        raise ValueError(f"not a market-data topic: {text!r}")
    if len(mode) == 1 and mode.isdigit():
        try:
            return TopicKey(exchange, symbol, Mode(int(mode)))
        except ValueError:
            raise ValueError(f"not a market-data topic: {text!r}") from None
    if len(mode) == 4 and mode[0] == DEPTH_MARK and mode[1:].isdigit() and int(mode[1:]) in DEEPER_DEPTHS:
        return TopicKey(exchange, symbol, Mode.DEPTH, int(mode[1:]))
    raise ValueError(f"not a market-data topic: {text!r}")


def is_control(topic: bytes) -> bool:
    """A control topic (``#...``), or the empty subscription that matches every topic."""
    return not topic or topic[:1] == CONTROL_MARK


def covers(subscription: bytes, prefix: bytes) -> bool:
    """ZeroMQ prefix matching both ways: a subscription to `#status|` (or to everything) asks for
    every ``#status|BROKER``, and one to ``#status|angel`` asks for angel's."""
    return prefix.startswith(subscription) or subscription.startswith(prefix)


def status_topic(broker: str) -> bytes:
    return STATUS_PREFIX + broker.encode()


def parse_status_topic(topic: bytes) -> str:
    """The broker of a ``#status|BROKER`` topic; ValueError for anything else."""
    return _parse_broker_topic(topic, STATUS_PREFIX)


def instruments_topic(broker: str) -> bytes:
    return INSTRUMENTS_PREFIX + broker.encode()


def parse_instruments_topic(topic: bytes) -> str:
    """The broker of a ``#instruments|BROKER`` topic; ValueError for anything else."""
    return _parse_broker_topic(topic, INSTRUMENTS_PREFIX)


def _parse_broker_topic(topic: bytes, prefix: bytes) -> str:
    if not topic.startswith(prefix):
        raise ValueError(f"not a {prefix.decode()} topic: {topic[:80]!r}")
    try:
        broker = topic[len(prefix) :].decode()
    except UnicodeDecodeError:
        raise ValueError("topic is not UTF-8") from None
    if not valid_name(broker):
        raise ValueError(f"not a {prefix.decode()} topic: {topic[:80]!r}")
    return broker


def reject_topic(topic: bytes) -> bytes:
    """``#reject|`` + a market-data topic."""
    return REJECT_PREFIX + topic


def parse_reject_topic(topic: bytes) -> bytes:
    """The market-data topic a ``#reject|...`` topic names (not checked further: the caller looks
    it up); ValueError for anything else."""
    if not topic.startswith(REJECT_PREFIX):
        raise ValueError(f"not a reject topic: {topic[:80]!r}")
    return topic[len(REJECT_PREFIX) :]


def orders_topic(broker: str, account: str) -> bytes:
    """``#orders|BROKER|ACCOUNT``: order updates of one broker account."""
    if not valid_name(broker) or not valid_name(account):
        raise ValueError(f"invalid orders topic parts {broker!r} {account!r}")
    return ORDERS_PREFIX + f"{broker}|{account}".encode()


def parse_orders_topic(topic: bytes) -> OrdersKey:
    """Inverse of orders_topic; ValueError for anything else."""
    if not topic.startswith(ORDERS_PREFIX):
        raise ValueError(f"not an orders topic: {topic[:80]!r}")
    try:
        parts = topic[len(ORDERS_PREFIX) :].decode().split(SEPARATOR)
    except UnicodeDecodeError:
        raise ValueError("topic is not UTF-8") from None
    if len(parts) != 2 or not valid_name(parts[0]) or not valid_name(parts[1]):
        raise ValueError(f"not an orders topic: {topic[:80]!r}")
    return OrdersKey(parts[0], parts[1])


def _valid_expiry(expiry: str) -> bool:
    return expiry == NEAREST_EXPIRY or (
        len(expiry) == 7 and expiry[:2].isdigit() and expiry[2:5].isalpha() and expiry[5:].isdigit()
    )


def chain_topic(exchange: str, underlying: str, expiry: str, strikes: int) -> bytes:
    """``#chain|EXCHANGE|UNDERLYING|EXPIRY|STRIKES``."""
    if (
        not valid_name(exchange)
        or not valid_name(underlying)
        or not _valid_expiry(expiry)
        or not 1 <= strikes <= MAX_CHAIN_STRIKES
    ):
        raise ValueError(f"invalid chain topic parts {exchange!r} {underlying!r} {expiry!r} {strikes!r}")
    return CHAIN_PREFIX + f"{exchange}|{underlying}|{expiry}|{strikes}".encode()


def parse_chain_topic(topic: bytes) -> ChainKey:
    """Inverse of chain_topic; ValueError for anything else."""
    if not topic.startswith(CHAIN_PREFIX):
        raise ValueError(f"not a chain topic: {topic[:80]!r}")
    try:
        parts = topic[len(CHAIN_PREFIX) :].decode().split(SEPARATOR)
    except UnicodeDecodeError:
        raise ValueError("topic is not UTF-8") from None
    if len(parts) != 4 or not parts[3].isdigit() or len(parts[3]) > 2:
        raise ValueError(f"not a chain topic: {topic[:80]!r}")
    key = ChainKey(parts[0], parts[1], parts[2], int(parts[3]))
    if chain_topic(*key) != topic:
        raise ValueError(f"not a chain topic: {topic[:80]!r}")
    return key


def chain_client_topic(exchange: str, underlying: str, expiry: str, strikes: int) -> str:
    """How clients name a chain stream: ``NIFTY.NFO:NEAREST:10``."""
    return f"{underlying}.{exchange}:{expiry}:{strikes}"


def candle_topic(exchange: str, symbol: str, interval: str) -> bytes:
    """``#candles|EXCHANGE|SYMBOL|INTERVAL``."""
    if not valid_name(exchange) or not valid_name(symbol) or interval not in CANDLE_INTERVALS:
        raise ValueError(f"invalid candle topic parts {exchange!r} {symbol!r} {interval!r}")
    return CANDLES_PREFIX + f"{exchange}|{symbol}|{interval}".encode()


def parse_candle_topic(topic: bytes) -> CandleKey:
    """Inverse of candle_topic; ValueError for anything else."""
    if not topic.startswith(CANDLES_PREFIX):
        raise ValueError(f"not a candle topic: {topic[:80]!r}")
    try:
        parts = topic[len(CANDLES_PREFIX) :].decode().split(SEPARATOR)
    except UnicodeDecodeError:
        raise ValueError("topic is not UTF-8") from None
    if len(parts) != 3 or not valid_name(parts[0]) or not valid_name(parts[1]) or parts[2] not in CANDLE_INTERVALS:
        raise ValueError(f"not a candle topic: {topic[:80]!r}")
    return CandleKey(parts[0], parts[1], parts[2])


def instrument_name(exchange: str, symbol: str) -> str:
    """``EXCHANGE|SYMBOL``: one instrument in status reports (a bus topic without its mode)."""
    return f"{exchange}{SEPARATOR}{symbol}"


def client_topic(symbol: str, exchange: str) -> str:
    return f"{symbol}.{exchange}"
