"""The Angel One SmartAPI broker adapter: a pool of up to 3 connections x 1000 (token, mode) pairs.

The feed hands over instrument -> richest wanted mode; each token is subscribed upstream once, in
the Angel mode that carries that richest mode (Depth -> SnapQuote), because the feed derives the
lower modes from a richer tick. Angel's Quote packet has no open interest, so a derivative wanted in
Quote is subscribed in SnapQuote: its Quote stream then carries the real OI (cash and indices have
none, so they stay on Quote). Mode 4 (Depth-20, 50-token cap) is never subscribed: the client
protocol carries five levels, which SnapQuote provides. Connections open on their first token and
close on their last; past the cap a pair is answered LIMIT_EXCEEDED, and so is a pair the server
refuses with E1002 (E1001: BROKER_UNAVAILABLE).

Deeper books: a 20-level book of an NSE cash instrument (`set_wanted_depth`) is mode 4 (Depth-20),
up to 50 tokens, on a connection of its own; its packets carry only the book, so its ticks take the
trade fields of the instrument's last SnapQuote (which the feed subscribes beside it).
"""

from __future__ import annotations

import functools
import random
from collections.abc import Mapping
from typing import Any

import msgspec

from openalgo_proxy.brokers.angel.codec import (
    DEPTH_20_LEVELS,
    UPSTREAM_MODE,
    AngelPacket,
    Depth20Packet,
    ErrorReply,
    SubscriptionMode,
    depth_levels,
    price_divisor,
    to_tick,
)
from openalgo_proxy.brokers.angel.connection import WS_URL, AngelConnection, ErrorSink, PairKey, SmartStreamConnection
from openalgo_proxy.brokers.angel.instruments import InstrumentMaster, load_master
from openalgo_proxy.brokers.angel.login import AngelCredentials, AngelSession
from openalgo_proxy.brokers.angel.orders import ORDER_PATH, ORDER_WS_URL, AngelOrderStream, order_update
from openalgo_proxy.brokers.angel.provided import ProvidedAngelSession
from openalgo_proxy.brokers.angel.settings import AngelSettings
from openalgo_proxy.brokers.base import Backoff, BrokerAdapter, FeedOptions
from openalgo_proxy.brokers.credentials import CredentialProvider
from openalgo_proxy.brokers.order_stream import OrderStreamAdapter
from openalgo_proxy.brokers.pool import ConnectionPool
from openalgo_proxy.brokers.upstream import Settings
from openalgo_proxy.errors import ErrorCode
from openalgo_proxy.model import DEPTH_LEVELS, Instrument, Mode, Tick

MAX_CONNECTIONS = 3
MAX_PAIRS_PER_CONNECTION = 1000
MAX_DEPTH_20_TOKENS = 50
#: exchanges whose instruments carry open interest (derivatives)
WITH_OI = frozenset({"NFO", "BFO", "MCX", "CDS", "NCDEX"})


