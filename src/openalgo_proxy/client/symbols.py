"""Naming instruments and streams on the client side: ``EXCHANGE:SYMBOL`` and modes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from openalgo_proxy.model import Mode

ModeLike = Mode | int | str


class Stream(NamedTuple):
    """One subscription of the proxy: an instrument in one mode."""

    exchange: str
    symbol: str
    mode: Mode

    @property
    def name(self) -> str:
        return f"{self.exchange}:{self.symbol}"


def parse_instrument(text: str) -> tuple[str, str]:
    """``"nse:infy"`` -> ``("NSE", "INFY")``: both upper-cased, as exchanges list them (and as the
    web market watch does). The symbol may itself contain ``:``."""
    exchange, sep, symbol = text.strip().partition(":")
    if not sep or not exchange or not symbol:
        raise ValueError(f"instrument {text!r} is not EXCHANGE:SYMBOL (for example NSE:RELIANCE)")
    return exchange.upper(), symbol.upper()


InstrumentLike = str | tuple[str, str]


def to_instrument(item: InstrumentLike) -> tuple[str, str]:
    """Accept ``"NSE:RELIANCE"`` or ``("NSE", "RELIANCE")``; return (exchange, symbol)."""
    if isinstance(item, str):
        return parse_instrument(item)
    exchange, symbol = item
    return exchange, symbol


def streams(items: Iterable[InstrumentLike], mode: ModeLike) -> list[Stream]:
    """Distinct streams, in order, for instruments in one mode."""
    parsed = Mode.parse(mode)
    seen: dict[Stream, None] = {}
    for item in items:
        exchange, symbol = to_instrument(item)
        seen[Stream(exchange, symbol, parsed)] = None
    return list(seen)
