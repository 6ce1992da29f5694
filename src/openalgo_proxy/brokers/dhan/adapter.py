"""The Dhan broker adapter: a pool of up to 5 market-feed connections x 5000 instruments.

The feed hands over instrument -> richest wanted mode; each instrument is subscribed upstream once,
with the request code that carries that mode (LTP -> Ticker 15, Quote -> Quote 17, Depth -> Full 21),
because the feed derives the lower modes from a richer tick. Packets are keyed by (segment, security
id) since Dhan's ids are unique only per segment. A Quote carries no open interest and, during the
session, no close: the adapter keeps the last OI packet (code 5) and previous-close packet (code 6)
of each instrument and folds them into its ticks.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Mapping

import msgspec

from openalgo_proxy.brokers.base import BrokerAdapter, FeedOptions
from openalgo_proxy.brokers.dhan.codec import (
    DEPTH_20_LEVELS,
    DEPTH_200_LEVELS,
    SUBSCRIBE_CODE,
    DepthPacket,
    FullPacket,
    MarketPacket,
    OiPacket,
    PrevClosePacket,
    QuotePacket,
    RequestCode,
    TickerPacket,
    depth_levels,
    to_tick,
)
from openalgo_proxy.brokers.dhan.connection import WS_URL, DhanConnection
from openalgo_proxy.brokers.dhan.credentials import DhanCredentials
from openalgo_proxy.brokers.dhan.depth import (
    DEPTH_20_CAP,
    DEPTH_20_PATH,
    DEPTH_20_URL,
    DEPTH_200_CAP,
    DEPTH_200_PATH,
    DEPTH_200_URL,
    DhanDepthConnection,
)
from openalgo_proxy.brokers.dhan.instruments import Key, load_master, wire_key
from openalgo_proxy.brokers.dhan.orders import ORDER_UPDATE_URL, DhanOrderStream, order_update
from openalgo_proxy.brokers.dhan.settings import DhanSettings
from openalgo_proxy.brokers.index import InstrumentIndex
from openalgo_proxy.brokers.order_stream import OrderStreamAdapter
from openalgo_proxy.brokers.pool import ConnectionPool
from openalgo_proxy.brokers.upstream import Settings
from openalgo_proxy.errors import ErrorCode
from openalgo_proxy.model import DEPTH_LEVELS, DepthLevel, Instrument, Mode, Tick

MAX_CONNECTIONS = 5
MAX_INSTRUMENTS_PER_CONNECTION = 5000
#: client exchanges with 20- and 200-level books (Dhan's NSE_EQ and NSE_FNO)
DEEP_BOOK_EXCHANGES = frozenset({"NSE", "NFO"})
DEEP_BOOK_LEVELS = (DEPTH_LEVELS, DEPTH_20_LEVELS, DEPTH_200_LEVELS)


class DhanAdapter(OrderStreamAdapter[Key, RequestCode]):
    name = "dhan"
    max_connections_cap = MAX_CONNECTIONS
    per_connection_cap = MAX_INSTRUMENTS_PER_CONNECTION

    def __init__(
        self,
        options: FeedOptions,
        credentials: DhanCredentials | None = None,
        *,
        max_instruments_per_connection: int = MAX_INSTRUMENTS_PER_CONNECTION,
        backoff_base: float = 1.0,
        backoff_cap: float = 60.0,
        backoff_long: float = 60.0,
        ping_interval: float | None = 20.0,
        open_timeout: float = 10.0,
        stable_after: float = 10.0,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(
            options,
            per_connection=max_instruments_per_connection,
            backoff=(backoff_base, backoff_cap, backoff_long),
            rng=rng,
        )
        self._given_credentials = credentials
        self.credentials: DhanCredentials | None = None
        self.ws_url = options.ws_url or WS_URL
        self._settings = Settings(
            stall_timeout=options.stall_timeout,
            ping_interval=ping_interval,
            open_timeout=open_timeout,
            stable_after=stable_after,
        )
        self._oi: dict[Key, int] = {}
        self._prev_close: dict[Key, float] = {}
        # deeper books: one pool per feed (20: 5 connections x 50; 200: 5 x 1), what is wanted of
        # them, the last standard tick of those instruments (a book tick carries its trade fields)
        # and the half-received book (bid, ask) of each
        base = (options.ws_url or "").rstrip("/")
        self.depth_urls = {
            DEPTH_20_LEVELS: base + DEPTH_20_PATH if base else DEPTH_20_URL,
            DEPTH_200_LEVELS: base + DEPTH_200_PATH if base else DEPTH_200_URL,
        }
        self.depth_pools: dict[int, ConnectionPool[Key, int]] = {
            levels: ConnectionPool(
                functools.partial(self.open_depth_connection, levels),
                max_connections=min(options.max_connections or MAX_CONNECTIONS, MAX_CONNECTIONS),
                per_connection=cap,
            )
            for levels, cap in ((DEPTH_20_LEVELS, DEPTH_20_CAP), (DEPTH_200_LEVELS, DEPTH_200_CAP))
        }
        self.order_url = base + "/order-update" if base else ORDER_UPDATE_URL
        self._deep: dict[Key, tuple[Instrument, int]] = {}
        self._last_standard: dict[Key, Tick] = {}
        self._books: dict[Key, list[tuple[DepthLevel, ...] | None]] = {}

    async def prepare(self) -> None:
        self.credentials = self._given_credentials or DhanCredentials.from_env(
            settings=self.options.section(DhanSettings)
        )

    async def load_index(self) -> InstrumentIndex[Key]:
        return await load_master(self.options.instruments, self.options.cache_dir)

    def wire_key(self, instrument: Instrument) -> Key:
        return wire_key(instrument)

    def upstream_mode(self, instrument: Instrument, mode: Mode) -> RequestCode:
        return SUBSCRIBE_CODE[mode]

    def open_connection(self, slot: int) -> DhanConnection:
        assert self.credentials is not None, "start() first"
        return DhanConnection(
            slot,
            self.ws_url,
            self.credentials,
            self._packet,
            self._settings,
            self.new_backoff(),
        )

    def open_depth_connection(self, levels: int, slot: int) -> DhanDepthConnection:
        assert self.credentials is not None, "start() first"
        return DhanDepthConnection(
            slot,
            levels,
            self.depth_urls[levels],
            self.credentials,
            self._depth,
            self._settings,
            self.new_backoff(),
        )

    def open_order_stream(self) -> DhanOrderStream:
        assert self.credentials is not None, "start() first"
        return DhanOrderStream(
            "dhan-orders",
            self.order_url,
            self.credentials,
            functools.partial(order_update, broker=self.name, instrument_of=self._order_instrument),
            self.emit_order,
            backoff=self.new_backoff(),
        )

    def _order_instrument(self, segment: int, security_id: int) -> Instrument | None:
        return self.indexed((segment, security_id))

    def connections(self) -> list[DhanConnection]:
        return [c for c in self.pool.slots if isinstance(c, DhanConnection)]

    def depth_connections(self, levels: int) -> list[DhanDepthConnection]:
        return [c for c in self.depth_pools[levels].slots if isinstance(c, DhanDepthConnection)]

    # -- deeper books ------------------------------------------------------------------------------

    def depth_levels(self, instrument: Instrument) -> tuple[int, ...]:
        return DEEP_BOOK_LEVELS if instrument.exchange in DEEP_BOOK_EXCHANGES else (DEPTH_LEVELS,)

    async def set_wanted_depth(self, wanted: Mapping[Instrument, int]) -> None:
        deep: dict[Key, tuple[Instrument, int]] = {}
        for instrument, levels in wanted.items():
            if levels not in self.depth_levels(instrument) or levels == DEPTH_LEVELS:
                message = f"Dhan has no {levels}-level book for {instrument.exchange}"
                self.reject(instrument, Mode.DEPTH, ErrorCode.INVALID_DEPTH, message, levels)
                continue
            deep[wire_key(instrument)] = (instrument, levels)
        self._deep = deep
        for levels, pool in self.depth_pools.items():
            placed = {key: levels for key, (_, want) in deep.items() if want == levels}
            for key in await pool.assign(placed):
                message = f"Dhan allows {pool.max_connections} {levels}-depth connections x {pool.per_connection}"
                self.reject(deep[key][0], Mode.DEPTH, ErrorCode.LIMIT_EXCEEDED, message, levels)
        for key in [k for k in self._books if k not in deep]:
            del self._books[key]

    def _depth(self, packet: DepthPacket) -> None:
        key = (packet.segment, packet.security_id)
        wanted = self._deep.get(key)
        if wanted is None:
            self.unknown_keys += 1
            return
        instrument, levels = wanted
        book = self._books.setdefault(key, [None, None])
        book[0 if packet.bid else 1] = depth_levels(packet.rows, levels)
        bids, asks = book
        if bids is None or asks is None:
            return  # the other side of this update is still to come
        book[0] = book[1] = None
        base = self._last_standard.get(key)
        if base is None:
            tick = Tick(instrument.symbol, instrument.exchange, Mode.DEPTH, 0.0, bids=bids, asks=asks, depth=levels)
        else:
            tick = msgspec.structs.replace(base, mode=Mode.DEPTH, bids=bids, asks=asks, depth=levels)
        self.on_tick(tick)

    async def stop(self) -> None:
        try:
            for pool in self.depth_pools.values():
                await pool.stop()
        finally:
            await super().stop()

    async def set_wanted(self, wanted: Mapping[Instrument, Mode]) -> None:
        await super().set_wanted(wanted)
        keep = {wire_key(instrument) for instrument in wanted}
        for table in (self._oi, self._prev_close, self._last_standard):
            for key in [k for k in table if k not in keep]:
                del table[key]

    def _packet(self, packet: MarketPacket) -> None:
        kind = type(packet)
        key = (packet.segment, packet.security_id)
        if kind is FullPacket or kind is QuotePacket or kind is TickerPacket:
            instrument = self.instrument_of(key)
            if instrument is not None:
                assert isinstance(packet, FullPacket | QuotePacket | TickerPacket)
                tick = to_tick(
                    packet, instrument.symbol, instrument.exchange, self._oi.get(key, 0), self._prev_close.get(key, 0.0)
                )
                self.on_tick(tick)
                self._last_standard[key] = tick  # the trade fields of a deeper book's next tick
        elif kind is OiPacket:
            assert isinstance(packet, OiPacket)
            self._oi[key] = packet.oi
        elif kind is PrevClosePacket:
            assert isinstance(packet, PrevClosePacket)
            self._prev_close[key] = packet.prev_close
        # market status (7) carries nothing for a tick

    def status_extra(self) -> dict[str, object]:
        return {
            "disconnects": [reason for c in self.connections() for reason in c.disconnects],
            "depth_connections": {levels: len(pool.connections()) for levels, pool in self.depth_pools.items()},
            "order_alerts": self.order_events(),
        }


def create(options: FeedOptions) -> BrokerAdapter:
    """Registry entry point: credentials from the environment (read in start())."""
    return DhanAdapter(options)
