"""The mStock (Mirae Asset) Type B adapter: Angel's adapter with mStock's login, master and frames.

Credentials: `MSTOCK_API_KEY` and the day's access token from `MSTOCK_ACCESS_TOKEN_FILE` (re-read
after a refusal) or `MSTOCK_ACCESS_TOKEN`. Instruments: mStock's OpenAPIScripMaster (Angel's JSON
layout), limited to the segments the Type B feed streams (NSE, BSE, their indices and derivatives).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from openalgo_proxy.brokers import master
from openalgo_proxy.brokers.angel.adapter import AngelAdapter
from openalgo_proxy.brokers.angel.connection import ErrorSink
from openalgo_proxy.brokers.angel.instruments import InstrumentMaster, parse_master
from openalgo_proxy.brokers.base import Backoff, BrokerAdapter, FeedOptions
from openalgo_proxy.brokers.environment import secret, token_source
from openalgo_proxy.brokers.mstock.connection import MStockConnection
from openalgo_proxy.model import DEPTH_LEVELS, Instrument

log = logging.getLogger(__name__)

WS_URL = "wss://ws.mstock.trade"
MASTER_URL = "https://api.mstock.trade/openapi/typeb/instruments/OpenAPIScripMaster"
EXCHANGES = ("NSE", "NSE_INDEX", "NFO", "BSE", "BSE_INDEX", "BFO")


class MStockAdapter(AngelAdapter):
    name = "mstock"

    def __init__(
        self,
        options: FeedOptions,
        api_key: str | None = None,
        access_token: Callable[[], str] | None = None,
        **kwargs: float,
    ) -> None:
        super().__init__(options, **kwargs)  # type: ignore[arg-type]
        self.ws_url = options.ws_url or WS_URL
        self._api_key = api_key or ""
        self._token_source = access_token or token_source("MSTOCK_ACCESS_TOKEN", "mstock")
        self._token = ""
        self.token_refreshes = 0

    async def prepare(self) -> None:
        self._api_key = self._api_key or secret("MSTOCK_API_KEY", "mstock")
        self._token = self._token_source()

    async def load_index(self) -> InstrumentMaster:
        source = self.options.instruments or MASTER_URL
        cache_dir = self.options.cache_dir or (master.default_cache_dir() if source == MASTER_URL else None)
        index = await master.load_daily(source, parse_master, prefix="mstock-scripmaster", cache_dir=cache_dir)
        index.restrict(EXCHANGES)
        return index

    def new_connection(self, slot: int, on_error: ErrorSink, backoff: Backoff) -> MStockConnection:
        return MStockConnection(
            slot,
            self.ws_url,
            lambda: (self._api_key, self._token),
            self._refresh,
            self._packet,
            on_error,
            self._settings,
            backoff,
        )

    def depth_levels(self, instrument: Instrument) -> tuple[int, ...]:
        return (DEPTH_LEVELS,)  # no Depth-20 on mStock Type B

    async def _refresh(self) -> None:
        self.token_refreshes += 1
        self._token = self._token_source()

    def status_extra(self) -> dict[str, object]:
        return {"token_refreshes": self.token_refreshes}


def create(options: FeedOptions) -> BrokerAdapter:
    return MStockAdapter(options)
