"""The Noren OMS WebSocket codec, pure: message grammar, exact decimals, per-instrument merge, ticks.

One JSON protocol serves six brokers. Every value on the wire is a string. Keys name instruments as
`EXCH|token`. A subscription is answered by a full acknowledgement carrying every field (`tk` for
touchline, `dk` for depth); later updates (`tf`, `df`) carry only the fields that changed, so the
codec keeps the last full state of each instrument and merges each update into it (`MergeState`).

Rules of the merge:
- a full acknowledgement replaces the instrument's state (a resubscribe starts from scratch);
- an update overwrites only the fields it carries, except that a zero open/high/low/close/average
  price in an update never overwrites a real value (the servers send "0" for fields they dropped);
- an empty string is no value and leaves the field as it was.

Decimals are parsed exactly: the digits as one integer, then one division by a power of ten, so a
four-decimal CDS price ("83.4725") becomes the nearest binary float of exactly that decimal and never
picks up the error of arithmetic on already-rounded floats. Forms `float()` would accept but the
protocol never sends ("nan", "1e5", "1_000", " 1") are malformed input.

Time: `ft` is the Noren server's clock when it sent the message (epoch seconds), NOT the exchange's
time of the trade; it is kept as `feed_time` for diagnostics only. A touchline carries no exchange
time, so ticks are stamped with the local receive time; depth's `ltt` (last trade time) is used as
the tick's `ltt` when present.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

import msgspec

from openalgo_proxy.model import DEPTH_LEVELS, EMPTY_LEVEL, DepthLevel, Mode, Tick

Key = tuple[str, str]  # (wire exchange, token), e.g. ("NSE", "22")
Number = float | int

IST = dt.timezone(dt.timedelta(hours=5, minutes=30))
KEYS_PER_MESSAGE: Final = 50

# message types
AUTH_ACKS: Final = frozenset({"ak", "ck", "cf"})
TOUCHLINE_FULL: Final = "tk"
TOUCHLINE_UPDATE: Final = "tf"
DEPTH_FULL: Final = "dk"
DEPTH_UPDATE: Final = "df"
ORDER_UPDATE: Final = "om"
HEARTBEAT_ACK: Final = "hk"
#: client subscription kinds (the upstream mode of a key)
TOUCHLINE: Final = "t"
DEPTH: Final = "d"
UNSUBSCRIBE: Final = {TOUCHLINE: "u", DEPTH: "ud"}

HEARTBEAT_FRAME: Final = '{"t":"h"}'


class NorenCodecError(ValueError):
    """A malformed Noren message: counted and skipped; the connection stays."""


# -- exact decimals --------------------------------------------------------------------------------

_POW10: Final = tuple(10**i for i in range(19))


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def parse_decimal(text: str) -> float:
    """A decimal string as the nearest float: one integer, one division by 10**decimals."""
    whole, dot, frac = text.partition(".")
    negative = whole.startswith("-")
    if negative:
        whole = whole[1:]
    if not (whole.isascii() and whole.isdigit()) or (dot and not _digits(frac)) or len(frac) > 18:
        raise NorenCodecError(f"not a decimal: {text[:24]!r}")
    value = int(whole + frac) / _POW10[len(frac)] if frac else float(int(whole))
    return -value if negative else value


def parse_integer(text: str) -> int:
    """A whole-number string ("162220"; a zero fraction such as "5.00" is allowed)."""
    if _digits(text):
        return int(text)
    whole, dot, frac = text.partition(".")
    negative = whole.startswith("-")
    digits = whole[1:] if negative else whole
    if not _digits(digits) or (dot and not (_digits(frac) and not frac.strip("0"))):
        raise NorenCodecError(f"not an integer: {text[:24]!r}")
    return -int(digits) if negative else int(digits)


def parse_clock(text: str) -> int:
    """`ltt` as epoch ms: epoch seconds, or "HH:MM:SS" / "DD-MM-YYYY HH:MM:SS" in India time."""
    if _digits(text):
        return int(text) * 1000
    try:
        if len(text) == 8:
            clock = dt.time.fromisoformat(text)
            day = dt.datetime.now(IST).date()
            stamp = dt.datetime.combine(day, clock, IST)
        else:
            stamp = dt.datetime.strptime(text, "%d-%m-%Y %H:%M:%S").replace(tzinfo=IST)
    except ValueError:
        raise NorenCodecError(f"not a time: {text[:24]!r}") from None
    return int(stamp.timestamp() * 1000)


PRICE_FIELDS: Final = ("lp o h l c ap pc ti uc lc 52h 52l " + " ".join(f"bp{i} sp{i}" for i in range(1, 6))).split()
INTEGER_FIELDS: Final = (
    "v oi poi toi ltq tbq tsq ft ls pp " + " ".join(f"bq{i} sq{i} bo{i} so{i}" for i in range(1, 6))
).split()
#: fields whose zero in an update means "not sent", never a real value
ZERO_KEEPS: Final = frozenset({"o", "h", "l", "c", "ap"})
#: fields that are not values of the instrument
ENVELOPE: Final = frozenset({"t", "e", "tk"})

CACHE_SIZE: Final = 1 << 16


def _cached(parse: Callable[[str], Number]) -> Callable[[str], Number]:
    """`parse` behind a bounded memo: a stream repeats the same price and quantity strings constantly
    (the memo is emptied when full; only well-formed strings enter it)."""
    memo: dict[str, Number] = {}
    get = memo.get

    def parse_cached(text: str) -> Number:
        value = get(text)
        if value is None:
            value = parse(text)
            if len(memo) >= CACHE_SIZE:
                memo.clear()
            memo[text] = value
        return value

    return parse_cached


PARSERS: Final[dict[str, Callable[[str], Number]]] = {
    **dict.fromkeys(PRICE_FIELDS, _cached(parse_decimal)),
    **dict.fromkeys(INTEGER_FIELDS, _cached(parse_integer)),
    "ltt": parse_clock,
}


# -- requests --------------------------------------------------------------------------------------


def key_text(key: Key) -> str:
    return f"{key[0]}|{key[1]}"


def parse_key(text: str) -> Key:
    exchange, bar, token = text.partition("|")
    if not bar or not exchange or not token:
        raise NorenCodecError(f"not an EXCH|token key: {text[:40]!r}")
    return exchange, token


def _frame(body: Mapping[str, str]) -> str:
    return msgspec.json.encode(body).decode()


def subscribe_frames(kind: str, keys: Iterable[Key], per_message: int = KEYS_PER_MESSAGE) -> list[str]:
    """`{"t":"t"|"d","k":"NSE|22#NSE|26000"}` frames of at most `per_message` keys each."""
    return _batched(kind, keys, per_message)


def unsubscribe_frames(kind: str, keys: Iterable[Key], per_message: int = KEYS_PER_MESSAGE) -> list[str]:
    """`{"t":"u"|"ud","k":...}` frames that undo a `kind` subscription."""
    return _batched(UNSUBSCRIBE[kind], keys, per_message)


def _batched(code: str, keys: Iterable[Key], per_message: int) -> list[str]:
    texts = [key_text(k) for k in keys]
    step = max(1, per_message)
    return [_frame({"t": code, "k": "#".join(texts[i : i + step])}) for i in range(0, len(texts), step)]


def diff_requests(sent: Mapping[Key, str], wanted: Mapping[Key, str], per_message: int = KEYS_PER_MESSAGE) -> list[str]:
    """The frames that turn the server's set `sent` (key -> "t"|"d") into `wanted`: unsubscribes
    first (a mode change unsubscribes the old kind), then subscribes, each kind in key order."""
    frames: list[str] = []
    for kind in (TOUCHLINE, DEPTH):
        gone = sorted(k for k, m in sent.items() if m == kind and wanted.get(k) != kind)
        frames += unsubscribe_frames(kind, gone, per_message)
    for kind in (TOUCHLINE, DEPTH):
        new = sorted(k for k, m in wanted.items() if m == kind and sent.get(k) != kind)
        frames += subscribe_frames(kind, new, per_message)
    return frames


def order_subscribe_frame(account: str) -> str:
    return _frame({"t": "o", "actid": account})


# -- decoding --------------------------------------------------------------------------------------

_decoder = msgspec.json.Decoder(dict[str, str])


def decode(message: str | bytes) -> dict[str, str]:
    """One server message as its field map (every value a string); NorenCodecError otherwise."""
    try:
        body = _decoder.decode(message)
    except msgspec.DecodeError as exc:
        raise NorenCodecError(f"not a Noren message: {exc}") from None
    if "t" not in body:
        raise NorenCodecError("message without a type 't'")
    return body


_order_decoder = msgspec.json.Decoder(dict[str, object])


def decode_any(message: str | bytes) -> dict[str, object]:
    """A server message whose values need not be strings (order updates carry lists)."""
    try:
        body = _order_decoder.decode(message)
    except msgspec.DecodeError as exc:
        raise NorenCodecError(f"not a Noren message: {exc}") from None
    if not isinstance(body.get("t"), str):
        raise NorenCodecError("message without a type 't'")
    return body


@dataclass(slots=True)
class InstrumentState:
    """The merged last full state of one instrument: the wire strings and their parsed values."""

    fields: dict[str, str] = field(default_factory=dict)
    values: dict[str, Number] = field(default_factory=dict)
    depth: bool = False  # the state came from a depth subscription (dk/df)


def _apply(state: InstrumentState, message: Mapping[str, str], full: bool) -> None:
    fields = state.fields
    values = state.values
    for name, text in message.items():
        if name in ENVELOPE or text == "":
            continue
        parser = PARSERS.get(name)
        if parser is None:
            fields[name] = text
            continue
        value = parser(text)
        if not full and not value and name in ZERO_KEEPS and values.get(name):
            continue
        fields[name] = text
        values[name] = value


def merge_fields(state: Mapping[str, str], update: Mapping[str, str]) -> dict[str, str]:
    """The merge rule on wire strings alone (pure; the reference the tests check `MergeState` by)."""
    merged = dict(state)
    for name, text in update.items():
        if name in ENVELOPE or text == "":
            continue
        if name in ZERO_KEEPS and PARSERS[name](text) == 0 and merged.get(name) and PARSERS[name](merged[name]):
            continue
        merged[name] = text
    return merged


class MergeState:
    """Per-connection merge state: (exchange, token) -> the last full state of that instrument."""

    def __init__(self) -> None:
        self.instruments: dict[Key, InstrumentState] = {}
        self.orphan_updates = 0  # updates for an instrument with no full state yet (ignored)

    def clear(self) -> None:
        self.instruments.clear()

    def forget(self, key: Key) -> None:
        self.instruments.pop(key, None)

    def apply(self, message: Mapping[str, str]) -> tuple[Key, InstrumentState] | None:
        """Merge one `tk`/`tf`/`dk`/`df` message; the instrument's key and merged state, or None for
        an update that arrived before its full acknowledgement."""
        kind = message["t"]
        try:
            key = (message["e"], message["tk"])
        except KeyError:
            raise NorenCodecError(f"{kind} message without e/tk") from None
        if kind in (TOUCHLINE_FULL, DEPTH_FULL):
            state = InstrumentState(depth=kind == DEPTH_FULL)
            _apply(state, message, full=True)
            self.instruments[key] = state
            return key, state
        state_or_none = self.instruments.get(key)
        if state_or_none is None:
            self.orphan_updates += 1
            return None
        _apply(state_or_none, message, full=False)
        return key, state_or_none


def _side(values: Mapping[str, Number], price: str, quantity: str, orders: str) -> tuple[DepthLevel, ...]:
    get = values.get
    levels = []
    for i in range(1, DEPTH_LEVELS + 1):
        p = get(f"{price}{i}")
        if p is None:
            levels.append(EMPTY_LEVEL)
            continue
        levels.append(DepthLevel(float(p), int(get(f"{quantity}{i}", 0)), int(get(f"{orders}{i}", 0))))
    return tuple(levels)


def to_tick(state: InstrumentState, symbol: str, exchange: str, received_ms: int) -> Tick:
    """The tick of a merged state: Quote for a touchline, Depth (5 levels) for a depth subscription.

    Stamped `received_ms` (a touchline has no exchange time; `ft` is the server's send time)."""
    v = state.values
    get = v.get
    ltt = int(get("ltt", 0)) or received_ms
    if state.depth:
        bids = _side(v, "bp", "bq", "bo")
        asks = _side(v, "sp", "sq", "so")
    else:
        bids = asks = ()
    return Tick(
        symbol,
        exchange,
        Mode.DEPTH if state.depth else Mode.QUOTE,
        float(get("lp", 0.0)),
        ltt=ltt,
        exchange_time=received_ms,
        open=float(get("o", 0.0)),
        high=float(get("h", 0.0)),
        low=float(get("l", 0.0)),
        close=float(get("c", 0.0)),
        volume=int(get("v", 0)),
        avg_trade_price=float(get("ap", 0.0)),
        last_trade_quantity=int(get("ltq", 0)),
        total_buy_quantity=int(get("tbq", 0)),
        total_sell_quantity=int(get("tsq", 0)),
        oi=int(get("oi", 0)),
        upper_circuit=float(get("uc", 0.0)),
        lower_circuit=float(get("lc", 0.0)),
        bids=bids,
        asks=asks,
    )


def feed_time(state: InstrumentState) -> int:
    """The Noren server's send time of the last message merged (epoch s; 0 when absent). Not the
    exchange's trade time."""
    return int(state.values.get("ft", 0))


# -- encoding (the simulator's side) ---------------------------------------------------------------


def format_price(value: float, decimals: int) -> str:
    return f"{value:.{decimals}f}"


def tick_fields(tick: Tick, decimals: int, depth: bool, now_s: int, ltt: str) -> dict[str, str]:
    """Every field a full acknowledgement of `tick` carries (values only, no t/e/tk)."""
    fmt = format_price
    out = {
        "lp": fmt(tick.ltp, decimals),
        "pc": fmt(round((tick.ltp - tick.close) * 100 / tick.close, 2) if tick.close else 0.0, 2),
        "v": str(tick.volume),
        "o": fmt(tick.open, decimals),
        "h": fmt(tick.high, decimals),
        "l": fmt(tick.low, decimals),
        "c": fmt(tick.close, decimals),
        "ap": fmt(tick.avg_trade_price, decimals),
        "oi": str(tick.oi),
        "bp1": fmt(tick.bids[0].price if tick.bids else 0.0, decimals),
        "sp1": fmt(tick.asks[0].price if tick.asks else 0.0, decimals),
        "bq1": str(tick.bids[0].quantity if tick.bids else 0),
        "sq1": str(tick.asks[0].quantity if tick.asks else 0),
        "ft": str(now_s),
    }
    if depth:
        for i, level in enumerate(tick.bids[:DEPTH_LEVELS], 1):
            out[f"bp{i}"], out[f"bq{i}"], out[f"bo{i}"] = (
                fmt(level.price, decimals),
                str(level.quantity),
                str(level.orders),
            )
        for i, level in enumerate(tick.asks[:DEPTH_LEVELS], 1):
            out[f"sp{i}"], out[f"sq{i}"], out[f"so{i}"] = (
                fmt(level.price, decimals),
                str(level.quantity),
                str(level.orders),
            )
        out.update(
            ltq=str(tick.last_trade_quantity),
            ltt=ltt,
            tbq=str(tick.total_buy_quantity),
            tsq=str(tick.total_sell_quantity),
            uc=fmt(tick.upper_circuit, decimals),
            lc=fmt(tick.lower_circuit, decimals),
        )
    return out


def changed_fields(previous: Mapping[str, str], current: Mapping[str, str]) -> dict[str, str]:
    """The fields of `current` that differ from `previous` (what an update carries)."""
    return {name: text for name, text in current.items() if previous.get(name) != text}


def encode(message: Mapping[str, str]) -> str:
    return _frame(message)
