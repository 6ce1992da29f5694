"""The Zerodha Kite adapter: one Kite account behind the BrokerAdapter contract.

Credentials: `KITE_API_KEY` and the access token from `KITE_ACCESS_TOKEN_FILE` (a file re-read on
every refresh, so a daily login job can replace it) or `KITE_ACCESS_TOKEN`. `[feed.zerodha] exchanges`
(or `KITE_EXCHANGES`; `FeedOptions.exchanges` wins) limits what this account serves when several
feeds share a proxy.
Pool: up to 3 connections x 3000 instruments, filled in order; past the cap each pair is answered
LIMIT_EXCEEDED through `on_reject`. The first connection opens at start and stays open (Kite sends
heartbeats with no subscriptions): it proves the credentials at once and makes `status()` truthful
for readiness; the second and third open only when needed and close when emptied.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from urllib.parse import urlencode

from openalgo_proxy.brokers.base import Backoff, BrokerAdapter, FeedOptions
from openalgo_proxy.brokers.credentials import BrokerCredentials, CredentialProvider
from openalgo_proxy.brokers.environment import secret, token_source
from openalgo_proxy.brokers.pooled import PooledAdapter
from openalgo_proxy.brokers.upstream import Settings
from openalgo_proxy.brokers.zerodha import instruments as kite_instruments
from openalgo_proxy.brokers.zerodha.codec import KITE_MODE, KiteMode, KitePacket, OrderUpdate, to_tick
from openalgo_proxy.brokers.zerodha.connection import KITE_HEADERS, KiteConnection
from openalgo_proxy.brokers.zerodha.instruments import KiteInstruments
from openalgo_proxy.brokers.zerodha.orders import order_update
from openalgo_proxy.brokers.zerodha.settings import ZerodhaSettings
from openalgo_proxy.model import Instrument, Mode

log = logging.getLogger(__name__)

DEFAULT_WS_URL = "wss://ws.kite.trade"

TokenProvider = Callable[[], str]


#: the access token from KITE_ACCESS_TOKEN_FILE (re-read each call) or KITE_ACCESS_TOKEN
env_token_provider = token_source("KITE_ACCESS_TOKEN", "zerodha")


class KiteAdapter(PooledAdapter[int, KiteMode]):
    name = "zerodha"
    max_connections_cap = 3  # Kite allows 3 ticker connections per API key
    per_connection_cap = 3000  # and 3000 instruments on each
    keep_open = 1  # Kite sends heartbeats with nothing subscribed: the first connection proves the token
    retry_rejected = True

    def __init__(
        self,
        options: FeedOptions,
        api_key: str | None = None,
        access_token: str | TokenProvider | None = None,
        exchanges: Sequence[str] | None = None,
        per_connection: int | None = None,
        backoff: Callable[[], Backoff] | None = None,
        credential_provider: CredentialProvider | None = None,
    ) -> None:
        self._exchange_filter = tuple(exchanges or options.exchanges or options.section(ZerodhaSettings).exchanges)
        super().__init__(options, per_connection=per_connection)
        self._api_key = api_key
        if isinstance(access_token, str):
            fixed = access_token
            self._token_provider: TokenProvider = lambda: fixed
        else:
            self._token_provider = access_token or env_token_provider
        self._backoff_factory = backoff or self.new_backoff
        self._settings = Settings(stall_timeout=options.stall_timeout, close_timeout=2.0, max_size=1 << 22)
        self._access_token = ""
        self.token_refreshes = 0
        self._provider = credential_provider  # credentials someone else keeps (no login; see credentials.py)
        self._generation = 0

    def _adopt(self, provided: BrokerCredentials) -> None:
        self._api_key = provided.api_key
        self._access_token = provided.access_token
        self._generation = provided.generation

    async def prepare(self) -> None:
        if self._provider is not None:
            self._adopt(self._provider.current())
            return
        self._api_key = self._api_key or secret("KITE_API_KEY", "zerodha")
        self._access_token = self._token_provider()

    async def load_index(self) -> KiteInstruments:
        headers = {**KITE_HEADERS, "Authorization": f"token {self._api_key}:{self._access_token}"}
        index = await kite_instruments.load(self.options.instruments, self.options.cache_dir, headers=headers)
        if self._exchange_filter:
            index.restrict(self._exchange_filter)
        return index

    def wire_key(self, instrument: Instrument) -> int:
        return int(instrument.token)

    def upstream_mode(self, instrument: Instrument, mode: Mode) -> KiteMode:
        return KITE_MODE[mode]

    def open_connection(self, slot: int) -> KiteConnection:
        return KiteConnection(f"zerodha#{slot + 1}", self, self._settings, self._backoff_factory())

    def endpoint(self) -> str:
        base = (self.options.ws_url or DEFAULT_WS_URL).rstrip("/")
        query = urlencode({"api_key": self._api_key, "access_token": self._access_token})
        return f"{base}?{query}"

    async def refresh_credentials(self) -> None:
        """Re-read the access token from its source (after a 403)."""
        self.token_refreshes += 1
        if self._provider is not None:
            self._adopt(await self._provider.refresh(self._generation))
            return
        token = self._token_provider()
        if token == self._access_token:
            log.warning("zerodha: access token rejected and unchanged at its source; waiting for a new one")
        else:
            log.info("zerodha: access token re-read from its source")
        self._access_token = token

    def on_packets(self, packets: list[KitePacket], received_ms: int) -> None:
        for packet in packets:
            instrument = self.instrument_of(packet.instrument_token)
            if instrument is not None:
                self.on_tick(to_tick(packet, instrument.symbol, instrument.exchange, received_ms))

    def on_postback(self, update: OrderUpdate) -> None:
        """An order postback on the ticker: the account's order event, on the bus as `#orders|zerodha|USER`."""
        try:
            event = order_update(update.data, self._api_key or "", self._index().by_key)
        except (ValueError, OverflowError) as exc:
            log.warning("zerodha: order update skipped: %s", exc)
            return
        self.on_order(event)

    def status_extra(self) -> dict[str, object]:
        return {"token_refreshes": self.token_refreshes}


def create(options: FeedOptions) -> BrokerAdapter:
    return KiteAdapter(options)
