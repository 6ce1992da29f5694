"""The Upstox broker adapter: one market-data connection per user, with caps per subscription mode.

The feed hands over instrument -> richest wanted mode; each instrument is subscribed upstream once,
in the Upstox mode that carries it (LTP -> `ltpc`, Quote and Depth -> `full`, five levels), and a
30-level book wanted through `set_wanted_depth` moves the instrument to `full_d30` (Upstox Plus
accounts, `UPSTOX_FULL_D30=1`). A mode change is one `change_mode` request. Upstox allows one
connection per user and caps subscriptions per mode (LTPC 5000, Full 2000, Full D30 50 when one mode
is in use; LTPC 2000, Full 1500 when modes mix): a subscription past a cap is refused with
LIMIT_EXCEEDED, and one already placed is never pushed out by a newcomer. Instruments are keyed by
Upstox's instrument key (`NSE_EQ|<ISIN>`, `NSE_FO|<token>`, `NSE_INDEX|Nifty 50`). Order updates
come from the portfolio stream, opened when the feed asks for order events.
"""

from __future__ import annotations

import functools
import random
from collections import Counter
from collections.abc import Mapping
from urllib.parse import urlsplit

import msgspec

from openalgo_proxy.brokers.base import BrokerAdapter, FeedOptions
from openalgo_proxy.brokers.index import InstrumentIndex
from openalgo_proxy.brokers.order_stream import OrderStreamAdapter
from openalgo_proxy.brokers.upstox import codec
from openalgo_proxy.brokers.upstox.codec import D30_LEVELS, FULL, FULL_D30, UPSTREAM_MODE, caps_fit
from openalgo_proxy.brokers.upstox.connection import FEED_PATH, WS_URL, UpstoxConnection
from openalgo_proxy.brokers.upstox.credentials import UpstoxCredentials
from openalgo_proxy.brokers.upstox.instruments import Key, load_master
from openalgo_proxy.brokers.upstox.orders import PORTFOLIO_PATH, PORTFOLIO_URL, UpstoxOrderStream, order_update
from openalgo_proxy.brokers.upstox.settings import UpstoxSettings
from openalgo_proxy.brokers.upstream import Settings
from openalgo_proxy.errors import ErrorCode
from openalgo_proxy.model import DEPTH_LEVELS, Instrument, Mode, Tick

MAX_CONNECTIONS = 1
MAX_SUBSCRIPTIONS = max(codec.INDIVIDUAL_CAPS.values())
INDEX_EXCHANGES = frozenset({"NSE_INDEX", "BSE_INDEX"})
DEEP_BOOK_LEVELS = (DEPTH_LEVELS, D30_LEVELS)


def _origin_url(ws_url: str, path: str) -> str:
    """`path` on the origin of `ws_url` (the simulator serves every endpoint on one port)."""
    parts = urlsplit(ws_url)
    return f"{parts.scheme}://{parts.netloc}{path}"


