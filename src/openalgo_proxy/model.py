"""The one tick model every broker feed produces and every consumer sees.

Prices are rupees (floats), quantities are integers, times are epoch milliseconds.
A value the broker does not provide is 0, never None.
"""

from __future__ import annotations

import enum

import msgspec


class Mode(enum.IntEnum):
    """Subscription mode of the client protocol and the bus topic."""

    LTP = 1
    QUOTE = 2
    DEPTH = 3

    @classmethod
    def parse(cls, value: object) -> Mode:
        """Accept 1/2/3 or "LTP"/"Quote"/"Depth" in any case; raise ValueError otherwise."""
        if isinstance(value, bool):
            raise ValueError(f"invalid mode {value!r}")
        if isinstance(value, int):
            try:
                return cls(value)
            except ValueError:
                raise ValueError(f"invalid mode {value!r}: use 1, 2, 3 or LTP, Quote, Depth") from None
        if isinstance(value, str):
            key = value.strip().upper()
            if key in _MODE_NAMES:
                return _MODE_NAMES[key]
            if key.isdigit():
                return cls.parse(int(key))
        raise ValueError(f"invalid mode {value!r}: use 1, 2, 3 or LTP, Quote, Depth")


_MODE_NAMES = {
    "LTP": Mode.LTP,
    "QUOTE": Mode.QUOTE,
    "DEPTH": Mode.DEPTH,
    "FULL": Mode.DEPTH,
    "SNAPQUOTE": Mode.DEPTH,
}

DEPTH_LEVELS = 5


class DepthLevel(msgspec.Struct, frozen=True, gc=False):
    """One price level of the order book, best first within its side."""

    price: float
    quantity: int
    orders: int


EMPTY_LEVEL = DepthLevel(0.0, 0, 0)


class Tick(msgspec.Struct, gc=False):
    """A normalized market update for one instrument.

    `mode` is the richest mode whose fields the broker filled: an LTP-only packet has
    mode LTP and zeros elsewhere. Feeds publish a tick under every subscribed mode up to it.
    """

    symbol: str
    exchange: str
    mode: Mode
    ltp: float
    ltt: int = 0
    exchange_time: int = 0
    open: float = 0.0
    high: float = 0.0
    low: float = 0.0
    close: float = 0.0
    volume: int = 0
    avg_trade_price: float = 0.0
    last_trade_quantity: int = 0
    total_buy_quantity: int = 0
    total_sell_quantity: int = 0
    oi: int = 0
    upper_circuit: float = 0.0
    lower_circuit: float = 0.0
    bids: tuple[DepthLevel, ...] = ()
    asks: tuple[DepthLevel, ...] = ()
    #: levels per side the book stands for: 5, or a deeper book (20, 30, 200) that feeds publish only
    #: on that depth's topic
    depth: int = DEPTH_LEVELS


class Instrument(msgspec.Struct, frozen=True, gc=False):
    """A tradable instrument as clients name it, with the broker's identity for it."""

    symbol: str
    exchange: str
    token: str
    tick_size: float = 0.05
    lot_size: int = 1
    name: str = ""
    instrument_type: str = ""  # EQ, INDEX, FUT, CE, PE (instrument_kind), "" when the broker does not say


def instrument_kind(broker_type: str, symbol: str, exchange: str) -> str:
    """One vocabulary for every broker's instrument type: EQ, INDEX, FUT, CE, PE (else the broker's
    own word). Angel says FUTIDX/OPTSTK/AMXIDX/"", Kite FUT/CE/PE/EQ, the simulated market FUTCOM."""
    word = broker_type.strip().upper()
    if exchange.endswith("_INDEX") or word in ("INDEX", "AMXIDX", "INDICES"):
        return "INDEX"
    if word.startswith("FUT"):
        return "FUT"
    if word.startswith("OPT") or word in ("CE", "PE"):
        return symbol[-2:] if symbol[-2:] in ("CE", "PE") else word
    if word in ("", "EQ") and exchange in ("NSE", "BSE"):
        return "EQ"
    return word
