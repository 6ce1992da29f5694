"""What the feeds on the bus serve, as one proxy has learned it from their control messages.

`#instruments|BROKER` fills the symbols per exchange (with their search details when the feed
sends them) and which broker serves each exchange; `#status|BROKER` the latest status of each feed
and when it arrived. The hub feeds it decoded messages (see `control.py`); sessions ask it whether a
symbol can be served, and search it.

The search index is rebuilt after each instrument list: at once for a small directory, otherwise by
`prepare_index` (the server runs it in a worker thread, so a broker's full master never stalls the
event loop); a search before it is ready builds it there and then.
"""

from __future__ import annotations

from collections.abc import Container

from openalgo_proxy.control import FeedStatus, InstrumentDirectory, InstrumentInfo
from openalgo_proxy.errors import ErrorCode
from openalgo_proxy.search import Listing, SearchIndex

SYNC_INDEX_AT_MOST = 5000  # instruments; a bigger directory's search index is built off the event loop
SUGGESTIONS = 3


class Directory:
    def __init__(self, default_broker: str = "") -> None:
        self.symbols: dict[str, set[str]] = {}
        self.broker_of: dict[str, str] = {}
        self.default_broker = default_broker
        self.status: dict[str, FeedStatus] = {}
        self.status_seen: dict[str, float] = {}
        self._listings: dict[str, tuple[Listing, ...]] = {}
        self._all: tuple[Listing, ...] = ()  # replaced whole on each update (read by a worker thread)
        self._generation = 0
        self._index: tuple[int, SearchIndex] = (0, SearchIndex())

    def update(self, directory: InstrumentDirectory) -> list[str]:
        """Take a feed's directory; returns the exchanges whose serving broker changed."""
        changed = []
        described = directory.instruments if isinstance(directory.instruments, dict) else {}
        for exchange, names in directory.symbols.items():
            self.symbols[exchange] = set(names)
            if self.broker_of.get(exchange) != directory.broker:
                self.broker_of[exchange] = directory.broker
                changed.append(exchange)
            details = {info.symbol: info for info in described.get(exchange, ())}
            self._listings[exchange] = tuple(_listing(exchange, name, details) for name in names)
        self._all = tuple(item for items in self._listings.values() for item in items)
        self._generation += 1
        if len(self._all) <= SYNC_INDEX_AT_MOST:
            self.prepare_index()
        return changed

    @property
    def index_ready(self) -> bool:
        return self._index[0] == self._generation

    def prepare_index(self) -> None:
        """Build the search index of the current instruments (safe in a worker thread: it reads one
        immutable snapshot and stores the result only if no newer list arrived meanwhile)."""
        generation, listings = self._generation, self._all
        index = SearchIndex(listings)
        if generation == self._generation:
            self._index = (generation, index)

    def search_index(self) -> SearchIndex:
        if not self.index_ready:
            self.prepare_index()
        return self._index[1]

    def search(
        self, query: str, exchange: str | None, limit: int, allowed: Container[str] | None = None
    ) -> list[Listing]:
        return self.search_index().search(query, exchange, limit, allowed)

    def suggest(self, exchange: str, symbol: str) -> list[str]:
        """EXCHANGE:SYMBOL names close to an unknown one (NSE NIFTY -> NSE_INDEX:NIFTY)."""
        return [item.qualified for item in self.search_index().suggest(symbol, exchange, SUGGESTIONS)]

    def update_status(self, broker: str, status: FeedStatus, now: float) -> None:
        """A feed's status, published on `#status|BROKER` (the topic names the broker)."""
        self.status[broker] = status
        self.status_seen[broker] = now

    def broker(self, exchange: str) -> str:
        return self.broker_of.get(exchange) or self.default_broker or next(iter(self.status), "")

    def brokers(self) -> list[str]:
        return sorted(set(self.broker_of.values()) | set(self.status))

    def awaited(self, broker: str) -> set[str]:
        """Exchanges a feed's status announces whose instrument list has not arrived yet."""
        status = self.status.get(broker)
        return set(status.exchanges) - self.symbols.keys() if status is not None else set()

    def complete(self, brokers: list[str]) -> bool:
        """True when the instrument lists of every exchange these feeds announce have arrived."""
        return bool(self.symbols) and not any(self.awaited(broker) for broker in brokers)

    def check(self, exchange: str, symbol: str) -> tuple[ErrorCode, str] | None:
        if not self.symbols:
            return ErrorCode.BROKER_UNAVAILABLE, "no broker feed is connected yet; try again shortly"
        names = self.symbols.get(exchange)
        if names is None:
            if any(exchange in self.awaited(broker) for broker in self.status):
                return (
                    ErrorCode.BROKER_UNAVAILABLE,
                    f"the feed serving {exchange} has not sent its instrument list yet; try again shortly",
                )
            return ErrorCode.SYMBOL_NOT_FOUND, f"exchange {exchange} is not served by any connected feed"
        if symbol not in names:
            return ErrorCode.SYMBOL_NOT_FOUND, f"{symbol} is not listed on {exchange}"
        return None


def _listing(exchange: str, symbol: str, details: dict[str, InstrumentInfo]) -> Listing:
    info = details.get(symbol)
    if info is None:
        return Listing(symbol, exchange)
    return Listing(symbol, exchange, info.name, info.instrument_type, info.tick_size, info.lot_size)
