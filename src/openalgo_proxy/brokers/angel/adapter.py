"""The Angel One SmartAPI broker adapter: a pool of up to 3 connections x 1000 (token, mode) pairs.

The feed hands over instrument -> richest wanted mode; each token is subscribed upstream once, in
the Angel mode that carries that richest mode (Depth -> SnapQuote), because the feed derives the
lower modes from a richer tick. Tokens stay on the connection they were placed on; new tokens fill
the first connection with room; a connection is opened on its first token and closed on its last.
Past the cap the pair is reported as LIMIT_EXCEEDED. Mode 4 (Depth-20, 50-token cap) is never
subscribed: the client protocol carries five levels, which SnapQuote provides.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable, Mapping

from openalgo_proxy.brokers.angel.codec import UPSTREAM_MODE, AngelPacket, ErrorReply, SubscriptionMode, to_tick
from openalgo_proxy.brokers.angel.connection import WS_URL, AngelConnection, PairKey
from openalgo_proxy.brokers.angel.instruments import InstrumentMaster, default_cache_dir, load_master
from openalgo_proxy.brokers.angel.login import AngelCredentials, AngelSession
from openalgo_proxy.brokers.angel.provided import ProvidedAngelSession
from openalgo_proxy.brokers.base import (
    AdapterStatus,
    Backoff,
    BrokerAdapter,
    ConnectionState,
    FeedOptions,
    Rejection,
    RejectSink,
    TickSink,
)
from openalgo_proxy.brokers.credentials import CredentialProvider
from openalgo_proxy.errors import ErrorCode
from openalgo_proxy.model import Instrument, Mode

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 3
MAX_PAIRS_PER_CONNECTION = 1000


def _ignore_tick(_: object) -> None:
    return None


class AngelAdapter(BrokerAdapter):
    name = "angel"

    def __init__(
        self,
        options: FeedOptions,
        credentials: AngelCredentials | None = None,
        *,
        max_pairs_per_connection: int = MAX_PAIRS_PER_CONNECTION,
        backoff_base: float = 1.0,
        backoff_cap: float = 60.0,
        backoff_long: float = 60.0,
        heartbeat_interval: float = 30.0,
        ping_interval: float | None = 20.0,
        open_timeout: float = 10.0,
        stable_after: float = 10.0,
        rng: random.Random | None = None,
        credential_provider: CredentialProvider | None = None,
    ) -> None:
        self.options = options
        self._credentials = credentials
        self._provider = credential_provider  # credentials someone else keeps (no login; see credentials.py)
        self.max_connections = min(options.max_connections or MAX_CONNECTIONS, MAX_CONNECTIONS)
        self.max_pairs = max_pairs_per_connection
        self.ws_url = options.ws_url or WS_URL
        self._backoff = (backoff_base, backoff_cap, backoff_long)
        self._heartbeat_interval = heartbeat_interval
        self._ping_interval = ping_interval
        self._open_timeout = open_timeout
        self._stable_after = stable_after
        self._rng = rng or random.Random()
        self.session: AngelSession | None = None
        self.master: InstrumentMaster | None = None
        self._on_tick: TickSink = _ignore_tick
        self._on_reject: RejectSink = _ignore_tick
        self._connections: list[AngelConnection | None] = [None] * self.max_connections
        self._assigned: dict[PairKey, int] = {}  # pair key -> connection slot
        self._instruments: dict[PairKey, Instrument] = {}
        self._wanted: dict[PairKey, tuple[Instrument, Mode]] = {}
        self._rejected: set[PairKey] = set()
        self._stopped = False
        self.unknown_tokens = 0
        self._reconnects_closed = 0
        self._decode_errors_closed = 0

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, on_tick: TickSink, on_reject: RejectSink) -> None:
        if self._provider is not None:
            self.session = ProvidedAngelSession(self._provider, self.options.api_url)
        else:
            self.session = AngelSession(self._credentials or AngelCredentials.from_env(), self.options.api_url)
        cache_dir = self.options.cache_dir
        if cache_dir is None and self.options.instruments is None:
            cache_dir = default_cache_dir()  # the production master (tens of MB) is cached for the day
        self.master = await load_master(self.options.instruments, cache_dir)
        self._on_tick = on_tick
        self._on_reject = on_reject
        log.info("angel: ready with %d instruments; connections open on first subscription", len(self.master))

    async def stop(self) -> None:
        self._stopped = True
        for slot, conn in enumerate(self._connections):
            if conn is not None:
                await self._close_slot(slot)

    # -- instruments ------------------------------------------------------------------------

    def _master(self) -> InstrumentMaster:
        if self.master is None:
            raise RuntimeError("AngelAdapter.start() has not completed")
        return self.master

    def _serves(self, exchange: str) -> bool:
        """FeedOptions.exchanges limits this account to part of its exchanges (several feeds, one proxy)."""
        only = self.options.exchanges
        return not only or exchange in only

    def exchanges(self) -> tuple[str, ...]:
        return tuple(e for e in self._master().exchanges() if self._serves(e))

    def lookup(self, exchange: str, symbol: str) -> Instrument | None:
        return self._master().lookup(exchange, symbol) if self._serves(exchange) else None

    def directory(self) -> Mapping[str, Iterable[str]]:
        return {e: symbols for e, symbols in self._master().directory().items() if self._serves(e)}

    # -- subscriptions ----------------------------------------------------------------------

    async def set_wanted(self, wanted: Mapping[Instrument, Mode]) -> None:
        if self._stopped:
            return
        desired: dict[PairKey, tuple[Instrument, Mode]] = {}
        for instrument, mode in wanted.items():
            desired[InstrumentMaster.key(instrument)] = (instrument, Mode(mode))
        self._wanted = desired
        self._rejected &= desired.keys()
        for key in [k for k in self._assigned if k not in desired]:
            del self._assigned[key]
            self._instruments.pop(key, None)
        counts = [0] * self.max_connections
        for slot in self._assigned.values():
            counts[slot] += 1
        for key, (instrument, mode) in desired.items():
            if key in self._assigned or key in self._rejected:
                continue  # a rejected pair stays rejected until the feed stops wanting it
            free = [i for i, n in enumerate(counts) if n < self.max_pairs]
            if not free:
                self._rejected.add(key)
                self._reject(instrument, mode, "upstream subscription limit reached")
                continue
            self._assigned[key] = free[0]
            self._instruments[key] = instrument
            counts[free[0]] += 1
        await self._apply()

    async def _apply(self) -> None:
        per_slot: list[dict[PairKey, SubscriptionMode]] = [{} for _ in range(self.max_connections)]
        for key, slot in self._assigned.items():
            per_slot[slot][key] = UPSTREAM_MODE[self._wanted[key][1]]
        for slot, pairs in enumerate(per_slot):
            conn = self._connections[slot]
            if pairs:
                if conn is None:
                    conn = self._open_slot(slot)
                conn.set_wanted(pairs)
            elif conn is not None:
                await self._close_slot(slot)

    def _open_slot(self, slot: int) -> AngelConnection:
        assert self.session is not None, "start() first"
        base, cap, long_delay = self._backoff
        conn = AngelConnection(
            slot,
            self.ws_url,
            self.session,
            self._packet,
            self._broker_error,
            stall_timeout=self.options.stall_timeout,
            heartbeat_interval=self._heartbeat_interval,
            ping_interval=self._ping_interval,
            open_timeout=self._open_timeout,
            backoff=Backoff(base, cap, long_delay, rng=self._rng),
            stable_after=self._stable_after,
        )
        self._connections[slot] = conn
        conn.start()
        return conn

    async def _close_slot(self, slot: int) -> None:
        conn = self._connections[slot]
        self._connections[slot] = None
        if conn is not None:
            self._reconnects_closed += conn.reconnects
            self._decode_errors_closed += conn.decode_errors
            await conn.stop()

    def _reject(
        self, instrument: Instrument, mode: Mode, message: str, code: ErrorCode = ErrorCode.LIMIT_EXCEEDED
    ) -> None:
        log.warning("angel: %s %s mode %d rejected: %s", instrument.exchange, instrument.symbol, mode, message)
        self._on_reject(Rejection(instrument, mode, code, message))

    def _broker_error(self, reply: ErrorReply, keys: list[PairKey]) -> None:
        """An E1002 (or E1001) answer to one of our requests: those pairs are not placed."""
        for key in keys:
            wanted = self._wanted.get(key)
            slot = self._assigned.pop(key, None)
            if wanted is None or slot is None:
                continue
            self._rejected.add(key)
            code = ErrorCode.LIMIT_EXCEEDED if reply.limit_exceeded else ErrorCode.BROKER_UNAVAILABLE
            self._reject(wanted[0], wanted[1], f"Angel {reply.code}: {reply.message}", code)
        for conn in self._connections:
            if conn is not None:
                conn.set_wanted({k: m for k, m in conn.wanted.items() if k in self._assigned})

    # -- data -------------------------------------------------------------------------------

    def _packet(self, packet: AngelPacket) -> None:
        key = (packet.exchange_type, packet.token)
        instrument = self._instruments.get(key)
        if instrument is None:
            self.unknown_tokens += 1
            return
        self._on_tick(to_tick(packet, instrument.symbol, instrument.exchange))

    # -- health -----------------------------------------------------------------------------

    def connections(self) -> list[AngelConnection]:
        return [c for c in self._connections if c is not None]

    def status(self) -> AdapterStatus:
        conns = self.connections()
        if self._stopped:
            state = ConnectionState.CLOSED
        elif not conns:
            # started and idle: connections open on the first subscription, so nothing is unhealthy
            state = ConnectionState.CONNECTED if self.master is not None else ConnectionState.DISCONNECTED
        elif all(c.state is ConnectionState.CONNECTED for c in conns):
            state = ConnectionState.CONNECTED
        elif any(c.state is ConnectionState.BACKING_OFF for c in conns):
            state = ConnectionState.BACKING_OFF
        else:
            state = ConnectionState.CONNECTING
        return AdapterStatus(
            state=state,
            connections=sum(1 for c in conns if c.state is ConnectionState.CONNECTED),
            subscriptions=sum(len(c.sent) for c in conns),
            reconnects=self._reconnects_closed + sum(c.reconnects for c in conns),
            last_message_monotonic=max((c.last_message for c in conns), default=0.0),
            decode_errors=self._decode_errors_closed + sum(c.decode_errors for c in conns),
            extra={
                "idle": not conns,
                "wanted": len(self._wanted),
                "rejected": len(self._rejected),
                "unknown_tokens": self.unknown_tokens,
                "logins": self.session.logins if self.session else 0,
                "upstream": [c.info() for c in conns],
            },
        )


def create(options: FeedOptions) -> BrokerAdapter:
    """Registry entry point: credentials from the environment (read in start())."""
    return AngelAdapter(options)
