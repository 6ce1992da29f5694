"""The chain service: live option chains computed once, published on the bus for every proxy.

A bus participant with two sockets, like a feed. Its XPUB (bound; proxies connect their SUB to it)
learns which ``#chain|EXCHANGE|UNDERLYING|EXPIRY|STRIKES`` topics someone wants (topics.py); its SUB
(connected to the feeds) reads the instrument directories and holds, only while a chain is wanted,
the underlying's Quote topics (spot, and the future of the same expiry when one is listed) and the
Depth topic of every leg in the chain's window. Legs are reference-counted across chains, so two
chains over the same strikes cost the feed one subscription each; the last chain that leaves
releases them. Every `interval` seconds each chain that changed is recomputed (book.py) and
published whole: the ATM strike is moved first, and the window's legs with it.

Each new subscription of a chain topic (a proxy that starts wanting it) is answered with the last
chain as a snapshot frame. A chain that cannot exist (no such underlying or expiry in the directory)
is refused on ``#reject|`` + its topic, like a feed refuses a symbol.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import msgspec
import zmq

from openalgo_proxy import control, topics
from openalgo_proxy.bus import SNAPSHOT
from openalgo_proxy.bus_service import BusService
from openalgo_proxy.chain.book import ChainSpec, OptionChain
from openalgo_proxy.chain.contracts import (
    UNDERLYING_EXCHANGES,
    OptionContract,
    expiry_ms,
    parse_expiry_code,
    parse_future,
    parse_option,
)
from openalgo_proxy.errors import ControlMessageError, ErrorCode
from openalgo_proxy.model import Mode

log = logging.getLogger(__name__)

DEFAULT_RATE = 0.065  # a year, continuously compounded (roughly the Indian 91-day T-bill)
DEFAULT_INTERVAL = 0.25  # seconds: at most four updates a second per chain
FIRST_SNAPSHOT_WAIT = 2.0  # seconds a new chain waits for every leg before it is published anyway


class _Level(msgspec.Struct, gc=False):
    price: float = 0.0


class _Book(msgspec.Struct, gc=False):
    buy: list[_Level] = []
    sell: list[_Level] = []


class _TickFields(msgspec.Struct, gc=False):
    ltp: float = 0.0
    volume: int = 0
    oi: int = 0
    depth: _Book | None = None


_decode_tick = msgspec.json.Decoder(_TickFields).decode
_encode = msgspec.json.Encoder().encode


@dataclass
class _Listed:
    """What the directories list, by derivatives exchange: options by name and expiry, futures by
    name and expiry, and the cash/index symbols."""

    options: dict[tuple[str, str], dict[dt.date, list[OptionContract]]] = field(default_factory=dict)
    futures: dict[tuple[str, str, dt.date], str] = field(default_factory=dict)
    cash: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))


@dataclass
class _Stream:
    """One wanted chain topic."""

    topic: bytes
    key: topics.ChainKey
    chain: OptionChain | None = None
    seq: int = 0
    data: bytes = b""
    dirty: bool = True
    since: float = 0.0  # monotonic time the chain was built: a first snapshot waits for its legs
    held: set[bytes] = field(default_factory=set)  # bus topics this chain holds on the feeds


class ChainService(BusService):
    label = "chain"
    feed_prefixes = (topics.INSTRUMENTS_PREFIX,)

    def __init__(
        self,
        bind: str,
        feeds: Iterable[str],
        *,
        rate: float = DEFAULT_RATE,
        dividend_yields: dict[str, float] | None = None,
        interval: float = DEFAULT_INTERVAL,
        clock: Callable[[], float] = time.time,
        ctx: zmq.Context[zmq.Socket[bytes]] | None = None,
    ) -> None:
        super().__init__(bind, feeds, interval, clock, ctx)
        self.rate = rate
        self.dividend_yields = dict(dividend_yields or {})
        self.streams: dict[bytes, _Stream] = {}
        self.listed = _Listed()
        self.held: dict[bytes, int] = {}  # bus topic -> chains holding it
        self._routes: dict[bytes, list[_Stream]] = defaultdict(list)
        self.computed = 0  # chains computed (for metrics and the bench)

    # -- who wants what ---------------------------------------------------------------------------
    def on_subscription(self, subscribe: bool, topic: bytes) -> None:
        if not topic.startswith(topics.CHAIN_PREFIX):
            return
        try:
            key = topics.parse_chain_topic(topic)
        except ValueError:
            log.warning("chain service: ignoring malformed subscription %r", topic[:80])
            return
        if not subscribe:
            stream = self.streams.pop(topic, None)
            if stream is not None:
                self._hold(stream, set())
            return
        stream = self.streams.get(topic)
        if stream is None:
            stream = _Stream(topic, key, seq=self._seq_base)
            self.streams[topic] = stream
            self._build(stream)
        elif stream.data and self.publisher is not None:
            self.publisher.publish_snapshot(topic, stream.seq, stream.data)

    def _build(self, stream: _Stream) -> None:
        """Make the chain of a stream from the directory (or wait for one); refuse what cannot exist."""
        if not self.listed.options:
            return  # no directory yet: built when one arrives
        spec = self.spec_for(stream.key, int(self.clock() * 1000))
        if isinstance(spec, str):
            self._reject(stream, spec)
            return
        stream.chain = OptionChain(spec, stream.key.strikes)
        log.info(
            "chain %s %s %s, %d strikes each side: %s on %s",
            spec.exchange,
            spec.name,
            spec.expiry,
            stream.key.strikes,
            spec.model,
            spec.future[1] if spec.future is not None else spec.spot[1],
        )
        stream.since = time.monotonic()
        wanted = {topics.bus_topic(*spec.spot, Mode.QUOTE)}
        if spec.future is not None:
            wanted.add(topics.bus_topic(*spec.future, Mode.QUOTE))
        self._hold(stream, wanted)

    def _reject(self, stream: _Stream, message: str) -> None:
        self.streams.pop(stream.topic, None)
        self._hold(stream, set())
        if self.publisher is not None:
            self.publisher.publish(
                topics.reject_topic(stream.topic),
                self._seq_base,
                control.encode_reject(ErrorCode.SYMBOL_NOT_FOUND, message),
            )

    def spec_for(self, key: topics.ChainKey, now_ms: int) -> ChainSpec | str:
        """The chain a key names, or why there is none."""
        by_expiry = self.listed.options.get((key.exchange, key.underlying))
        if not by_expiry:
            return f"no options of {key.underlying} on {key.exchange}"
        live = sorted(day for day in by_expiry if expiry_ms(day) > now_ms)
        if key.expiry == topics.NEAREST_EXPIRY:
            if not live:
                return f"no live expiry of {key.underlying} on {key.exchange}"
            expiry = live[0]
        else:
            day = parse_expiry_code(key.expiry)
            if day is None or day not in by_expiry:
                listed = ", ".join(d.strftime("%d%b%y").upper() for d in live[:6])
                return f"{key.underlying} has no {key.expiry} expiry on {key.exchange} (listed: {listed})"
            expiry = day
        index_exchange, cash_exchange = UNDERLYING_EXCHANGES.get(key.exchange, ("", ""))
        if key.underlying in self.listed.cash.get(index_exchange, set()):
            spot = (index_exchange, key.underlying)
        elif key.underlying in self.listed.cash.get(cash_exchange, set()):
            spot = (cash_exchange, key.underlying)
        else:
            return f"the underlying {key.underlying} of {key.exchange} options is not streamed"
        future_symbol = self.listed.futures.get((key.exchange, key.underlying, expiry))
        future = (key.exchange, future_symbol) if future_symbol is not None else None
        return ChainSpec(
            name=key.underlying,
            exchange=key.exchange,
            expiry=expiry,
            contracts=tuple(by_expiry[expiry]),
            spot=spot,
            future=future,
            rate=self.rate,
            dividend_yield=self.dividend_yields.get(key.underlying, 0.0),
        )

    def _hold(self, stream: _Stream, wanted: set[bytes]) -> None:
        """Make `wanted` the bus topics this stream holds; the feeds see only the first and last holder."""
        subscriber = self.subscriber
        for topic in wanted - stream.held:
            self._routes[topic].append(stream)
            count = self.held.get(topic, 0)
            self.held[topic] = count + 1
            if count == 0 and subscriber is not None:
                subscriber.subscribe(topic)
        for topic in stream.held - wanted:
            routes = self._routes[topic]
            routes.remove(stream)
            if not routes:
                del self._routes[topic]
            count = self.held[topic] - 1
            if count:
                self.held[topic] = count
            else:
                del self.held[topic]
                if subscriber is not None:
                    subscriber.unsubscribe(topic)
        stream.held = wanted

    def _retarget(self, stream: _Stream, now_ms: int) -> None:
        """Move the window with the ATM strike: hold its legs and the underlying's topics."""
        chain = stream.chain
        if chain is None or not chain.update_atm(now_ms):
            return
        spec = chain.spec
        wanted = {topics.bus_topic(*spec.spot, Mode.QUOTE)}
        if spec.future is not None:
            wanted.add(topics.bus_topic(*spec.future, Mode.QUOTE))
        wanted.update(topics.bus_topic(spec.exchange, symbol, Mode.DEPTH) for symbol in chain.window_symbols())
        self._hold(stream, wanted)

    # -- bus frames in --------------------------------------------------------------------------------
    def on_frame(self, parts: list[bytes]) -> None:
        if len(parts) != 3 and (len(parts) != 4 or parts[3] != SNAPSHOT):
            return
        topic, data = parts[0], parts[2]
        if topic.startswith(topics.INSTRUMENTS_PREFIX):
            self._on_directory(data)
            return
        streams = self._routes.get(topic)
        if not streams:
            return
        try:
            key = topics.parse_bus_topic(topic)
            tick = _decode_tick(data)
        except (ValueError, msgspec.DecodeError):
            log.warning("chain service: undecodable frame on %r", topic[:80])
            return
        if key.mode == Mode.DEPTH:
            book = tick.depth
            bid = book.buy[0].price if book is not None and book.buy else 0.0
            ask = book.sell[0].price if book is not None and book.sell else 0.0
            for stream in streams:
                if stream.chain is not None and stream.chain.set_leg(
                    key.symbol, tick.ltp, bid, ask, tick.volume, tick.oi
                ):
                    stream.dirty = True
        else:
            for stream in streams:
                if stream.chain is not None and stream.chain.set_underlying(key.exchange, key.symbol, tick.ltp):
                    stream.dirty = True

    def _on_directory(self, data: bytes) -> None:
        try:
            directory = control.decode_directory(data)
        except ControlMessageError as exc:
            log.warning("chain service: %s", exc)
            return
        for exchange, symbols in directory.symbols.items():
            if exchange in UNDERLYING_EXCHANGES:
                for symbol in symbols:
                    option = parse_option(symbol)
                    if option is not None:
                        expiries = self.listed.options.setdefault((exchange, option.name), {})
                        expiries.setdefault(option.expiry, []).append(option)
                        continue
                    future = parse_future(symbol)
                    if future is not None:
                        self.listed.futures[(exchange, future.name, future.expiry)] = symbol
            else:
                self.listed.cash[exchange].update(symbols)
        for contracts in (c for by_expiry in self.listed.options.values() for c in by_expiry.values()):
            unique = {c.symbol: c for c in contracts}
            contracts[:] = unique.values()  # a directory published twice lists each contract once
        log.info("chain service: %s lists %d option series", directory.broker, len(self.listed.options))
        for stream in list(self.streams.values()):
            if stream.chain is None:
                self._build(stream)

    # -- chains out -----------------------------------------------------------------------------------
    def beat(self) -> None:
        """Recompute and publish every chain that changed since the last beat."""
        now_ms = int(self.clock() * 1000)
        publisher = self.publisher
        for stream in list(self.streams.values()):
            if stream.chain is None or not stream.dirty:
                continue
            stream.dirty = False
            self._retarget(stream, now_ms)
            if stream.chain.atm_index < 0:
                continue  # no underlying price yet
            waiting = not stream.data and not stream.chain.window_ready()
            if waiting and time.monotonic() - stream.since < FIRST_SNAPSHOT_WAIT:
                stream.dirty = True
                continue  # the first chain a client sees is whole
            stream.data = _encode(stream.chain.compute(now_ms))
            self.computed += 1
            stream.seq += 1
            if publisher is not None:
                publisher.publish(stream.topic, stream.seq, stream.data)
