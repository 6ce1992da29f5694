"""Broker data sanity: ticks no market can produce are dropped before they reach the bus.

A codec decodes what the bytes say; this module judges whether it can be true. A tick is refused
when a price is not finite, negative (outside the commodity exchanges, where crude oil futures did
trade below zero in April 2020) or absurd (over ``MAX_PRICE`` rupees: nothing listed in India comes
near), when a quantity is negative or absurd (``MAX_QUANTITY``: int64-max and friends), or when it
would erase a known last price with 0 (a packet of a kind the feed never asked for, e.g. Angel's
Depth-20, which carries no trade fields). Refusals are counted with the broker's decode errors.

Pure apart from its counters; the feed calls :meth:`TickSanity.admit` once per tick.
"""

from __future__ import annotations

import logging
import math
from collections import Counter

from openalgo_proxy.model import Tick

log = logging.getLogger(__name__)

MAX_PRICE = 1e8  # rupees
MAX_QUANTITY = 10**13  # shares, contracts or orders
NEGATIVE_PRICE_EXCHANGES = frozenset({"MCX", "NCDEX"})

_PRICES = ("ltp", "open", "high", "low", "close", "avg_trade_price", "upper_circuit", "lower_circuit")
_QUANTITIES = ("volume", "last_trade_quantity", "total_buy_quantity", "total_sell_quantity", "oi")


def _bad_price(value: float, negative_ok: bool) -> bool:
    return not math.isfinite(value) or value > MAX_PRICE or (value < 0 and (not negative_ok or value < -MAX_PRICE))


def _bad_quantity(value: int) -> bool:
    return value < 0 or value > MAX_QUANTITY


def impossible(tick: Tick) -> str | None:
    """Why no market could have produced this tick, or None."""
    negative_ok = tick.exchange in NEGATIVE_PRICE_EXCHANGES
    for name in _PRICES:
        if _bad_price(getattr(tick, name), negative_ok):
            return f"{name} {getattr(tick, name)!r}"
    for name in _QUANTITIES:
        if _bad_quantity(getattr(tick, name)):
            return f"{name} {getattr(tick, name)!r}"
    for side in (tick.bids, tick.asks):
        for level in side:
            if _bad_price(level.price, negative_ok) or _bad_quantity(level.quantity) or _bad_quantity(level.orders):
                return f"depth level {level!r}"
    return None


class TickSanity:
    """Per feed: admits or refuses each tick, remembers which instruments have a last price."""

    def __init__(self) -> None:
        self.rejected = 0
        self.reasons: Counter[str] = Counter()
        self._priced: set[tuple[str, str]] = set()

    def admit(self, tick: Tick) -> bool:
        reason = impossible(tick)
        key = (tick.exchange, tick.symbol)
        if reason is None and tick.ltp == 0 and key in self._priced:
            reason = "erased ltp: 0 for an instrument that has a last price"
        if reason is None:
            if tick.ltp != 0:
                self._priced.add(key)
            return True
        self.rejected += 1
        self.reasons[reason.split(" ", 1)[0]] += 1
        if self.rejected == 1 or self.rejected % 1000 == 0:
            log.warning(
                "dropped an impossible tick for %s %s: %s (%d so far)",
                tick.exchange,
                tick.symbol,
                reason,
                self.rejected,
            )
        return False
