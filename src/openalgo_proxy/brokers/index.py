"""The instrument index: client names (exchange, symbol) <-> the broker's wire key, both ways.

The wire key is whatever identifies an instrument in the broker's packets: Angel's
(exchange type, token), Kite's integer instrument token, Dhan's (segment, security id) because its
ids are unique only per segment, Upstox's `NSE_EQ|<ISIN>`. Keys are any hashable value, so the
index never assumes a token is unique across exchanges.
"""

from __future__ import annotations

import copy
from collections.abc import Hashable, Iterable, Mapping
from typing import Generic, Self, TypeVar

from openalgo_proxy.brokers.base import BrokerAdapter
from openalgo_proxy.model import Instrument

K = TypeVar("K", bound=Hashable)


class InstrumentIndex(Generic[K]):
    """Both-way map; first entry of a name or key wins unless `add(..., replace=True)`."""

    def __init__(self) -> None:
        self._by_name: dict[tuple[str, str], tuple[Instrument, K]] = {}
        self._by_key: dict[K, Instrument] = {}
        self.skipped = 0  # rows refused because their name or key was already taken

    def add(self, instrument: Instrument, key: K, *, replace: bool = False) -> bool:
        """Index `instrument` under its client name and `key`; False (and counted) on a clash."""
        name = (instrument.exchange, instrument.symbol)
        existing = self._by_name.get(name)
        if not replace and (existing is not None or key in self._by_key):
            self.skipped += 1
            return False
        if existing is not None:
            self._by_key.pop(existing[1], None)
        self._by_name[name] = (instrument, key)
        self._by_key[key] = instrument
        return True

    def __len__(self) -> int:
        return len(self._by_name)

    def lookup(self, exchange: str, symbol: str) -> Instrument | None:
        entry = self._by_name.get((exchange, symbol))
        return entry[0] if entry is not None else None

    def key_of(self, instrument: Instrument) -> K | None:
        entry = self._by_name.get((instrument.exchange, instrument.symbol))
        return entry[1] if entry is not None else None

    def by_key(self, key: K) -> Instrument | None:
        return self._by_key.get(key)

    def exchanges(self) -> tuple[str, ...]:
        return tuple(sorted({exchange for exchange, _ in self._by_name}))

    def directory(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for exchange, symbol in self._by_name:
            out.setdefault(exchange, []).append(symbol)
        return out

    def restrict(self, exchanges: Iterable[str]) -> None:
        """Keep only the instruments of `exchanges` (a feed serving part of an account's exchanges)."""
        keep = set(exchanges)
        self._by_name = {name: entry for name, entry in self._by_name.items() if name[0] in keep}
        self._by_key = {key: instrument for instrument, key in self._by_name.values()}

    def restricted(self, exchanges: Iterable[str]) -> Self:
        """A copy holding only the instruments of `exchanges`."""
        clone = copy.copy(self)
        clone.restrict(exchanges)
        return clone


class IndexedAdapter(BrokerAdapter, Generic[K]):
    """A broker adapter that answers `exchanges`, `lookup` and `directory` from its `index`, set by `start()`."""

    index: InstrumentIndex[K] | None = None

    def _index(self) -> InstrumentIndex[K]:
        if self.index is None:
            raise RuntimeError(f"{type(self).__name__}.start() has not completed")
        return self.index

    def exchanges(self) -> tuple[str, ...]:
        return self._index().exchanges()

    def lookup(self, exchange: str, symbol: str) -> Instrument | None:
        return self._index().lookup(exchange, symbol)

    def directory(self) -> Mapping[str, Iterable[str]]:
        return self._index().directory()
