"""What the feeds on the bus serve, as one proxy has learned it from their control messages.

`#instruments|BROKER` fills the symbols per exchange and which broker serves each exchange;
`#status|BROKER` the latest status of each feed and when it arrived. The hub feeds it decoded
messages (see `control.py`); sessions ask it whether a symbol can be served.
"""

from __future__ import annotations

from openalgo_proxy.control import FeedStatus, InstrumentDirectory
from openalgo_proxy.errors import ErrorCode


class Directory:
    def __init__(self, default_broker: str = "") -> None:
        self.symbols: dict[str, set[str]] = {}
        self.broker_of: dict[str, str] = {}
        self.default_broker = default_broker
        self.status: dict[str, FeedStatus] = {}
        self.status_seen: dict[str, float] = {}

    def update(self, directory: InstrumentDirectory) -> list[str]:
        """Take a feed's directory; returns the exchanges whose serving broker changed."""
        changed = []
        for exchange, names in directory.symbols.items():
            self.symbols[exchange] = set(names)
            if self.broker_of.get(exchange) != directory.broker:
                self.broker_of[exchange] = directory.broker
                changed.append(exchange)
        return changed

    def update_status(self, broker: str, status: FeedStatus, now: float) -> None:
        """A feed's status, published on `#status|BROKER` (the topic names the broker)."""
        self.status[broker] = status
        self.status_seen[broker] = now

    def broker(self, exchange: str) -> str:
        return self.broker_of.get(exchange) or self.default_broker or next(iter(self.status), "")

    def brokers(self) -> list[str]:
        return sorted(set(self.broker_of.values()) | set(self.status))

    def check(self, exchange: str, symbol: str) -> tuple[ErrorCode, str] | None:
        if not self.symbols:
            return ErrorCode.BROKER_UNAVAILABLE, "no broker feed is connected yet; try again shortly"
        names = self.symbols.get(exchange)
        if names is None:
            return ErrorCode.SYMBOL_NOT_FOUND, f"exchange {exchange} is not served by any connected feed"
        if symbol not in names:
            return ErrorCode.SYMBOL_NOT_FOUND, f"{symbol} is not listed on {exchange}"
        return None
