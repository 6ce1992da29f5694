"""`PooledAdapter`: the BrokerAdapter contract over an instrument index and a connection pool.

A broker's adapter subclasses it and supplies what is broker knowledge:
- `load_index()`: its instrument master as an `InstrumentIndex` (see `master.load_daily`);
- `wire_key(instrument)` and `upstream_mode(instrument, mode)`: how the wire names a wanted pair;
- `open_connection(slot)`: one `UpstreamConnection` subclass instance for a pool slot;
- optionally `prepare()` (credentials, before the index loads) and `status_extra()`.
Decoded packets come back through `instrument_of(key)` and `emit(tick)`; order events through
`emit_order(update)`. Everything else (exchange filter, lookup, directory, caps and LIMIT_EXCEEDED,
status folding, stop) is here once.
"""

from __future__ import annotations

import abc
import logging
import random
from collections.abc import Mapping
from typing import Any, Generic

from openalgo_proxy.brokers.base import (
    AdapterStatus,
    Backoff,
    FeedOptions,
    OrderSink,
    Rejection,
    RejectSink,
    TickSink,
)
from openalgo_proxy.brokers.index import IndexedAdapter, InstrumentIndex
from openalgo_proxy.brokers.pool import ConnectionPool, K, Slot, V
from openalgo_proxy.errors import ErrorCode
from openalgo_proxy.model import DEPTH_LEVELS, Instrument, Mode, Tick

log = logging.getLogger(__name__)


class PooledAdapter(IndexedAdapter[K], Generic[K, V]):
    """One broker account served by a pool of upstream connections."""

    #: the broker's caps: connections per account, subscriptions per connection
    max_connections_cap: int = 1
    per_connection_cap: int = 1
    #: slots that stay open with nothing wanted (an idle connection that proves the credentials)
    keep_open: int = 0
    #: try rejected keys again when room frees up (else they stay rejected until unwanted)
    retry_rejected: bool = False

    def __init__(
        self,
        options: FeedOptions,
        *,
        per_connection: int | None = None,
        backoff: tuple[float, float, float] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.options = options
        #: every connection's reconnect backoff (base, cap, long delay): the feed's options by default
        self.backoff_limits = backoff or (options.backoff_base, options.backoff_cap, options.backoff_cap)
        self.rng = rng or random.Random()  # the jitter of all of them
        max_connections = min(options.max_connections or self.max_connections_cap, self.max_connections_cap)
        per = min(per_connection or options.max_per_connection or self.per_connection_cap, self.per_connection_cap)
        self.pool: ConnectionPool[K, V] = ConnectionPool(
            self.open_connection,
            max_connections=max_connections,
            per_connection=per,
            keep_open=self.keep_open,
            retry_rejected=self.retry_rejected,
        )
        self.on_tick: TickSink = lambda tick: None  # the sinks until start() / set_order_sink()
        self.on_order: OrderSink = lambda update: None
        self._on_reject: RejectSink = lambda rejection: None
        self._wanted: dict[K, tuple[Instrument, Mode]] = {}
        self.unknown_keys = 0

    def new_backoff(self) -> Backoff:
        """A fresh reconnect backoff for one of the account's connections."""
        base, cap, long_delay = self.backoff_limits
        return Backoff(base, cap, long_delay, rng=self.rng)

    # -- broker hooks ------------------------------------------------------------------------------

    async def prepare(self) -> None:
        """Read credentials (and log in) before the instrument master loads."""

    @abc.abstractmethod
    async def load_index(self) -> InstrumentIndex[K]:
        """The account's instruments, keyed as the wire names them."""

    @abc.abstractmethod
    def wire_key(self, instrument: Instrument) -> K:
        """How the broker's packets name `instrument`."""

    @abc.abstractmethod
    def upstream_mode(self, instrument: Instrument, mode: Mode) -> V:
        """The broker mode to subscribe so that ticks of `mode` (and the lower modes) can be made."""

    @abc.abstractmethod
    def open_connection(self, slot: int) -> Slot:
        """A new (not yet started) upstream connection for pool slot `slot`."""

    def status_extra(self) -> dict[str, object]:
        return {}

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self, on_tick: TickSink, on_reject: RejectSink) -> None:
        await self.prepare()
        index = await self.load_index()
        if self.options.exchanges:
            index.restrict(self.options.exchanges)
        self.index = index
        self.on_tick = on_tick
        self._on_reject = on_reject
        await self.pool.open_kept()
        log.info("%s: ready with %d instruments on %s", self.name, len(index), ", ".join(index.exchanges()))

    def set_order_sink(self, on_order: OrderSink) -> None:
        self.on_order = on_order

    async def stop(self) -> None:
        await self.pool.stop()

    # -- instruments -------------------------------------------------------------------------------

    def instrument_of(self, key: K) -> Instrument | None:
        """The subscribed instrument a packet names, or None (counted as unknown)."""
        wanted = self._wanted.get(key)
        if wanted is None:
            self.unknown_keys += 1
            return None
        return wanted[0]

    def emit(self, tick: Tick) -> None:
        self.on_tick(tick)

    # -- subscriptions -----------------------------------------------------------------------------

    async def set_wanted(self, wanted: Mapping[Instrument, Mode]) -> None:
        desired = {self.wire_key(instrument): (instrument, Mode(mode)) for instrument, mode in wanted.items()}
        modes = {key: self.upstream_mode(instrument, mode) for key, (instrument, mode) in desired.items()}
        self._wanted = desired
        for key in await self.pool.assign(modes):
            instrument, mode = desired[key]
            self.reject(instrument, mode, ErrorCode.LIMIT_EXCEEDED, self.pool.limit_message())

    def refuse(self, keys: list[K], code: ErrorCode, message: str) -> None:
        """The broker refused these subscriptions (an error reply): unsubscribe and reject them."""
        for key in self.pool.drop(keys):
            instrument, mode = self._wanted[key]
            self.reject(instrument, mode, code, message)

    def reject(
        self, instrument: Instrument, mode: Mode, code: ErrorCode, message: str, depth: int = DEPTH_LEVELS
    ) -> None:
        log.warning("%s: %s %s mode %d rejected: %s", self.name, instrument.exchange, instrument.symbol, mode, message)
        self._on_reject(Rejection(instrument, mode, code, message, depth))

    # -- health ------------------------------------------------------------------------------------

    def status(self) -> AdapterStatus:
        pool = self.pool
        conns = pool.connections()
        extra: dict[str, Any] = {
            "idle": not conns,
            "wanted": len(self._wanted),
            "rejected": len(pool.rejected),
            "stalls": pool.total("stalls"),
            "heartbeats": pool.total("heartbeats"),
            "unknown_keys": self.unknown_keys,
            "upstream": [c.info() for c in conns],
        } | self.status_extra()
        return AdapterStatus(
            state=pool.state(started=self.index is not None),
            connections=pool.connected(),
            subscriptions=sum(c.info()["subscriptions"] for c in conns),
            reconnects=pool.total("reconnects"),
            decode_errors=pool.total("decode_errors"),
            extra=extra,
        )
