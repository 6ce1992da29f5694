"""The Dhan broker adapter: a pool of up to 5 market-feed connections x 5000 instruments.

The feed hands over instrument -> richest wanted mode; each instrument is subscribed upstream once,
with the request code that carries that mode (LTP -> Ticker 15, Quote -> Quote 17, Depth -> Full 21),
because the feed derives the lower modes from a richer tick. Packets are keyed by (segment, security
id) since Dhan's ids are unique only per segment. A Quote carries no open interest and, during the
session, no close: the adapter keeps the last OI packet (code 5) and previous-close packet (code 6)
of each instrument and folds them into its ticks.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

from openalgo_proxy.brokers.base import Backoff, BrokerAdapter, FeedOptions
from openalgo_proxy.brokers.dhan.codec import (
    SUBSCRIBE_CODE,
    FullPacket,
    MarketPacket,
    OiPacket,
    PrevClosePacket,
    QuotePacket,
    RequestCode,
    TickerPacket,
    to_tick,
)
from openalgo_proxy.brokers.dhan.connection import WS_URL, DhanConnection
from openalgo_proxy.brokers.dhan.credentials import DhanCredentials
from openalgo_proxy.brokers.dhan.instruments import Key, load_master, wire_key
from openalgo_proxy.brokers.index import InstrumentIndex
from openalgo_proxy.brokers.master import default_cache_dir
from openalgo_proxy.brokers.pooled import PooledAdapter
from openalgo_proxy.brokers.upstream import Settings
from openalgo_proxy.model import Instrument, Mode

MAX_CONNECTIONS = 5
MAX_INSTRUMENTS_PER_CONNECTION = 5000


class DhanAdapter(PooledAdapter[Key, RequestCode]):
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
        super().__init__(options, per_connection=max_instruments_per_connection)
        self._given_credentials = credentials
        self.credentials: DhanCredentials | None = None
        self.ws_url = options.ws_url or WS_URL
        self._backoff = (backoff_base, backoff_cap, backoff_long)
        self._settings = Settings(
            stall_timeout=options.stall_timeout,
            ping_interval=ping_interval,
            open_timeout=open_timeout,
            stable_after=stable_after,
        )
        self._rng = rng or random.Random()
        self._oi: dict[Key, int] = {}
        self._prev_close: dict[Key, float] = {}

    async def prepare(self) -> None:
        self.credentials = self._given_credentials or DhanCredentials.from_env()

    async def load_index(self) -> InstrumentIndex[Key]:
        cache_dir = self.options.cache_dir
        if cache_dir is None and self.options.instruments is None:
            cache_dir = default_cache_dir()  # the production master (tens of MB) is cached for the day
        return await load_master(self.options.instruments, cache_dir)

    def wire_key(self, instrument: Instrument) -> Key:
        return wire_key(instrument)

    def upstream_mode(self, instrument: Instrument, mode: Mode) -> RequestCode:
        return SUBSCRIBE_CODE[mode]

    def open_connection(self, slot: int) -> DhanConnection:
        assert self.credentials is not None, "start() first"
        base, cap, long_delay = self._backoff
        return DhanConnection(
            slot,
            self.ws_url,
            self.credentials,
            self._packet,
            self._settings,
            Backoff(base, cap, long_delay, rng=self._rng),
        )

    def connections(self) -> list[DhanConnection]:
        return [c for c in self.pool.slots if isinstance(c, DhanConnection)]

    async def set_wanted(self, wanted: Mapping[Instrument, Mode]) -> None:
        await super().set_wanted(wanted)
        keep = {wire_key(instrument) for instrument in wanted}
        for table in (self._oi, self._prev_close):
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
        elif kind is OiPacket:
            assert isinstance(packet, OiPacket)
            self._oi[key] = packet.oi
        elif kind is PrevClosePacket:
            assert isinstance(packet, PrevClosePacket)
            self._prev_close[key] = packet.prev_close
        # market status (7) carries nothing for a tick

    def status_extra(self) -> dict[str, object]:
        return {"disconnects": [reason for c in self.connections() for reason in c.disconnects]}


def create(options: FeedOptions) -> BrokerAdapter:
    """Registry entry point: credentials from the environment (read in start())."""
    return DhanAdapter(options)