class AngelAdapter(OrderStreamAdapter[PairKey, SubscriptionMode]):
    """`timings` are `upstream.Settings` fields (heartbeat_interval, ping_interval, open_timeout,
    stable_after); the backoff comes from the options unless given here."""

    name = "angel"
    max_connections_cap = MAX_CONNECTIONS
    per_connection_cap = MAX_PAIRS_PER_CONNECTION

    def __init__(
        self,
        options: FeedOptions,
        credentials: AngelCredentials | None = None,
        *,
        max_pairs_per_connection: int | None = None,
        backoff_base: float | None = None,
        backoff_cap: float | None = None,
        backoff_long: float | None = None,
        rng: random.Random | None = None,
        credential_provider: CredentialProvider | None = None,
        **timings: Any,
    ) -> None:
        base = options.backoff_base if backoff_base is None else backoff_base
        cap = options.backoff_cap if backoff_cap is None else backoff_cap
        long_delay = cap if backoff_long is None else backoff_long
        super().__init__(options, per_connection=max_pairs_per_connection, backoff=(base, cap, long_delay), rng=rng)
        self._credentials = credentials
        self._provider = credential_provider  # credentials someone else keeps (no login; see credentials.py)
        self.ws_url = options.ws_url or WS_URL
        self._settings = Settings(stall_timeout=options.stall_timeout, **timings)
        self.session: AngelSession | None = None
        # 20-level books: one Depth-20 connection (mode 4, 50 tokens), the instruments wanted on it and
        # the last standard tick of each (a Depth-20 packet carries no trade fields)
        self.depth_pool: ConnectionPool[PairKey, SubscriptionMode] = ConnectionPool(
            functools.partial(self.open_connection, depth=True), max_connections=1, per_connection=MAX_DEPTH_20_TOKENS
        )
        self._deep: dict[PairKey, Instrument] = {}
        self._last_standard: dict[PairKey, Tick] = {}

    async def prepare(self) -> None:
        if self._provider is not None:
            self.session = ProvidedAngelSession(self._provider, self.options.api_url)
        else:
            self.session = AngelSession(
                self._credentials or AngelCredentials.from_env(settings=self.options.section(AngelSettings)),
                self.options.api_url,
            )

    def open_order_stream(self) -> AngelOrderStream:
        """The order-status socket: a local or test server serves it beside the market data."""
        assert self.session is not None, "start() first"
        url = ORDER_WS_URL
        if self.options.ws_url:
            url = self.options.ws_url.split("://", 1)[0] + "://" + self.options.ws_url.split("/")[2] + ORDER_PATH
        return AngelOrderStream(
            "angel-orders",
            url,
            self.session,
            functools.partial(order_update, by_token=lambda etype, token: self.indexed((etype, token))),
            self.emit_order,
            self._settings,
            self.new_backoff(),
        )

    async def load_index(self) -> InstrumentMaster:
        return await load_master(self.options.instruments, self.options.cache_dir)

    def wire_key(self, instrument: Instrument) -> PairKey:
        return InstrumentMaster.key(instrument)

    def upstream_mode(self, instrument: Instrument, mode: Mode) -> SubscriptionMode:
        if mode == Mode.QUOTE and instrument.exchange in WITH_OI:
            return SubscriptionMode.SNAP_QUOTE  # Quote's OI comes from SnapQuote
        return UPSTREAM_MODE[mode]

    def open_connection(self, slot: int, depth: bool = False) -> SmartStreamConnection[Any]:
        """A connection of the pool, or with `depth` of the Depth-20 pool."""
        conn = self.new_connection(slot, functools.partial(self._broker_error, depth), self.new_backoff())
        if depth:
            conn.label = f"angel-depth20[{slot}]"
        return conn

    def new_connection(self, slot: int, on_error: ErrorSink, backoff: Backoff) -> SmartStreamConnection[Any]:
        """The broker's connection with its authentication (a SmartStream-family broker overrides this)."""
        assert self.session is not None, "start() first"
        return AngelConnection(
            f"angel[{slot}]", self.ws_url, self.session, self._packet, on_error, self._settings, backoff
        )

    # -- 20-level books (mode 4) -------------------------------------------------------------------

    def depth_levels(self, instrument: Instrument) -> tuple[int, ...]:
        return (DEPTH_LEVELS, DEPTH_20_LEVELS) if instrument.exchange == "NSE" else (DEPTH_LEVELS,)

    async def set_wanted(self, wanted: Mapping[Instrument, Mode]) -> None:
        await super().set_wanted(wanted)
        keep = {InstrumentMaster.key(instrument) for instrument in wanted}
        self._last_standard = {key: tick for key, tick in self._last_standard.items() if key in keep}

    async def set_wanted_depth(self, wanted: Mapping[Instrument, int]) -> None:
        self._deep = {}
        for instrument, levels in wanted.items():
            if levels not in self.depth_levels(instrument) or levels == DEPTH_LEVELS:
                message = f"Angel has no {levels}-level book for {instrument.exchange}"
                self.reject(instrument, Mode.DEPTH, ErrorCode.INVALID_DEPTH, message, levels)
            else:
                self._deep[InstrumentMaster.key(instrument)] = instrument
        for key in await self.depth_pool.assign(dict.fromkeys(self._deep, SubscriptionMode.DEPTH_20)):
            message = f"Angel allows {MAX_DEPTH_20_TOKENS} tokens in 20-level depth"
            self.reject(self._deep[key], Mode.DEPTH, ErrorCode.LIMIT_EXCEEDED, message, DEPTH_20_LEVELS)

    def _depth_tick(self, key: PairKey, packet: Depth20Packet) -> None:
        """A wanted 20-level book, with the trade fields of the instrument's last standard tick.
        (An unsolicited Depth-20 packet takes the standard path: a tick without trade fields, which
        the feed's sanity check refuses.)"""
        instrument = self._deep[key]
        base = self._last_standard.get(key) or Tick(instrument.symbol, instrument.exchange, Mode.DEPTH, 0.0)
        div = price_divisor(packet.exchange_type)
        bids, asks = depth_levels(packet.buy, div), depth_levels(packet.sell, div)
        time = packet.exchange_timestamp
        self.on_tick(msgspec.structs.replace(base, exchange_time=time, bids=bids, asks=asks, depth=DEPTH_20_LEVELS))

    async def stop(self) -> None:
        try:
            await self.depth_pool.stop()
        finally:
            await super().stop()

    def connections(self) -> list[SmartStreamConnection[Any]]:
        return [c for c in self.pool.slots if isinstance(c, SmartStreamConnection)]

    def _broker_error(self, depth: bool, reply: ErrorReply, keys: list[PairKey]) -> None:
        """An E1002 (or E1001) answer to one of our requests: those pairs are not placed."""
        code = ErrorCode.LIMIT_EXCEEDED if reply.limit_exceeded else ErrorCode.BROKER_UNAVAILABLE
        message = f"Angel {reply.code}: {reply.message}"
        if not depth:
            self.refuse(keys, code, message)
            return
        for key in self.depth_pool.drop(keys):
            if key in self._deep:
                self.reject(self._deep[key], Mode.DEPTH, code, message, DEPTH_20_LEVELS)

    def _packet(self, packet: AngelPacket) -> None:
        key = (packet.exchange_type, packet.token)
        if type(packet) is Depth20Packet and key in self._deep:
            self._depth_tick(key, packet)
            return
        instrument = self.instrument_of(key)
        if instrument is not None:
            tick = to_tick(packet, instrument.symbol, instrument.exchange)
            self.on_tick(tick)
            if type(packet) is not Depth20Packet:
                self._last_standard[key] = tick  # the trade fields of a 20-level book's next tick

    def status_extra(self) -> dict[str, object]:
        orders = self.orders.info() if self.orders is not None else None
        return {"logins": self.session.logins if self.session else 0, "orders": orders}


def create(options: FeedOptions) -> BrokerAdapter:
    """Registry entry point: credentials from the environment (read in start())."""
    return AngelAdapter(options)
