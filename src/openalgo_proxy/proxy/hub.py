"""Topic index and fan-out: the hot path.

A bus frame is turned into one WebSocket frame (bytes built once) and appended to each fast
subscriber's outbox; slow (paused) outboxes keep only the latest frame per topic. Dirty outboxes
are flushed once per bus drain, each in a single write. The hub knows outboxes, never connections
or sessions.

Invariant, per topic: ``subscribers`` is the disjoint union of ``slow`` (paused outboxes) and the
outboxes whose ``append`` is in ``appenders`` (one entry each).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Container
from typing import Any

import msgspec

from openalgo_proxy import control, topics
from openalgo_proxy.bus import SNAPSHOT, is_new_run
from openalgo_proxy.errors import ControlMessageError, ErrorCode
from openalgo_proxy.model import Mode
from openalgo_proxy.proxy.directory import Directory
from openalgo_proxy.proxy.frames import frame_header, text_frame
from openalgo_proxy.proxy.metrics import ProxyMetrics
from openalgo_proxy.proxy.outbox import Outbox

__all__ = ["Directory", "Hub", "TopicState", "frame_header", "text_frame"]

log = logging.getLogger(__name__)

_MID = b',"data":'
_END = b"}"
_SEQ_KEY = b',"seq":'
DIRECTORY_ASK_INTERVAL = 1.0  # seconds between two requests for one feed's instrument list
_SNAPSHOT_KEY = b',"snapshot":true'
_one_value = msgspec.json.Decoder(msgspec.Raw).decode  # checks one JSON value, builds nothing


class TopicState:
    __slots__ = (
        "appenders",
        "bus_topic",
        "client_topic",
        "depth",
        "exchange",
        "last_frame",
        "last_seq",
        "mode",
        "prefix",
        "slow",
        "snapshot_prefix",
        "subscribers",
        "symbol",
    )

    def __init__(
        self, bus_topic: bytes, symbol: str, exchange: str, mode: Mode, broker: str, depth: int = topics.STANDARD_DEPTH
    ) -> None:
        self.bus_topic = bus_topic
        self.symbol = symbol
        self.exchange = exchange
        self.mode = mode
        self.depth = depth
        self.client_topic = topics.client_topic(symbol, exchange)
        self.subscribers: dict[Outbox[TopicState], None] = {}
        self.appenders: list[Callable[[bytes], None]] = []
        self.slow: set[Outbox[TopicState]] = set()
        self.last_frame = b""
        self.last_seq = 0
        self.prefix = b""
        self.snapshot_prefix = b""
        self.set_broker(broker)

    def set_broker(self, broker: str) -> None:
        envelope: dict[str, object] = {
            "type": "market_data",
            "topic": self.client_topic,
            "symbol": self.symbol,
            "exchange": self.exchange,
            "mode": int(self.mode),
            "broker": broker,
        }
        if self.depth != topics.STANDARD_DEPTH:
            envelope["depth"] = self.depth  # a deeper book beside the five-level one of the same symbol
        head = msgspec.json.encode(envelope)
        self.prefix = head[:-1] + b',"seq":'
        self.snapshot_prefix = head[:-1] + b',"snapshot":true,"seq":'

    def snapshot_frame(self) -> bytes:
        """The last frame as a snapshot (`"snapshot":true` before its seq): what a new subscriber of a
        topic already streaming gets at once. Built on demand, so the hot path stores one frame."""
        frame = self.last_frame
        if not frame:
            return b""
        start = 2 if frame[1] < 126 else (4 if frame[1] == 126 else 10)
        payload = frame[start:]
        at = payload.find(_SEQ_KEY)
        if at < 0 or payload[:at].endswith(_SNAPSHOT_KEY):
            return frame  # already a snapshot (a feed's replay was the last frame)
        return text_frame(payload[:at] + _SNAPSHOT_KEY + payload[at:])


class Hub:
    def __init__(
        self,
        metrics: ProxyMetrics,
        bus_subscribe: Callable[[bytes], None],
        bus_unsubscribe: Callable[[bytes], None],
        default_broker: str = "",
    ) -> None:
        self.metrics = metrics
        self.topics: dict[bytes, TopicState] = {}
        self.dirty: set[Outbox[TopicState]] = set()
        self.directory = Directory(default_broker)
        self._bus_subscribe = bus_subscribe
        self._bus_unsubscribe = bus_unsubscribe
        self._batch_started = 0.0
        self._batch_count = 0
        self.on_reject: Callable[[TopicState, str, str], None] | None = self.reject
        self._directory_asked: dict[str, float] = {}
        self.on_directory: Callable[[], None] | None = None

    # -- subscriptions -------------------------------------------------------------------------
    def subscribe(
        self, outbox: Outbox[TopicState], symbol: str, exchange: str, mode: Mode, depth: int = topics.STANDARD_DEPTH
    ) -> TopicState:
        bus_topic = topics.bus_topic(exchange, symbol, mode, depth)
        state = self.topics.get(bus_topic)
        if state is None:
            state = TopicState(bus_topic, symbol, exchange, mode, self.directory.broker(exchange), depth)
            self.topics[bus_topic] = state
            self._bus_subscribe(bus_topic)
        if outbox not in state.subscribers:
            state.subscribers[outbox] = None
            outbox.topics[bus_topic] = state
            if outbox.paused:
                state.slow.add(outbox)
            else:
                state.appenders.append(outbox.append)
        return state

    def unsubscribe(self, outbox: Outbox[TopicState], state: TopicState) -> None:
        if outbox not in state.subscribers:
            return
        del state.subscribers[outbox]
        outbox.topics.pop(state.bus_topic, None)
        if outbox in state.slow:
            state.slow.discard(outbox)
        else:
            state.appenders.remove(outbox.append)
        outbox.conflated.pop(state, None)
        if not state.subscribers:
            del self.topics[state.bus_topic]
            self._bus_unsubscribe(state.bus_topic)

    def unsubscribe_all(self, outbox: Outbox[TopicState]) -> list[TopicState]:
        """Drop every topic of this outbox; the states it held, in subscription order."""
        states = list(outbox.topics.values())
        for state in states:
            self.unsubscribe(outbox, state)
        return states

    def set_paused(self, outbox: Outbox[TopicState], paused: bool, now: float = 0.0) -> None:
        """Move the outbox between the fast list and the conflating set of each of its topics."""
        if paused == outbox.paused:
            return
        if paused:
            outbox.pause(now)
            for state in outbox.topics.values():
                state.appenders.remove(outbox.append)
                state.slow.add(outbox)
        else:
            for state in outbox.topics.values():
                state.slow.discard(outbox)
                state.appenders.append(outbox.append)
            outbox.resume()

    def reject(self, state: TopicState, code: str, message: str) -> None:
        """A feed refused this topic: every subscriber loses it and is told."""
        for outbox in list(state.subscribers):
            self.unsubscribe(outbox, state)
            outbox.on_reject(state, code, message)

    # -- what the feeds serve (read by sessions) ---------------------------------------------------
    def check(self, exchange: str, symbol: str) -> tuple[ErrorCode, str] | None:
        return self.directory.check(exchange, symbol)

    def brokers(self) -> list[str]:
        return self.directory.brokers()

    def exchanges(self) -> list[str]:
        return sorted(self.directory.symbols)

    def broker_name(self) -> str:
        brokers = self.directory.brokers()
        return brokers[0] if len(brokers) == 1 else (self.directory.default_broker or ",".join(brokers))

    def search(
        self, query: str, exchange: str | None, limit: int, allowed: Container[str] | None = None
    ) -> list[dict[str, Any]]:
        return [item.as_dict() for item in self.directory.search(query, exchange, limit, allowed)]

    def suggest(self, exchange: str, symbol: str) -> list[str]:
        return self.directory.suggest(exchange, symbol)

    def upstream_connected(self) -> bool:
        return any(status.connected for status in self.directory.status.values())

    # -- bus -------------------------------------------------------------------------------------
    def on_bus_message(self, parts: list[bytes]) -> None:
        if not self._batch_count:
            self._batch_started = time.perf_counter()
        self._batch_count += 1
        if len(parts) != 3 and (len(parts) != 4 or parts[3] != SNAPSHOT):
            self.metrics.errors["BUS_FRAME"] += 1
            return
        topic, raw_seq, data = parts[0], parts[1], parts[2]
        state = self.topics.get(topic)
        if state is None:
            if topics.is_control(topic):
                self._on_control(topic, data)
            return
        # `data` is spliced into the envelope unparsed: it must be exactly one JSON object, or a
        # forged publisher could close the object early and add its own keys ("type":"error")
        if data[:1] != b"{":
            self.metrics.errors["BUS_DATA"] += 1
            return
        try:
            _one_value(data)
        except msgspec.DecodeError:
            self.metrics.errors["BUS_DATA"] += 1
            return
        seq = int.from_bytes(raw_seq, "big")
        last = state.last_seq
        if seq <= last:
            if seq == last:
                self.metrics.bus_duplicates += 1
                return
            self.metrics.bus_resets += 1
        elif last and seq != last + 1:
            if is_new_run(last, seq):
                self.metrics.bus_resets += 1
            else:
                self.metrics.bus_gaps += seq - last - 1
        state.last_seq = seq
        seq_text = b"%d" % seq
        prefix = state.prefix if len(parts) == 3 else state.snapshot_prefix
        head = frame_header(len(prefix) + len(seq_text) + len(data) + 9)
        frame = b"".join((head, prefix, seq_text, _MID, data, _END))
        state.last_frame = frame
        for append in state.appenders:
            append(frame)
        if state.slow:
            conflated = 0
            for outbox in state.slow:
                pending = outbox.conflated
                if state in pending:
                    conflated += 1
                pending[state] = frame
            self.metrics.conflated += conflated
        self.dirty.update(state.subscribers)
        self.metrics.messages_out += len(state.subscribers)

    def _ask_directory(self, broker: str, now: float) -> None:
        """A feed announced exchanges whose instrument list never arrived (it was published before this
        proxy connected, or dropped): subscribing its topic anew makes the feed publish it again."""
        if now - self._directory_asked.get(broker, -DIRECTORY_ASK_INTERVAL) < DIRECTORY_ASK_INTERVAL:
            return
        self._directory_asked[broker] = now
        topic = topics.instruments_topic(broker)
        self._bus_subscribe(topic)
        self._bus_unsubscribe(topic)  # the prefix subscription still delivers it

    def flush(self) -> None:
        """End of a bus drain: one write per outbox that got frames."""
        count = self._batch_count
        if count:
            self.metrics.bus_messages += count
            self._batch_count = 0
        dirty = self.dirty
        if dirty:
            self.dirty = set()
            for outbox in dirty:
                outbox.flush()
            if count:
                self.metrics.tick_to_send.observe(time.perf_counter() - self._batch_started, count)

    def _on_control(self, topic: bytes, data: bytes) -> None:
        try:
            if topic.startswith(topics.STATUS_PREFIX):
                broker = topics.parse_status_topic(topic)
                now = time.monotonic()
                self.directory.update_status(broker, control.decode_status(data), now)
                if self.directory.awaited(broker):
                    self._ask_directory(broker, now)
            elif topic.startswith(topics.INSTRUMENTS_PREFIX):
                changed = set(self.directory.update(control.decode_directory(data)))
                if not self.directory.index_ready and self.on_directory is not None:
                    self.on_directory()  # a big list: its search index is built off the event loop
                if changed:
                    for state in self.topics.values():
                        if state.exchange in changed:
                            state.set_broker(self.directory.broker(state.exchange))
            elif topic.startswith(topics.REJECT_PREFIX):
                rejected = self.topics.get(topics.parse_reject_topic(topic))
                if rejected is not None and self.on_reject is not None:
                    reject = control.decode_reject(data)
                    self.on_reject(rejected, reject.code, reject.message)
        except (ControlMessageError, ValueError) as exc:
            self.metrics.errors["BUS_CONTROL"] += 1
            log.warning("bus: bad control message on %r: %s", topic[:60], exc)
