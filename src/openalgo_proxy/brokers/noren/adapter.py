"""The Noren adapter: one account of Shoonya, Flattrade, Zebu, TradeSmart, Definedge or AliceBlue.

The family differs only in URL, login dialect, masters and variable names (members.py); one class
serves all six. The feed hands over instrument -> richest wanted mode; each instrument is subscribed
once upstream: LTP and Quote as touchline (`t`), Depth as depth (`d`, whose messages carry every
touchline field too). The first connection opens at start and stays open: it proves the token at
once, carries the order updates, and makes `status()` truthful for readiness.

Caps are not documented by the brokers: keys per request message and subscriptions per connection
are options of the broker's section (settings.py), connections 1 (or `--max-connections` up to 3).
The section's `exchanges` (`FeedOptions.exchanges` wins) limits what this account serves when
several feeds share one proxy.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping

from openalgo_proxy.brokers.base import BrokerAdapter, FeedOptions
from openalgo_proxy.brokers.index import InstrumentIndex
from openalgo_proxy.brokers.master import default_cache_dir
from openalgo_proxy.brokers.noren import codec
from openalgo_proxy.brokers.noren.codec import InstrumentState, Key
from openalgo_proxy.brokers.noren.connection import NorenConnection
from openalgo_proxy.brokers.noren.credentials import NorenCredentials
from openalgo_proxy.brokers.noren.instruments import NorenIndex, load_master
from openalgo_proxy.brokers.noren.members import Member, member
from openalgo_proxy.brokers.noren.orders import order_update
from openalgo_proxy.brokers.noren.settings import BY_NAME
from openalgo_proxy.brokers.pooled import PooledAdapter
from openalgo_proxy.brokers.upstream import Settings
from openalgo_proxy.model import Instrument, Mode

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 3
INDEX_WIRE = {"NSE_INDEX": "NSE", "BSE_INDEX": "BSE"}


class NorenAdapter(PooledAdapter[Key, str]):
    max_connections_cap = MAX_CONNECTIONS
    per_connection_cap = 1_000_000  # the configured value is the cap (the brokers document none)
    keep_open = 1
    retry_rejected = True

    def __init__(
        self,
        options: FeedOptions,
        broker: Member | str,
        credentials: NorenCredentials | None = None,
        *,
        keys_per_message: int | None = None,
        max_subscriptions: int | None = None,
        backoff_base: float = 1.0,
        stable_after: float = 10.0,
        heartbeat_interval: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        self.member = broker if isinstance(broker, Member) else member(broker)
        self.name = self.member.name
        self.section = options.section(BY_NAME[self.name])
        self.keys_per_message = keys_per_message or self.section.keys_per_message
        per = max_subscriptions or self.section.max_subscriptions
        if not options.max_connections:
            options = _with_connections(options, 1)
        super().__init__(
            options, per_connection=per, backoff=(backoff_base, options.backoff_cap, options.backoff_cap), rng=rng
        )
        self._exchange_filter = options.exchanges or self.section.exchanges
        self._given_credentials = credentials
        self.credentials: NorenCredentials | None = None
        self.ws_url = options.ws_url or self.member.ws_url
        self._settings = Settings(
            stall_timeout=options.stall_timeout, heartbeat_interval=heartbeat_interval, stable_after=stable_after
        )
        self.orders_forwarded = 0

    async def prepare(self) -> None:
        self.credentials = self._given_credentials or NorenCredentials.from_env(self.member, settings=self.section)
        self.credentials.token()  # an unreadable token file fails the start, in one line

    async def load_index(self) -> InstrumentIndex[Key]:
        source = self.options.instruments or self.member.master_url
        cache_dir = self.options.cache_dir
        if cache_dir is None and self.options.instruments is None:
            cache_dir = default_cache_dir()
        index = await load_master(source, cache_dir, prefix=f"noren-{self.member.name}")
        if self._exchange_filter:
            index.restrict(self._exchange_filter)
        return index

    def wire_key(self, instrument: Instrument) -> Key:
        return INDEX_WIRE.get(instrument.exchange, instrument.exchange), instrument.token

    def upstream_mode(self, instrument: Instrument, mode: Mode) -> str:
        return codec.DEPTH if mode >= Mode.DEPTH else codec.TOUCHLINE

    def open_connection(self, slot: int) -> NorenConnection:
        assert self.credentials is not None, "start() first"
        return NorenConnection(
            f"{self.name}#{slot + 1}",
            self.member,
            self.ws_url,
            self.credentials,
            self._on_state,
            self._on_order_message if slot == 0 else None,
            self._settings,
            self.new_backoff(),
            self.keys_per_message,
        )

    def connections(self) -> list[NorenConnection]:
        return [c for c in self.pool.slots if isinstance(c, NorenConnection)]

    def _on_state(self, key: Key, state: InstrumentState, received_ms: int) -> None:
        instrument = self.instrument_of(key)
        if instrument is not None:
            self.on_tick(codec.to_tick(state, instrument.symbol, instrument.exchange, received_ms))

    def _on_order_message(self, message: Mapping[str, object]) -> None:
        index = self.index
        lookup = index.trading_symbols.get if isinstance(index, NorenIndex) else None
        event = order_update(message, self.name, (lambda e, t: lookup((e, t))) if lookup is not None else None)
        self.orders_forwarded += 1
        self.on_order(event)

    def status_extra(self) -> dict[str, object]:
        conns = self.connections()
        return {
            "member": self.member.name,
            "dialect": self.member.dialect,
            "login_refusals": sum(c.login_refusals for c in conns),
            "orders": self.orders_forwarded,
            "orphan_updates": sum(c.merge.orphan_updates for c in conns),
        }


def _with_connections(options: FeedOptions, count: int) -> FeedOptions:
    import dataclasses

    return dataclasses.replace(options, max_connections=count)


class MemberFactory:
    """The registry's entry for one member: `create(options)` builds its adapter."""

    def __init__(self, name: str) -> None:
        self.name = name

    def create(self, options: FeedOptions) -> BrokerAdapter:
        return NorenAdapter(options, self.name)


shoonya = MemberFactory("shoonya")
flattrade = MemberFactory("flattrade")
zebu = MemberFactory("zebu")
tradesmart = MemberFactory("tradesmart")
definedge = MemberFactory("definedge")
aliceblue = MemberFactory("aliceblue")
