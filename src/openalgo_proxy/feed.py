"""The broker-independent feed: bus subscriptions in, upstream set_wanted out, ticks to the bus.

Every subscribe reaching the XPUB (verbose) is answered with the topic's last value, so a proxy
that newly wants a topic gets a snapshot at once; the last unsubscribe (ZeroMQ reference-counts
across proxies, and counts a dead proxy out) releases the broker subscription after a short
coalescing window.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from collections import defaultdict

import msgspec
import zmq

from openalgo_proxy import topics
from openalgo_proxy.brokers.base import BrokerAdapter, Rejection
from openalgo_proxy.bus import Publisher, run_seq_base
from openalgo_proxy.errors import ErrorCode
from openalgo_proxy.model import Instrument, Mode, Tick
from openalgo_proxy.payload import encode_data

log = logging.getLogger(__name__)
_encode = msgspec.json.Encoder().encode


class _Topic:
    __slots__ = ("data", "instrument", "mode", "seq", "topic")

    def __init__(self, topic: bytes, instrument: Instrument, mode: Mode, seq: int) -> None:
        self.topic = topic
        self.instrument = instrument
        self.mode = mode
        self.seq = seq
        self.data = b""


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
    ) -> None:
        self.adapter = adapter
        self.broker = adapter.name
        self._ctx = ctx or zmq.Context.instance()
        self._bus_endpoint = bus_endpoint
        self._bus_connect = bus_connect
        self.status_interval = status_interval
        self.coalesce_window = coalesce_window
        self.publisher: Publisher | None = None
        # bus topic -> state, for every topic some proxy wants
        self._topics: dict[bytes, _Topic] = {}
        # (exchange, symbol) -> {mode: _Topic}
        self._by_instrument: dict[tuple[str, str], dict[Mode, _Topic]] = defaultdict(dict)
        self._seq_base = run_seq_base(time.time())
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
        # last (seq, data) of topics recently released, while their instrument is still streamed
        self._released: dict[bytes, tuple[int, bytes]] = {}
        # last seq of every topic ever streamed in this run: seq rises per topic for the whole run,
        # however often it is released and wanted again (bounded by the directory x modes)
        self._last_seq: dict[bytes, int] = {}
        # the last tick of every instrument streamed upstream: a newly wanted mode of it is answered
        # at once with its values (the broker sends nothing new for an instrument it already streams)
        self._last_tick: dict[tuple[str, str], Tick] = {}

    @property
    def endpoint(self) -> str:
        assert self.publisher is not None
        return self.publisher.endpoint

    async def start(self) -> None:
        self.active_since_ms = int(time.time() * 1000)
        await self.adapter.start(self._on_tick, self._on_reject)
        self._exchanges = frozenset(self.adapter.exchanges())
        self.publisher = await self._open_publisher()
        loop = asyncio.get_running_loop()
        self.publisher.attach(loop)
        self._tasks = [
            loop.create_task(self._sync_upstream(), name="feed-sync"),
            loop.create_task(self._publish_status(), name="feed-status"),
        ]
        log.info(
            "feed %s publishing on %s (%s)",
            self.broker,
            self.publisher.endpoint,
            "connected to forwarder" if self._bus_connect else "bound",
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
                    raise
                await asyncio.sleep(0.05)

    async def stop(self) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self.adapter.stop()
        if self.publisher is not None:
            self.publisher.close()
            self.publisher = None

    # -- bus side ---------------------------------------------------------------------------
    def _on_subscription(self, subscribe: bool, topic: bytes) -> None:
        if topic.startswith(topics.CONTROL_MARK) or not topic:
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
            state = self._topics.pop(topic, None)
            if state is not None:
                self._last_seq[topic] = state.seq
                if state.data:
                    self._released[topic] = (state.seq, state.data)
                modes = self._by_instrument.get((key.exchange, key.symbol))
                if modes is not None:
                    modes.pop(key.mode, None)
                    if not modes:
                        del self._by_instrument[(key.exchange, key.symbol)]
                self._dirty.set()
            return
        existing = self._topics.get(topic)
        if existing is not None:
            self._send_snapshot(existing)
            return
        instrument = self.adapter.lookup(key.exchange, key.symbol)
        if instrument is None:
            self._publish_reject(topic, ErrorCode.SYMBOL_NOT_FOUND, f"{key.symbol} is not listed on {key.exchange}")
            return
        state = _Topic(topic, instrument, key.mode, self._last_seq.get(topic, self._seq_base))
        self._topics[topic] = state
        self._by_instrument[(key.exchange, key.symbol)][key.mode] = state
        released = self._released.pop(topic, None)
        last = self._last_tick.get((key.exchange, key.symbol))
        if released is not None and instrument in self.upstream:
            # resubscribed before the upstream sync: the broker sends nothing new, so replay
            state.seq, state.data = released
            self._send_snapshot(state)
        elif last is not None and last.mode >= key.mode and instrument in self.upstream:
            state.seq += 1
            state.data = encode_data(last, key.mode)
            self._send_snapshot(state)
        self._dirty.set()

    def _answer_control(self, topic: bytes) -> None:
        if topics.INSTRUMENTS_PREFIX.startswith(topic) or topic.startswith(topics.INSTRUMENTS_PREFIX):
            self._publish_directory()
        if topics.STATUS_PREFIX.startswith(topic) or topic.startswith(topics.STATUS_PREFIX):
            self._publish_status_now()

    def _send_snapshot(self, state: _Topic) -> None:
        """Replay the topic's last frame, same seq and data (its exchange times), marked a snapshot."""
        if state.data and self.publisher is not None:
            self.publisher.publish_snapshot(state.topic, state.seq, state.data)

    def _publish_control(self, topic: bytes, payload: object) -> None:
        if self.publisher is None:
            return
        self._control_seq += 1
        self.publisher.publish(topic, self._control_seq, _encode(payload))

    def _publish_reject(self, topic: bytes, code: ErrorCode, message: str) -> None:
        self._publish_control(topics.reject_topic(topic), {"code": code.value, "message": message})

    def _publish_directory(self) -> None:
        directory = {
            exchange: sorted(symbols)
            for exchange, symbols in self.adapter.directory().items()
            if exchange in self._exchanges  # two feeds on one bus must not both claim an exchange
        }
        self._publish_control(
            topics.instruments_topic(self.broker),
            {"broker": self.broker, "exchanges": sorted(self._exchanges), "symbols": directory},
        )

    def status(self) -> dict[str, object]:
        st = self.adapter.status()
        age = time.monotonic() - self.last_tick_monotonic if self.last_tick_monotonic else -1.0
        return {
            "broker": self.broker,
            "state": st.state.value,
            "connections": st.connections,
            "subscriptions": st.subscriptions,
            "topics": len(self._topics),
            "reconnects": st.reconnects,
            "decode_errors": st.decode_errors,
            "last_tick_age": round(age, 3),
            "ticks": self.ticks_in,
            "exchanges": sorted(self._exchanges),
            "instance": self.instance,
            "active_since": self.active_since_ms,
            "standby": self.standby,
            "time": int(time.time() * 1000),
        }

    def wanted_topics(self) -> list[str]:
        """Bus topics some proxy wants right now (for the metrics side's /status)."""
        return sorted(topic.decode() for topic in self._topics)

    def upstream_pairs(self) -> dict[str, int]:
        """`EXCHANGE|SYMBOL` -> mode, as last placed at the broker."""
        return {f"{inst.exchange}|{inst.symbol}": int(mode) for inst, mode in self.upstream.items()}

    def _publish_status_now(self) -> None:
        self._publish_control(topics.status_topic(self.broker), self.status())

    async def _publish_status(self) -> None:
        while True:
            self._publish_status_now()
            await asyncio.sleep(self.status_interval)

    # -- upstream side ------------------------------------------------------------------------
    def wanted(self) -> dict[Instrument, Mode]:
        """Instrument -> richest mode any proxy wants."""
        result: dict[Instrument, Mode] = {}
        for state in self._topics.values():
            current = result.get(state.instrument)
            if current is None or state.mode > current:
                result[state.instrument] = state.mode
        return result

    async def _sync_upstream(self) -> None:
        while True:
            await self._dirty.wait()
            if self.coalesce_window:
                await asyncio.sleep(self.coalesce_window)
            self._dirty.clear()
            wanted = self.wanted()
            try:
                await self.adapter.set_wanted(wanted)
                self.upstream = wanted
                self._released.clear()  # released topics' instruments are gone upstream or re-wanted
                for key in [key for key in self._last_tick if key not in self._by_instrument]:
                    del self._last_tick[key]
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("feed %s: upstream subscription update failed; retrying", self.broker)
                await asyncio.sleep(1.0)
                self._dirty.set()

    def _on_tick(self, tick: Tick) -> None:
        key = (tick.exchange, tick.symbol)
        modes = self._by_instrument.get(key)
        if not modes or self.publisher is None:
            return
        self._last_tick[key] = tick
        self.ticks_in += 1
        self.last_tick_monotonic = time.monotonic()
        publish = self.publisher.publish
        for mode, state in modes.items():
            if mode > tick.mode:
                continue  # a poorer packet never fills a richer stream
            state.seq += 1
            state.data = encode_data(tick, mode)
            publish(state.topic, state.seq, state.data)
            self.messages_out += 1

    def _on_reject(self, rejection: Rejection) -> None:
        """The broker cannot carry an instrument: every mode of it is refused and forgotten here,
        so the next upstream sync does not ask again; a proxy that subscribes anew retries."""
        inst = rejection.instrument
        modes = self._by_instrument.pop((inst.exchange, inst.symbol), {})
        self._last_tick.pop((inst.exchange, inst.symbol), None)
        for state in modes.values():
            self._topics.pop(state.topic, None)
            self._last_seq[state.topic] = state.seq
            self._publish_reject(state.topic, rejection.code, rejection.message)
        log.warning("feed %s: upstream refused %s %s: %s", self.broker, inst.exchange, inst.symbol, rejection.message)
