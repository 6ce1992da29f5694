"""The broker-independent feed: bus subscriptions in, upstream set_wanted out, ticks to the bus.

Every subscribe reaching the XPUB (verbose) is answered with the topic's last value, so a proxy
that newly wants a topic gets a snapshot at once; the last unsubscribe (ZeroMQ reference-counts
across proxies, and counts a dead proxy out) releases the broker subscription after a short
coalescing window.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable

import msgspec
import zmq

from openalgo_proxy import control, topics
from openalgo_proxy.brokers.base import BrokerAdapter, OrderEvent, Rejection
from openalgo_proxy.bus import Publisher, run_seq_base
from openalgo_proxy.bus_engine import FeedBus
from openalgo_proxy.errors import ErrorCode
from openalgo_proxy.feed.sanity import TickSanity
from openalgo_proxy.feed.topic_table import TopicState, TopicTable
from openalgo_proxy.model import DEPTH_LEVELS, Instrument, Mode, Tick
from openalgo_proxy.startup import bind_failure
from openalgo_proxy.tasks import cancel_and_wait

log = logging.getLogger(__name__)


class Feed:
    """Runs one broker adapter behind one XPUB socket."""

    def __init__(
        self,
        adapter: BrokerAdapter,
        bus_endpoint: str,
        *,
        bus_connect: bool = False,
        status_interval: float = 2.0,
        coalesce_window: float = 0.02,
        ctx: zmq.Context[zmq.Socket[bytes]] | None = None,
        bus: Callable[[Feed], Awaitable[FeedBus]] | None = None,
        orders: bool = False,
    ) -> None:
        """`bus` opens another bus engine for this feed (NATS); without it the feed binds or
        connects its ZeroMQ XPUB at `bus_endpoint`."""
        self.adapter = adapter
        self.bus_opener = bus
        self.broker = adapter.name
        self.orders = orders  # publish the account's order events on #orders|BROKER|ACCOUNT
        self._ctx = ctx or zmq.Context.instance()
        self._bus_endpoint = bus_endpoint
        self._bus_connect = bus_connect
        self.status_interval = status_interval
        self.coalesce_window = coalesce_window
        self.publisher: FeedBus | None = None
        self._seq_base = run_seq_base(time.time())
        # every topic some proxy wants, with its seq and last data
        self.table = TopicTable(self._seq_base)
        self._control_seq = self._seq_base
        self._exchanges: frozenset[str] = frozenset()
        self._dirty = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self.ticks_in = 0
        self.messages_out = 0
        # who is publishing: lets a standby tell another feed's status from its own (see standby.py)
        self.instance = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.active_since_ms = 0
        self.standby = False  # managed by a StandbyFeed (loses to a plain primary; see standby.py)
        self.last_tick_monotonic = 0.0
        self.upstream: dict[Instrument, Mode] = {}
        self.sanity = TickSanity()  # impossible broker values are dropped and counted as decode errors

    @property
    def run(self) -> int:
        """This feed run's id on the bus (its seq base): NATS proxies fence frames by it."""
        return self._seq_base

    @property
    def exchanges(self) -> frozenset[str]:
        return self._exchanges

    def snapshot_of(self, topic: bytes) -> tuple[int, bytes] | None:
        """(seq, last data) of a topic this feed streams, for a snapshot request."""
        state = self.table.get(topic)
        return None if state is None else (state.seq, state.data)

    def on_bus_subscription(self, subscribe: bool, topic: bytes) -> None:
        self._on_subscription(subscribe, topic)

    @property
    def endpoint(self) -> str:
        assert self.publisher is not None
        return self.publisher.endpoint

    async def start(self) -> None:
        self.active_since_ms = int(time.time() * 1000)
        if self.orders:
            self.adapter.set_order_sink(self._on_order)
        await self.adapter.start(self._on_tick, self._on_reject)
        self._exchanges = frozenset(self.adapter.exchanges())
        loop = asyncio.get_running_loop()
        if self.bus_opener is not None:
            self.publisher = await self.bus_opener(self)
            # proxies that asked before this feed was on the bus (NATS: no subscription replay) learn of it now
            self._publish_directory()
            self._publish_status_now()
        else:
            publisher = await self._open_publisher()
            publisher.attach(loop)
            self.publisher = publisher
        self._tasks = [
            loop.create_task(self._sync_upstream(), name="feed-sync"),
            loop.create_task(self._publish_status(), name="feed-status"),
        ]
        log.info(
            "feed %s publishing on %s (%s)",
            self.broker,
            self.publisher.endpoint,
            "nats" if self.bus_opener else "connected to forwarder" if self._bus_connect else "bound",
        )

    async def _open_publisher(self, within: float = 5.0) -> Publisher:
        """Bind (or connect) the XPUB; a just-closed predecessor may hold the port for a moment."""
        deadline = time.monotonic() + within
        while True:
            try:
                return Publisher(
                    self._ctx, self._bus_endpoint, connect=self._bus_connect, on_subscription=self._on_subscription
                )
            except zmq.ZMQError as exc:
                if exc.errno != zmq.EADDRINUSE or time.monotonic() > deadline:
                    failure = bind_failure(exc, "the feed's bus", self._bus_endpoint, "--bus")
                    if failure is None:
                        raise
                    raise failure from exc
                await asyncio.sleep(0.05)

    async def stop(self) -> None:
        self._stopping = True
        await cancel_and_wait(*self._tasks)
        self._tasks = []
        await self.adapter.stop()
        if self.publisher is not None:
            self.publisher.close()
            self.publisher = None

    # -- bus side ---------------------------------------------------------------------------
    def _on_subscription(self, subscribe: bool, topic: bytes) -> None:
        if topics.is_control(topic):
            if subscribe:
                self._answer_control(topic)
            return
        try:
            key = topics.parse_bus_topic(topic)
        except ValueError:
            log.warning("feed %s: ignoring malformed bus subscription %r", self.broker, topic[:80])
            return
        if key.exchange not in self._exchanges:
            return  # another feed on the same bus serves this exchange
        if not subscribe:
            if self.table.remove(topic, key):
                self._dirty.set()
            return
        existing = self.table.get(topic)
        if existing is not None:
            self._send_snapshot(existing)
            return
        instrument = self.adapter.lookup(key.exchange, key.symbol)
        if instrument is None:
            self._publish_reject(topic, ErrorCode.SYMBOL_NOT_FOUND, f"{key.symbol} is not listed on {key.exchange}")
            return
        # the broker sends nothing new for an instrument it already streams, so the table replays
        if key.depth != DEPTH_LEVELS and key.depth not in self.adapter.depth_levels(instrument):
            message = f"{self.broker} has no {key.depth}-level book of {key.symbol}"
            self._publish_reject(topic, ErrorCode.INVALID_DEPTH, message)
            return
        state = self.table.add(topic, key, instrument, streamed=instrument in self.upstream)
        self._send_snapshot(state)
        self._dirty.set()

    def _answer_control(self, topic: bytes) -> None:
        if topics.covers(topic, topics.INSTRUMENTS_PREFIX):
            self._publish_directory()
        if topics.covers(topic, topics.STATUS_PREFIX):
            self._publish_status_now()

    def _send_snapshot(self, state: TopicState) -> None:
        """Replay the topic's last frame, same seq and data (its exchange times), marked a snapshot."""
        if state.data and self.publisher is not None:
            self.publisher.publish_snapshot(state.topic, state.seq, state.data)

    def _publish_control(self, topic: bytes, data: bytes) -> None:
        if self.publisher is None:
            return
        self._control_seq += 1
        self.publisher.publish(topic, self._control_seq, data)

    def _on_order(self, event: OrderEvent) -> None:
        """An order event of the account: `#orders|BROKER|ACCOUNT` (ACCOUNT = the update's user_id)."""
        try:
            update = event if isinstance(event, control.OrderUpdate) else msgspec.convert(event, control.OrderUpdate)
            topic = topics.orders_topic(self.broker, update.user_id)
        except (msgspec.ValidationError, ValueError) as exc:
            log.warning("feed %s: order update dropped: %s", self.broker, exc)
            return
        self._publish_control(topic, control.encode_order_update(update))

    def _publish_reject(self, topic: bytes, code: ErrorCode, message: str) -> None:
        self._publish_control(topics.reject_topic(topic), control.encode_reject(code, message))

    def directory(self) -> control.InstrumentDirectory:
        symbols = {
            exchange: sorted(names)
            for exchange, names in self.adapter.directory().items()
            if exchange in self._exchanges  # two feeds on one bus must not both claim an exchange
        }
        return control.InstrumentDirectory(
            broker=self.broker,
            exchanges=sorted(self._exchanges),
            symbols=symbols,
            instruments={exchange: self._described(exchange, names) for exchange, names in symbols.items()},
        )

    def _described(self, exchange: str, symbols: list[str]) -> list[control.InstrumentInfo]:
        """Search metadata of each symbol (name, type, tick and lot size) from the adapter's instruments."""
        out = []
        for symbol in symbols:
            inst = self.adapter.lookup(exchange, symbol)
            if inst is not None:
                out.append(
                    control.InstrumentInfo(
                        symbol=symbol,
                        name=inst.name,
                        instrument_type=inst.instrument_type,
                        tick_size=inst.tick_size,
                        lot_size=inst.lot_size,
                    )
                )
        return out

    def _publish_directory(self) -> None:
        self._publish_control(topics.instruments_topic(self.broker), control.encode_directory(self.directory()))

    def status(self) -> control.FeedStatus:
        st = self.adapter.status()
        age = time.monotonic() - self.last_tick_monotonic if self.last_tick_monotonic else -1.0
        return control.FeedStatus(
            broker=self.broker,
            state=st.state.value,
            connections=st.connections,
            subscriptions=st.subscriptions,
            topics=len(self.table),
            reconnects=st.reconnects,
            decode_errors=st.decode_errors + self.sanity.rejected,
            last_tick_age=round(age, 3),
            ticks=self.ticks_in,
            exchanges=sorted(self._exchanges),
            instance=self.instance,
            active_since=self.active_since_ms,
            standby=self.standby,
            time=int(time.time() * 1000),
        )

    def wanted_topics(self) -> list[str]:
        """Bus topics some proxy wants right now (for the metrics side's /status)."""
        return sorted(topic.decode() for topic in self.table)

    def upstream_pairs(self) -> dict[str, int]:
        """`EXCHANGE|SYMBOL` -> mode, as last placed at the broker."""
        return {topics.instrument_name(inst.exchange, inst.symbol): int(mode) for inst, mode in self.upstream.items()}

    def _publish_status_now(self) -> None:
        self._publish_control(topics.status_topic(self.broker), control.encode_status(self.status()))

    async def _publish_status(self) -> None:
        while True:
            self._publish_status_now()
            await asyncio.sleep(self.status_interval)

    # -- upstream side ------------------------------------------------------------------------
    def wanted(self) -> dict[Instrument, Mode]:
        """Instrument -> richest mode any proxy wants."""
        return self.table.wanted()

    async def _sync_upstream(self) -> None:
        while True:
            await self._dirty.wait()
            if self.coalesce_window:
                await asyncio.sleep(self.coalesce_window)
            self._dirty.clear()
            wanted = self.wanted()
            try:
                await self.adapter.set_wanted(wanted)
                await self.adapter.set_wanted_depth(self.table.wanted_depth())
                self.upstream = wanted
                self.table.synced()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("feed %s: upstream subscription update failed; retrying", self.broker)
                await asyncio.sleep(1.0)
                self._dirty.set()

    def _on_tick(self, tick: Tick) -> None:
        if (
            self.publisher is None
            or self.table.modes_of(tick.exchange, tick.symbol) is None
            or not self.sanity.admit(tick)
        ):
            return
        self.ticks_in += 1
        self.last_tick_monotonic = time.monotonic()
        publish = self.publisher.publish
        for state in self.table.apply(tick):
            publish(state.topic, state.seq, state.data)
            self.messages_out += 1

    def _on_reject(self, rejection: Rejection) -> None:
        """The broker cannot carry an instrument: every mode of it is refused and forgotten here,
        so the next upstream sync does not ask again; a proxy that subscribes anew retries."""
        inst = rejection.instrument
        for state in self.table.drop_instrument(inst, rejection.depth):
            self._publish_reject(state.topic, rejection.code, rejection.message)
        if rejection.depth != DEPTH_LEVELS:
            self._dirty.set()  # a shallower deep book still wanted is asked for at the next sync
        log.warning("feed %s: upstream refused %s %s: %s", self.broker, inst.exchange, inst.symbol, rejection.message)
