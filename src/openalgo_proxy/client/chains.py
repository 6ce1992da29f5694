"""Typed option chain messages (`option_chain`, docs/chain.md) for the Python client."""

from __future__ import annotations

from typing import NamedTuple

import msgspec


class ChainLeg(msgspec.Struct, kw_only=True, gc=False):
    """One leg (CE or PE) of a strike: prices, book, OI, IV in percent with its status, Greeks."""

    symbol: str
    ltp: float = 0.0
    bid: float = 0.0
    ask: float = 0.0
    volume: int = 0
    oi: int = 0
    oi_change: int = 0
    iv: float = 0.0  # percent; 0 when iv_status is not "ok"
    iv_status: str = "no_price"  # ok, no_price, no_solution, expired
    delta: float = 0.0
    gamma: float = 0.0
    theta: float = 0.0  # per calendar day
    vega: float = 0.0  # per volatility point

    @property
    def has_iv(self) -> bool:
        return self.iv_status == "ok"


class ChainStrike(msgspec.Struct, kw_only=True, gc=False):
    strike: float
    ce: ChainLeg
    pe: ChainLeg


class OptionChain(msgspec.Struct, kw_only=True, gc=False):
    """The `data` of an `option_chain` message, plus its envelope's topic, seq and snapshot flag."""

    underlying: str
    exchange: str
    expiry: str  # DDMMMYY of the chain (resolved when "nearest" was asked)
    expiry_date: str = ""
    model: str = ""  # black76 | black_scholes
    underlying_source: str = ""  # future | spot
    underlying_symbol: str = ""
    underlying_exchange: str = ""
    underlying_price: float = 0.0
    spot: float = 0.0
    forward: float = 0.0
    rate: float = 0.0
    dividend_yield: float = 0.0
    time_to_expiry: float = 0.0
    days_to_expiry: float = 0.0
    atm_strike: float = 0.0
    strikes_each_side: int = 0
    total_call_oi: int = 0
    total_put_oi: int = 0
    pcr: float = 0.0
    timestamp: int = 0
    strikes: list[ChainStrike] = []
    topic: str = ""
    seq: int = 0
    snapshot: bool = False

    @property
    def atm(self) -> ChainStrike | None:
        """The row of the ATM strike."""
        return next((row for row in self.strikes if row.strike == self.atm_strike), None)


class ChainRequest(NamedTuple):
    """A chain the client holds: what it asked for (replayed after a reconnect)."""

    underlying: str
    exchange: str
    expiry: str
    strikes: int

    @property
    def topic(self) -> str:
        return f"{self.underlying}.{self.exchange}:{self.expiry}:{self.strikes}"

    def payload(self, action: str) -> dict[str, object]:
        return {
            "action": action,
            "underlying": self.underlying,
            "exchange": self.exchange,
            "expiry": self.expiry,
            "strikes": self.strikes,
        }
