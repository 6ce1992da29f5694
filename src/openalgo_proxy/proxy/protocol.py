"""Client protocol (DESIGN section 4): JSON requests -> typed commands; replies and errors -> bytes.

Pure: no sockets, no clock except where a reply carries the server time (passed in).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from openalgo_proxy import search
from openalgo_proxy.errors import ConfigError, ErrorCode, RequestError
from openalgo_proxy.history.timerange import parse_instant
from openalgo_proxy.model import Mode
from openalgo_proxy.topics import (
    CANDLE_INTERVALS,
    DEEPER_DEPTHS,
    MAX_CHAIN_STRIKES,
    NEAREST_EXPIRY,
    STANDARD_DEPTH,
    ChainKey,
    chain_topic,
    valid_name,
)

MAX_NAME = 64
MAX_ENTRIES = 5000
DEFAULT_MODE = Mode.DEPTH
#: book depths a client may ask for; which of them a broker serves is the feed's answer
SUPPORTED_DEPTH = (STANDARD_DEPTH, *DEEPER_DEPTHS)
MAX_DEPTH = 1000

_decode = msgspec.json.decode
_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True, slots=True)
class Entry:
    symbol: str
    exchange: str
    mode: Mode | None  # None on unsubscribe = every mode
    depth: int = STANDARD_DEPTH  # levels per side of the Depth mode's book (other modes: 5)


@dataclass(frozen=True, slots=True)
class Authenticate:
    api_key: str | None
    token: str | None


@dataclass(frozen=True, slots=True)
class Subscribe:
    entries: tuple[Entry, ...]
    single: bool


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    entries: tuple[Entry, ...]
    single: bool


@dataclass(frozen=True, slots=True)
class CandleEntry:
    symbol: str
    exchange: str
    interval: str


@dataclass(frozen=True, slots=True)
class SubscribeCandles:
    entries: tuple[CandleEntry, ...]


@dataclass(frozen=True, slots=True)
class UnsubscribeCandles:
    entries: tuple[CandleEntry, ...]


@dataclass(frozen=True, slots=True)
class History:
    """Recorded candles (`interval` 1m..1d) or ticks (`interval` "ticks") of one instrument in
    [start, end) (epoch ms), rows [offset, offset + limit)."""

    symbol: str
    exchange: str
    interval: str
    start: int
    end: int
    limit: int
    offset: int


@dataclass(frozen=True, slots=True)
class UnsubscribeAll:
    pass


@dataclass(frozen=True, slots=True)
class ListSubscriptions:
    pass


@dataclass(frozen=True, slots=True)
class Ping:
    ping_id: Any


@dataclass(frozen=True, slots=True)
class BrokerInfo:
    pass


@dataclass(frozen=True, slots=True)
class SupportedBrokers:
    pass


@dataclass(frozen=True, slots=True)
class SubscribeOrders:
    pass


@dataclass(frozen=True, slots=True)
class UnsubscribeOrders:
    pass


@dataclass(frozen=True, slots=True)
class Search:
    query: str
    exchange: str | None
    limit: int


@dataclass(frozen=True, slots=True)
class ChainSubscribe:
    key: ChainKey


@dataclass(frozen=True, slots=True)
class ChainUnsubscribe:
    key: ChainKey


DEFAULT_CHAIN_EXCHANGE = "NFO"
DEFAULT_CHAIN_STRIKES = 10


Command = (
    Authenticate
    | ChainSubscribe
    | ChainUnsubscribe
    | Subscribe
    | Unsubscribe
    | UnsubscribeAll
    | ListSubscriptions
    | Ping
    | BrokerInfo
    | SupportedBrokers
    | SubscribeCandles
    | UnsubscribeCandles
    | History
    | SubscribeOrders
    | UnsubscribeOrders
    | Search
)
HISTORY_DEFAULT_ROWS = 500
HISTORY_MAX_ROWS = 5000
#: the widest range one request may read: candles are rebuilt from every recorded tick of the range
HISTORY_MAX_CANDLE_RANGE_MS = 31 * 86_400_000
HISTORY_MAX_TICK_RANGE_MS = 86_400_000


class ParsedRequest(msgspec.Struct, frozen=True):
    command: Command
    request_id: Any = None


class BadRequest(RequestError):
    """A RequestError that remembers the request_id it answers."""

    def __init__(self, code: ErrorCode, message: str, request_id: Any = None) -> None:
        super().__init__(code, message)
        self.request_id = request_id


def _name(value: object, what: str, request_id: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(ErrorCode.INVALID_PARAMETERS, f"'{what}' must be a non-empty string", request_id)
    name = value.strip().upper()
    if len(name) > MAX_NAME or not valid_name(name):
        raise BadRequest(ErrorCode.INVALID_PARAMETERS, f"'{what}' is not a valid {what}", request_id)
    return name


def _mode(value: object, request_id: Any) -> Mode:
    try:
        return Mode.parse(value)
    except ValueError as exc:
        raise BadRequest(ErrorCode.INVALID_MODE, str(exc), request_id) from None


def _depth(value: object, request_id: Any) -> int:
    """A requested book depth: a positive integer (which depths exist is checked per entry)."""
    if value is None:
        return STANDARD_DEPTH
    if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 4:
        value = int(value.strip())
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= MAX_DEPTH:
        raise BadRequest(
            ErrorCode.INVALID_PARAMETERS, "'depth' must be a number of levels: 5, 20, 30 or 200", request_id
        )
    return value


def _depth_of(obj: dict[str, Any], request_id: Any) -> object:
    """`depth`, or its alias `depth_level` (OpenAlgo's name), of a request or an entry."""
    depth, level = obj.get("depth"), obj.get("depth_level")
    if depth is not None and level is not None and depth != level:
        raise BadRequest(ErrorCode.INVALID_PARAMETERS, "'depth' and 'depth_level' differ: give one", request_id)
    return depth if depth is not None else level


def _entry(symbol: str, exchange: str, mode: Mode | None, depth: int) -> Entry:
    # a depth only shapes the Depth mode's book
    return Entry(symbol, exchange, mode, depth if mode is Mode.DEPTH else STANDARD_DEPTH)


def _entries(
    msg: dict[str, Any], request_id: Any, *, default_mode: Mode | None, max_entries: int
) -> tuple[tuple[Entry, ...], bool]:
    top_mode = _mode(msg["mode"], request_id) if msg.get("mode") is not None else default_mode
    top_depth = _depth(_depth_of(msg, request_id), request_id)
    if "symbols" in msg:
        items = msg["symbols"]
        if not isinstance(items, list) or not items:
            raise BadRequest(ErrorCode.INVALID_PARAMETERS, "'symbols' must be a non-empty list", request_id)
        if len(items) > max_entries:
            raise BadRequest(ErrorCode.LIMIT_EXCEEDED, f"at most {max_entries} symbols in one request", request_id)
        entries = []
        for item in items:
            if isinstance(item, str) and ":" in item:
                exchange, _, symbol = item.partition(":")
                item = {"exchange": exchange, "symbol": symbol}
            if not isinstance(item, dict):
                raise BadRequest(
                    ErrorCode.INVALID_PARAMETERS,
                    "each entry of 'symbols' must be an object with 'symbol' and 'exchange'",
                    request_id,
                )
            mode = _mode(item["mode"], request_id) if item.get("mode") is not None else top_mode
            item_depth = _depth_of(item, request_id)
            depth = _depth(item_depth, request_id) if item_depth is not None else top_depth
            entries.append(
                _entry(
                    _name(item.get("symbol"), "symbol", request_id),
                    _name(item.get("exchange"), "exchange", request_id),
                    mode,
                    depth,
                )
            )
        return tuple(entries), False
    if "symbol" not in msg or "exchange" not in msg:
        raise BadRequest(ErrorCode.INVALID_PARAMETERS, "give 'symbol' and 'exchange', or a 'symbols' list", request_id)
    entry = _entry(
        _name(msg["symbol"], "symbol", request_id), _name(msg["exchange"], "exchange", request_id), top_mode, top_depth
    )
    return (entry,), True


def _interval(value: object, request_id: Any) -> str:
    if not isinstance(value, str) or value.strip().lower() not in CANDLE_INTERVALS:
        raise BadRequest(
            ErrorCode.INVALID_PARAMETERS, f"'interval' must be one of {', '.join(CANDLE_INTERVALS)}", request_id
        )
    return value.strip().lower()


def _candle_entries(msg: dict[str, Any], request_id: Any, max_entries: int) -> tuple[CandleEntry, ...]:
    """Like subscribe's entries, each with an `interval` (its own or the message's)."""
    top = msg.get("interval")
    items = msg.get("symbols") if "symbols" in msg else [msg]
    if not isinstance(items, list) or not items:
        raise BadRequest(ErrorCode.INVALID_PARAMETERS, "'symbols' must be a non-empty list", request_id)
    if len(items) > max_entries:
        raise BadRequest(ErrorCode.LIMIT_EXCEEDED, f"at most {max_entries} symbols in one request", request_id)
    entries = []
    for item in items:
        if not isinstance(item, dict):
            raise BadRequest(
                ErrorCode.INVALID_PARAMETERS, "each entry must be an object with 'symbol' and 'exchange'", request_id
            )
        entries.append(
            CandleEntry(
                _name(item.get("symbol"), "symbol", request_id),
                _name(item.get("exchange"), "exchange", request_id),
                _interval(item.get("interval", top), request_id),
            )
        )
    return tuple(entries)


def _instant(value: object, what: str, request_id: Any, *, end: bool = False) -> int:
    """Epoch ms, or a date / ISO date-time string (IST unless it carries an offset)."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**14:
        return value
    if isinstance(value, str) and len(value) <= 40:
        try:
            return parse_instant(value, end=end)
        except ConfigError as exc:
            raise BadRequest(ErrorCode.INVALID_PARAMETERS, f"'{what}': {exc}", request_id) from None
    raise BadRequest(ErrorCode.INVALID_PARAMETERS, f"'{what}' must be epoch milliseconds or a date", request_id)


def _count(value: object, what: str, default: int, low: int, high: int, request_id: Any) -> int:
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise BadRequest(ErrorCode.INVALID_PARAMETERS, f"'{what}' must be a whole number {low}..{high}", request_id)
    return value


def _history(msg: dict[str, Any], request_id: Any) -> History:
    interval = msg.get("interval", "1m")
    if interval != "ticks":
        interval = _interval(interval, request_id)
    if msg.get("start") is None:
        raise BadRequest(ErrorCode.INVALID_PARAMETERS, "give 'start' (and 'end')", request_id)
    start = _instant(msg.get("start"), "start", request_id)
    end = _instant(msg.get("end", msg.get("start")), "end", request_id, end=True)
    ticks = interval == "ticks"
    widest = HISTORY_MAX_TICK_RANGE_MS if ticks else HISTORY_MAX_CANDLE_RANGE_MS
    words = "a day for ticks" if ticks else "31 days"
    if not start < end <= start + widest:
        raise BadRequest(ErrorCode.INVALID_PARAMETERS, f"'end' must be after 'start', within {words}", request_id)
    return History(
        _name(msg.get("symbol"), "symbol", request_id),
        _name(msg.get("exchange"), "exchange", request_id),
        interval,
        start,
        end,
        _count(msg.get("limit"), "limit", HISTORY_DEFAULT_ROWS, 1, HISTORY_MAX_ROWS, request_id),
        _count(msg.get("offset"), "offset", 0, 0, 10**9, request_id),
    )


def _search(msg: dict[str, Any], request_id: Any) -> Search:
    query = msg.get("query")
    if not isinstance(query, str) or not query.strip():
        raise BadRequest(ErrorCode.INVALID_PARAMETERS, "'query' must be a non-empty string", request_id)
    if len(query) > search.MAX_QUERY:
        raise BadRequest(ErrorCode.INVALID_PARAMETERS, f"'query' is longer than {search.MAX_QUERY}", request_id)
    exchange = msg.get("exchange")
    if exchange is not None:
        exchange = _name(exchange, "exchange", request_id)
    limit = msg.get("limit", search.DEFAULT_LIMIT)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise BadRequest(ErrorCode.INVALID_PARAMETERS, "'limit' must be a positive whole number", request_id)
    return Search(query, exchange, min(limit, search.MAX_LIMIT))


def _chain_key(msg: dict[str, Any], request_id: Any) -> ChainKey:
    """An option chain request: underlying, exchange (NFO), expiry (DDMMMYY or nearest), strikes (10)."""
    underlying = _name(msg.get("underlying", msg.get("symbol")), "underlying", request_id)
    exchange = _name(msg.get("exchange", DEFAULT_CHAIN_EXCHANGE), "exchange", request_id)
    expiry = msg.get("expiry", NEAREST_EXPIRY)
    if not isinstance(expiry, str):
        raise BadRequest(ErrorCode.INVALID_PARAMETERS, "'expiry' must be DDMMMYY (30DEC25) or 'nearest'", request_id)
    expiry = expiry.strip().upper()
    strikes = msg.get("strikes", DEFAULT_CHAIN_STRIKES)
    if not isinstance(strikes, int) or isinstance(strikes, bool) or not 1 <= strikes <= MAX_CHAIN_STRIKES:
        raise BadRequest(
            ErrorCode.INVALID_PARAMETERS,
            f"'strikes' must be a whole number from 1 to {MAX_CHAIN_STRIKES} (strikes each side of the ATM strike)",
            request_id,
        )
    key = ChainKey(exchange, underlying, expiry, strikes)
    try:
        chain_topic(*key)
    except ValueError:
        raise BadRequest(
            ErrorCode.INVALID_PARAMETERS, "'expiry' must be DDMMMYY (30DEC25) or 'nearest'", request_id
        ) from None
    return key


def parse_request(raw: bytes | str, max_entries: int = MAX_ENTRIES) -> ParsedRequest:
    """Decode one client text message; BadRequest with the documented code on any problem (never
    another exception, whatever the bytes). At most `max_entries` entries in a symbols list."""
    return parse_object(decode_object(raw), max_entries=max_entries)


def decode_object(raw: bytes | str) -> dict[str, Any]:
    """One client text message as a JSON object; BadRequest(INVALID_JSON) otherwise, never another
    exception, whatever the bytes."""
    try:
        msg = _decode(raw)
    except msgspec.DecodeError:
        raise BadRequest(ErrorCode.INVALID_JSON, "message is not valid JSON") from None
    except UnicodeDecodeError:
        raise BadRequest(ErrorCode.INVALID_JSON, "message is not valid UTF-8") from None
    except RecursionError:
        raise BadRequest(ErrorCode.INVALID_JSON, "message is nested too deeply") from None
    if not isinstance(msg, dict):
        raise BadRequest(ErrorCode.INVALID_JSON, "message must be a JSON object")
    return msg


def parse_object(
    msg: dict[str, Any],
    *,
    max_entries: int = MAX_ENTRIES,
    action_key: str | None = None,
    default_mode: Mode = DEFAULT_MODE,
) -> ParsedRequest:
    """The command in a decoded message. Dialect knobs: the action may also come from `action_key`
    ("type" in OpenAlgo's protocol) and the default mode of a subscribe."""
    request_id = msg.get("request_id")
    if request_id is not None and not isinstance(request_id, (str, int)):
        request_id = None
    action = msg.get("action")
    if action is None and action_key is not None:
        action = msg.get(action_key)
    if not isinstance(action, str):
        raise BadRequest(ErrorCode.INVALID_ACTION, "missing 'action'", request_id)
    action = action.strip().lower()
    command: Command
    if action in ("authenticate", "auth"):
        api_key = msg.get("api_key", msg.get("apikey"))
        token = msg.get("token")
        if api_key is not None and not isinstance(api_key, str):
            raise BadRequest(ErrorCode.INVALID_PARAMETERS, "'api_key' must be a string", request_id)
        if token is not None and not isinstance(token, str):
            raise BadRequest(ErrorCode.INVALID_PARAMETERS, "'token' must be a string", request_id)
        command = Authenticate(api_key, token)
    elif action == "subscribe":
        entries, single = _entries(msg, request_id, default_mode=default_mode, max_entries=max_entries)
        command = Subscribe(entries, single)
    elif action == "unsubscribe":
        entries, single = _entries(msg, request_id, default_mode=None, max_entries=max_entries)
        command = Unsubscribe(entries, single)
    elif action == "subscribe_candles":
        command = SubscribeCandles(_candle_entries(msg, request_id, max_entries))
    elif action == "unsubscribe_candles":
        command = UnsubscribeCandles(_candle_entries(msg, request_id, max_entries))
    elif action == "history":
        command = _history(msg, request_id)
    elif action == "unsubscribe_all":
        command = UnsubscribeAll()
    elif action == "list_subscriptions":
        command = ListSubscriptions()
    elif action == "ping":
        command = Ping(msg.get("_pingId"))
    elif action == "get_broker_info":
        command = BrokerInfo()
    elif action == "get_supported_brokers":
        command = SupportedBrokers()
    elif action == "subscribe_orders":
        command = SubscribeOrders()
    elif action == "unsubscribe_orders":
        command = UnsubscribeOrders()
    elif action == "search":
        command = _search(msg, request_id)
    elif action == "subscribe_chain":
        command = ChainSubscribe(_chain_key(msg, request_id))
    elif action == "unsubscribe_chain":
        command = ChainUnsubscribe(_chain_key(msg, request_id))
    else:
        raise BadRequest(ErrorCode.INVALID_ACTION, f"unknown action {action[:40]!r}", request_id)
    return ParsedRequest(command, request_id)


def reply(message: dict[str, Any], request_id: Any = None) -> bytes:
    if request_id is not None:
        message["request_id"] = request_id
    return _encode(message)


def error(code: ErrorCode, message: str, request_id: Any = None, **extra: Any) -> bytes:
    body: dict[str, Any] = {"type": "error", "status": "error", "code": code.value, "message": message}
    body.update(extra)
    return reply(body, request_id)


def overall_status(results: list[dict[str, Any]]) -> str:
    ok = sum(1 for r in results if r["status"] == "success")
    if ok == len(results):
        return "success"
    return "partial" if ok else "error"
