"""The Zerodha Kite adapter: one Kite account behind the BrokerAdapter contract.

Credentials: `KITE_API_KEY` and the access token from `KITE_ACCESS_TOKEN_FILE` (a file re-read on
every refresh, so a daily login job can replace it) or `KITE_ACCESS_TOKEN`. `KITE_EXCHANGES`
(comma list of client exchanges; `FeedOptions.exchanges` wins) limits what this account serves when
several feeds share a proxy.
Pool: up to 3 connections x 3000 instruments, filled in order; past the cap each pair is answered
LIMIT_EXCEEDED through `on_reject`. The first connection opens at start and stays open (Kite sends
heartbeats with no subscriptions): it proves the credentials at once and makes `status()` truthful
for readiness; the second and third open only when needed and close when emptied.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from urllib.parse import urlencode

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
from openalgo_proxy.brokers.zerodha import instruments as kite_instruments
from openalgo_proxy.brokers.zerodha.codec import KITE_MODE, KiteMode, KitePacket, to_tick
from openalgo_proxy.brokers.zerodha.connection import KiteConnection
from openalgo_proxy.brokers.zerodha.instruments import KiteInstruments
from openalgo_proxy.errors import ConfigError, ErrorCode
from openalgo_proxy.model import Instrument, Mode

log = logging.getLogger(__name__)

DEFAULT_WS_URL = "wss://ws.kite.trade"
MAX_CONNECTIONS = 3
MAX_PER_CONNECTION = 3000

TokenProvider = Callable[[], str]


def env_token_provider() -> str:
    """The access token from KITE_ACCESS_TOKEN_FILE (re-read each call) or KITE_ACCESS_TOKEN."""
    path = os.environ.get("KITE_ACCESS_TOKEN_FILE")
    if path:
        try:
            token = Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"cannot read KITE_ACCESS_TOKEN_FILE: {exc.strerror}") from None
        if token:
            return token
        raise ConfigError("KITE_ACCESS_TOKEN_FILE is empty")
    token = os.environ.get("KITE_ACCESS_TOKEN", "").strip()
    if not token:
        raise ConfigError("set KITE_ACCESS_TOKEN or KITE_ACCESS_TOKEN_FILE for the zerodha feed")
    return token


class KiteAdapter(BrokerAdapter):
    name = "zerodha"

    def __init__(
        self,
        options: FeedOptions,
        api_key: str | None = None,
        access_token: str | TokenProvider | None = None,
        exchanges: Sequence[str] | None = None,
        per_connection: int = MAX_PER_CONNECTION,
        backoff: Callable[[], Backoff] | None = None,
        credential_provider: CredentialProvider | None = None,
    ) -> None:
        self.options = options
        self._api_key = api_key
        self._provider = credential_provider  # credentials someone else keeps (no login; see credentials.py)
        self._generation = 0
        if isinstance(access_token, str):
            fixed = access_token
            self._token_provider: TokenProvider = lambda: fixed
        else:
            self._token_provider = access_token or env_token_provider
        if exchanges is None and options.exchanges:
            exchanges = options.exchanges
        if exchanges is None and os.environ.get("KITE_EXCHANGES"):
            exchanges = [e.strip().upper() for e in os.environ["KITE_EXCHANGES"].split(",") if e.strip()]
        self._exchange_filter = tuple(exchanges) if exchanges else None
        cap = options.max_connections or MAX_CONNECTIONS
        self._max_connections = min(cap, MAX_CONNECTIONS)
        self._per_connection = min(per_connection, MAX_PER_CONNECTION)
        self._backoff_factory = backoff or Backoff
        self._access_token = ""
        self._instruments = KiteInstruments(())
        self._on_tick: TickSink | None = None
        self._on_reject: RejectSink | None = None
        self._connections: list[KiteConnection | None] = [None] * self._max_connections
        self._assigned: dict[int, int] = {}  # instrument token -> connection slot
        self._rejected: set[int] = set()
        self.unknown_packets = 0
        self._stopped = False
        self.token_refreshes = 0

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self, on_tick: TickSink, on_reject: RejectSink) -> None:
        if self._provider is not None:
            provided = self._provider.current()
            self._api_key, self._access_token, self._generation = (
                provided.api_key,
                provided.access_token,
                provided.generation,
            )
        else:
            self._api_key = self._api_key or os.environ.get("KITE_API_KEY", "").strip()
            self._access_token = self._token_provider()
        if not self._api_key:
            raise ConfigError("set KITE_API_KEY for the zerodha feed")
        self._on_tick = on_tick
        self._on_reject = on_reject
        headers = {"X-Kite-Version": "3", "Authorization": f"token {self._api_key}:{self._access_token}"}
        source = self.options.instruments or kite_instruments.DEFAULT_URL
        cache_dir = self.options.cache_dir
        if cache_dir is None and source == kite_instruments.DEFAULT_URL:
            cache_dir = str(Path.home() / ".cache" / "openalgo-proxy")
        master = await kite_instruments.load(source, cache_dir, headers=headers)
        if self._exchange_filter is not None:
            master = master.restricted(self._exchange_filter)
        self._instruments = master
        log.info("zerodha: %d instruments on %s", len(master), ", ".join(master.exchanges()))
        first = self._connections[0] = self._new_connection(0)
        first.set_wanted({})

    async def stop(self) -> None:
        self._stopped = True
        for conn in self._connections:
            if conn is not None:
                await conn.close()
        self._connections = [None] * self._max_connections

    # -- directory -----------------------------------------------------------------------------------

    def exchanges(self) -> tuple[str, ...]:
        return self._instruments.exchanges()

    def lookup(self, exchange: str, symbol: str) -> Instrument | None:
        return self._instruments.lookup(exchange, symbol)

    def directory(self) -> Mapping[str, Iterable[str]]:
        return self._instruments.directory()

    # -- subscriptions -------------------------------------------------------------------------------

    async def set_wanted(self, wanted: Mapping[Instrument, Mode]) -> None:
        desired: dict[int, KiteMode] = {}
        by_token: dict[int, tuple[Instrument, Mode]] = {}
        for instrument, mode in wanted.items():
            token = int(instrument.token)
            desired[token] = KITE_MODE[mode]
            by_token[token] = (instrument, mode)
        for token in [t for t in self._assigned if t not in desired]:
            del self._assigned[token]
        self._rejected &= desired.keys()
        load = Counter(self._assigned.values())
        rejections: list[Rejection] = []
        for token in desired:
            if token in self._assigned:
                continue
            slot = next((i for i in range(self._max_connections) if load[i] < self._per_connection), None)
            if slot is None:
                if token not in self._rejected:
                    self._rejected.add(token)
                    instrument, mode = by_token[token]
                    rejections.append(
                        Rejection(
                            instrument,
                            mode,
                            ErrorCode.LIMIT_EXCEEDED,
                            f"zerodha allows {self._max_connections} connections x {self._per_connection} instruments",
                        )
                    )
                continue
            self._rejected.discard(token)
            self._assigned[token] = slot
            load[slot] += 1
        shards: list[dict[int, KiteMode]] = [{} for _ in range(self._max_connections)]
        for token, slot in self._assigned.items():
            shards[slot][token] = desired[token]
        for slot, shard in enumerate(shards):
            conn = self._connections[slot]
            if conn is None and shard:
                conn = self._connections[slot] = self._new_connection(slot)
            if conn is not None:
                conn.set_wanted(shard)
        if self._on_reject is not None:
            for rejection in rejections:
                self._on_reject(rejection)

    def _new_connection(self, slot: int) -> KiteConnection:
        return KiteConnection(
            label=f"zerodha#{slot + 1}",
            endpoint=self._endpoint,
            refresh_credentials=self._refresh_credentials,
            on_packets=self._on_packets,
            stall_timeout=self.options.stall_timeout,
            backoff=self._backoff_factory(),
            keep_open=slot == 0,
        )

    def _endpoint(self) -> str:
        base = (self.options.ws_url or DEFAULT_WS_URL).rstrip("/")
        query = urlencode({"api_key": self._api_key, "access_token": self._access_token})
        return f"{base}?{query}"

    async def _refresh_credentials(self) -> None:
        """Re-read the access token from its source (after a 403)."""
        self.token_refreshes += 1
        if self._provider is not None:
            provided = await self._provider.refresh(self._generation)
            self._api_key, self._access_token, self._generation = (
                provided.api_key,
                provided.access_token,
                provided.generation,
            )
            return
        token = self._token_provider()
        if token == self._access_token:
            log.warning("zerodha: access token rejected and unchanged at its source; waiting for a new one")
        else:
            log.info("zerodha: access token re-read from its source")
        self._access_token = token

    def _on_packets(self, packets: list[KitePacket], received_ms: int) -> None:
        sink = self._on_tick
        if sink is None:
            return
        for packet in packets:
            instrument = self._instruments.by_token(packet.instrument_token)
            if instrument is None:
                self.unknown_packets += 1
                continue
            sink(to_tick(packet, instrument.symbol, instrument.exchange, received_ms))

    # -- health ----------------------------------------------------------------------------------------

    def status(self) -> AdapterStatus:
        conns = [c for c in self._connections if c is not None]
        active = [c for c in conns if c.keep_open or c.wanted]
        connected = sum(1 for c in conns if c.state is ConnectionState.CONNECTED)
        if self._stopped:
            state = ConnectionState.CLOSED
        elif active and all(c.state is ConnectionState.CONNECTED for c in active):
            state = ConnectionState.CONNECTED
        elif any(c.state is ConnectionState.BACKING_OFF for c in active):
            state = ConnectionState.BACKING_OFF
        elif any(c.state is ConnectionState.CONNECTING for c in active):
            state = ConnectionState.CONNECTING
        else:
            state = ConnectionState.DISCONNECTED
        return AdapterStatus(
            state=state,
            connections=connected,
            subscriptions=len(self._assigned),
            reconnects=sum(max(c.connects - 1, 0) for c in conns),
            last_message_monotonic=max((c.last_message_monotonic for c in conns), default=0.0),
            decode_errors=sum(c.decode_errors for c in conns),
            extra={
                "rejected": len(self._rejected),
                "stalls": sum(c.stalls for c in conns),
                "heartbeats": sum(c.heartbeats for c in conns),
                "token_refreshes": self.token_refreshes,
                "unknown_packets": self.unknown_packets,
            },
        )


def create(options: FeedOptions) -> BrokerAdapter:
    return KiteAdapter(options)