class UpstoxAdapter(OrderStreamAdapter[Key, str]):
    name = "upstox"
    max_connections_cap = MAX_CONNECTIONS
    per_connection_cap = MAX_SUBSCRIPTIONS

    def __init__(
        self,
        options: FeedOptions,
        credentials: UpstoxCredentials | None = None,
        *,
        backoff_base: float = 1.0,
        backoff_cap: float = 60.0,
        backoff_long: float = 60.0,
        ping_interval: float | None = 20.0,
        open_timeout: float = 10.0,
        stable_after: float = 10.0,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(options, backoff=(backoff_base, backoff_cap, backoff_long), rng=rng)
        self._given_credentials = credentials
        self.credentials: UpstoxCredentials | None = None
        self.ws_url = options.ws_url or WS_URL
        self.portfolio_url = _origin_url(options.ws_url, PORTFOLIO_PATH) if options.ws_url else PORTFOLIO_URL
        self._settings = Settings(
            stall_timeout=options.stall_timeout,
            ping_interval=ping_interval,
            open_timeout=open_timeout,
            stable_after=stable_after,
        )
        self._modes: dict[Instrument, Mode] = {}  # what the feed wants (instrument -> richest mode)
        self._deep: dict[Key, Instrument] = {}  # instruments wanted with a 30-level book
        self._deep_names: set[tuple[str, str]] = set()  # (exchange, symbol) of those placed in full_d30
        self.placed: dict[Key, str] = {}  # key -> Upstox mode, within the caps
        self._refused: dict[Key, str] = {}  # key -> the mode refused for the caps (reported once)

    # -- toolkit hooks -----------------------------------------------------------------------------

    async def prepare(self) -> None:
        self.credentials = self._given_credentials or UpstoxCredentials.from_env(
            settings=self.options.section(UpstoxSettings)
        )

    async def load_index(self) -> InstrumentIndex[Key]:
        return await load_master(self.options.instruments, self.options.cache_dir)

    def wire_key(self, instrument: Instrument) -> Key:
        key = self._index().key_of(instrument)
        if key is None:
            raise KeyError(f"{instrument.exchange}:{instrument.symbol} is not in the Upstox master")
        return key

    def upstream_mode(self, instrument: Instrument, mode: Mode) -> str:
        return UPSTREAM_MODE[mode]

    def open_connection(self, slot: int) -> UpstoxConnection:
        assert self.credentials is not None, "start() first"
        return UpstoxConnection(
            self.ws_url,
            self.credentials,
            self.instrument_of,
            self._tick,
            self._settings,
            self.new_backoff(),
        )

    def connection(self) -> UpstoxConnection | None:
        conn = self.pool.slots[0]
        return conn if isinstance(conn, UpstoxConnection) else None

    # -- subscriptions -----------------------------------------------------------------------------

    async def set_wanted(self, wanted: Mapping[Instrument, Mode]) -> None:
        self._modes = {instrument: Mode(mode) for instrument, mode in wanted.items()}
        await self._sync()

    def depth_levels(self, instrument: Instrument) -> tuple[int, ...]:
        allowed = self.credentials is not None and self.credentials.full_d30
        return DEEP_BOOK_LEVELS if allowed and instrument.exchange not in INDEX_EXCHANGES else (DEPTH_LEVELS,)

    async def set_wanted_depth(self, wanted: Mapping[Instrument, int]) -> None:
        deep: dict[Key, Instrument] = {}
        for instrument, levels in wanted.items():
            if levels == DEPTH_LEVELS or levels not in self.depth_levels(instrument):
                plan = "" if self.credentials is not None and self.credentials.full_d30 else " (needs Upstox Plus)"
                message = f"Upstox has no {levels}-level book for {instrument.exchange}{plan}"
                self.reject(instrument, Mode.DEPTH, ErrorCode.INVALID_DEPTH, message, levels)
                continue
            deep[self.wire_key(instrument)] = instrument
        self._deep = deep
        await self._sync()

    async def _sync(self) -> None:
        """Place what is wanted within the caps, keep what is placed, refuse the rest once."""
        desired: dict[Key, tuple[Instrument, Mode]] = {}
        modes: dict[Key, str] = {}
        for instrument, mode in self._modes.items():
            key = self.wire_key(instrument)
            desired[key] = (instrument, mode)
            modes[key] = FULL_D30 if key in self._deep else UPSTREAM_MODE[mode]
        self._wanted = desired
        placed = {key: mode for key, mode in self.placed.items() if modes.get(key) == mode}
        counts: Counter[str] = Counter(placed.values())
        refused: dict[Key, str] = {}
        shallow: list[Key] = []  # 30-level books refused: streamed with five levels
        for key, upstox_mode in modes.items():
            if key in placed:
                continue
            for attempt in (upstox_mode, FULL) if upstox_mode == FULL_D30 else (upstox_mode,):
                counts[attempt] += 1
                if caps_fit(counts):
                    placed[key] = attempt
                    break
                counts[attempt] -= 1
            if placed.get(key) != upstox_mode:
                refused[key] = upstox_mode
                if key in placed:
                    shallow.append(key)
        self.placed = placed
        self._deep_names = {(desired[k][0].exchange, desired[k][0].symbol) for k, m in placed.items() if m == FULL_D30}
        for key in await self.pool.assign(placed):  # within the mode caps, never past the pool's; kept safe
            refused[key] = placed.pop(key)
        newly = {key: mode for key, mode in refused.items() if self._refused.get(key) != mode}
        self._refused = refused
        limits = self.caps_message()
        for key in newly:
            instrument, mode = desired[key]
            if key in shallow:
                self.reject(instrument, Mode.DEPTH, ErrorCode.LIMIT_EXCEEDED, limits, D30_LEVELS)
            else:
                self.reject(instrument, mode, ErrorCode.LIMIT_EXCEEDED, limits)

    @staticmethod
    def caps_message() -> str:
        one = ", ".join(f"{m} {n}" for m, n in codec.INDIVIDUAL_CAPS.items())
        mixed = ", ".join(f"{m} {n}" for m, n in codec.COMBINED_CAPS.items())
        return f"Upstox allows 1 connection with {one} subscriptions (with modes mixed: {mixed})"

    def _tick(self, tick: Tick) -> None:
        bids = tick.bids
        asks = tick.asks
        if len(bids) > DEPTH_LEVELS or len(asks) > DEPTH_LEVELS:
            if (tick.exchange, tick.symbol) in self._deep_names:
                self.on_tick(msgspec.structs.replace(tick, depth=D30_LEVELS))
            tick = msgspec.structs.replace(tick, bids=bids[:DEPTH_LEVELS], asks=asks[:DEPTH_LEVELS])
        self.on_tick(tick)

    # -- order updates -----------------------------------------------------------------------------

    def open_order_stream(self) -> UpstoxOrderStream:
        assert self.credentials is not None, "start() first"
        return UpstoxOrderStream(
            "upstox-orders",
            self.portfolio_url,
            self.credentials,
            functools.partial(order_update, broker=self.name, instrument_of=self.indexed),
            self.emit_order,
            backoff=self.new_backoff(),
        )

    def status_extra(self) -> dict[str, object]:
        conn = self.connection()
        return {
            "modes": dict(Counter(self.placed.values())),
            "segment_status": dict(conn.segment_status) if conn is not None else {},
            "snapshots": conn.snapshots if conn is not None else 0,
            "order_updates": self.order_events(),
        }


def create(options: FeedOptions) -> BrokerAdapter:
    """Registry entry point: credentials from the environment (read in start())."""
    return UpstoxAdapter(options)


__all__ = ["FEED_PATH", "UpstoxAdapter", "create"]
