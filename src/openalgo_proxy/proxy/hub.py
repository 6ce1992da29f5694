"""Topic index and fan-out: the hot path.

A bus frame is turned into one WebSocket frame (bytes built once) and appended to each fast
subscriber's outbox; slow (paused) outboxes keep only the latest frame per topic. Dirty outboxes
are flushed once per bus drain, each in a single write. The hub knows outboxes, never connections
or sessions.

Invariant, per topic: ``subscribers`` is the disjoint union of ``slow`` (paused outboxes) and the
outboxes whose ``append`` is in ``appenders`` (one entry each).

OpenAlgo-dialect clients want `data.timestamp` as epoch ms: they hold a companion state
(``state.numeric``, not in ``topics``) of the same bus topic, whose frames carry the rewritten
`data`; it exists only while such a client holds the topic, so the seed path pays one `is None`.
Order updates (``#orders|BROKER|ACCOUNT``) go verbatim to the outboxes that asked for that account.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable, Container
from typing import Any

import msgspec

from openalgo_proxy import control, topics
from openalgo_proxy.bus import SNAPSHOT, is_new_run
from openalgo_proxy.errors import ControlMessageError, ErrorCode
from openalgo_proxy.model import Mode
from openalgo_proxy.payload import numeric_timestamp
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


CANDLE_HISTORY = 500  # completed candles a proxy keeps per candle topic for clients that join later
_COMPLETED = b'"completed":true'


class TopicState:
    __slots__ = (
        "appenders",
        "awaiting",
        "bus_topic",
        "candles",
        "chain",
        "client_topic",
        "depth",
        "exchange",
        "forming",
        "interval",
        "last_data",
        "last_frame",
        "last_seq",
        "mode",
        "numeric",
        "prefix",
        "primary",
        "primed",
        "slow",
        "snapshot_prefix",
        "subscribers",
        "symbol",
    )

    def __init__(
        self,
        bus_topic: bytes,
        symbol: str,
        exchange: str,
        mode: Mode,
        broker: str,
        depth: int = topics.STANDARD_DEPTH,
        chain: topics.ChainKey | None = None,
        interval: str = "",
    ) -> None:
        self.bus_topic = bus_topic
        self.interval = interval  # a candle topic's interval; "" for market data
        # candle topics: outboxes waiting for the service's history burst, the completed candles and
        # the forming one seen so far (seq text, data), and whether the burst has been seen
        self.awaiting: set[Outbox[TopicState]] = set()
        self.candles: collections.deque[tuple[bytes, bytes]] = collections.deque(maxlen=CANDLE_HISTORY)
        self.forming: tuple[bytes, bytes] | None = None
        self.primed = False
        self.symbol = symbol
        self.exchange = exchange
        self.mode = mode
        self.depth = depth
        self.chain = chain  # an option chain stream (its envelope is `option_chain`), else None
        self.client_topic = topics.chain_client_topic(*chain) if chain else topics.client_topic(symbol, exchange)
        self.subscribers: dict[Outbox[TopicState], None] = {}
        self.appenders: list[Callable[[bytes], None]] = []
        self.slow: set[Outbox[TopicState]] = set()
        self.last_frame = b""
        self.last_data = b""
        self.last_seq = 0
        self.prefix = b""
        self.snapshot_prefix = b""
        self.numeric: TopicState | None = None  # companion for numeric-timestamp clients
        self.primary: TopicState | None = None  # set on a companion: the state in the hub's index
        self.set_broker(broker)

    def set_broker(self, broker: str) -> None:
        if self.chain is not None:
            head = msgspec.json.encode(
                {
                    "type": "option_chain",
                    "topic": self.client_topic,
                    "underlying": self.chain.underlying,
                    "exchange": self.chain.exchange,
                    "expiry": self.chain.expiry,
                    "strikes": self.chain.strikes,
                }
            )
            self.prefix = head[:-1] + b',"seq":'
            self.snapshot_prefix = head[:-1] + b',"snapshot":true,"seq":'
            return
        if self.interval:
            candle: dict[str, object] = {
                "type": "candle",
                "topic": self.client_topic,
                "symbol": self.symbol,
                "exchange": self.exchange,
                "interval": self.interval,
            }
            head = msgspec.json.encode(candle)
            self.prefix = head[:-1] + b',"seq":'
            self.snapshot_prefix = head[:-1] + b',"snapshot":true,"seq":'
            return
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


def _frame(prefix: bytes, seq: int, data: bytes) -> bytes:
    seq_text = b"%d" % seq
    return b"".join((frame_header(len(prefix) + len(seq_text) + len(data) + 9), prefix, seq_text, _MID, data, _END))


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
        # account (or "*") -> outboxes that asked for its order updates
        self.order_subscribers: dict[str, set[Outbox[TopicState]]] = {}
        self.order_accounts: dict[Outbox[TopicState], tuple[str, ...]] = {}
        self._directory_asked: dict[str, float] = {}
        self.on_directory: Callable[[], None] | None = None

    # -- subscriptions -------------------------------------------------------------------------
    def subscribe(
        self,
        outbox: Outbox[TopicState],
        symbol: str,
        exchange: str,
        mode: Mode,
        depth: int = topics.STANDARD_DEPTH,
        numeric_time: bool = False,
    ) -> TopicState:
        bus_topic = topics.bus_topic(exchange, symbol, mode, depth)
        state = self.topics.get(bus_topic)
        if state is None:
            state = TopicState(bus_topic, symbol, exchange, mode, self.directory.broker(exchange), depth)
            self.topics[bus_topic] = state
            self._bus_subscribe(bus_topic)
        if numeric_time:
            state = self._companion(state)
        if outbox not in state.subscribers:
            state.subscribers[outbox] = None
            outbox.topics[bus_topic] = state
            if outbox.paused:
                state.slow.add(outbox)
            else:
                state.appenders.append(outbox.append)
        return state

    def subscribe_chain(self, outbox: Outbox[TopicState], key: topics.ChainKey) -> TopicState:
        """An option chain stream (published by the chain service) into this outbox."""
        bus_topic = topics.chain_topic(*key)
        state = self.topics.get(bus_topic)
        if state is None:
            state = TopicState(bus_topic, key.underlying, key.exchange, Mode.DEPTH, "", chain=key)
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

    def subscribe_candles(
        self, outbox: Outbox[TopicState], symbol: str, exchange: str, interval: str
    ) -> tuple[TopicState, list[bytes]]:
        """Candles of one instrument at one interval: the state, and the history frames (snapshots) to
        send this outbox now; a first subscriber gets its history from the candle service instead."""
        bus_topic = topics.candle_topic(exchange, symbol, interval)
        state = self.topics.get(bus_topic)
        fresh = state is None
        if state is None:
            state = TopicState(bus_topic, symbol, exchange, Mode.QUOTE, "", interval=interval)
            self.topics[bus_topic] = state
        backlog: list[bytes] = []
        if outbox not in state.subscribers:
            state.subscribers[outbox] = None
            outbox.topics[bus_topic] = state
            if outbox.paused:
                state.slow.add(outbox)
            else:
                state.appenders.append(outbox.append)
            if state.primed:
                cached = [*state.candles, *([state.forming] if state.forming is not None else [])]
                backlog = [self._candle_frame(state, seq_text, data, snapshot=True) for seq_text, data in cached]
            else:
                state.awaiting.add(outbox)
        if fresh:
            self._bus_subscribe(bus_topic)
        return state, backlog

    def _companion(self, state: TopicState) -> TopicState:
        companion = state.numeric
        if companion is None:
            companion = TopicState(state.bus_topic, state.symbol, state.exchange, state.mode, "", state.depth)
            companion.prefix, companion.snapshot_prefix = state.prefix, state.snapshot_prefix
            companion.primary = state
            companion.last_seq = state.last_seq
            if state.last_data:
                companion.last_data = numeric_timestamp(state.last_data)
                companion.last_frame = _frame(state.snapshot_prefix, state.last_seq, companion.last_data)
            state.numeric = companion
        return companion

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
        state.awaiting.discard(outbox)
        if state.subscribers:
            return
        primary = state.primary
        if primary is not None:  # the last numeric-timestamp client left
            primary.numeric = None
            state = primary
            if state.subscribers:
                return
        if state.numeric is None:
            del self.topics[state.bus_topic]
            self._bus_unsubscribe(state.bus_topic)

    def unsubscribe_all(self, outbox: Outbox[TopicState], orders: bool = True) -> list[TopicState]:
        """Drop every topic of this outbox (and its order subscription unless `orders` is False: the
        client's `unsubscribe_all` is about market data); the states it held, in subscription order."""
        if orders:
            self.unsubscribe_orders(outbox)
        states = list(outbox.topics.values())
        for state in states:
            self.unsubscribe(outbox, state)
        return states

    # -- order updates ---------------------------------------------------------------------------
    def subscribe_orders(self, outbox: Outbox[TopicState], accounts: tuple[str, ...]) -> None:
        """Order updates of these accounts ("*" = every account) to this outbox."""
        self.unsubscribe_orders(outbox)
        self.order_accounts[outbox] = accounts
        for account in accounts:
            self.order_subscribers.setdefault(account, set()).add(outbox)

    def unsubscribe_orders(self, outbox: Outbox[TopicState]) -> bool:
        accounts = self.order_accounts.pop(outbox, None)
        if accounts is None:
            return False
        for account in accounts:
            holders = self.order_subscribers.get(account)
            if holders is not None:
                holders.discard(outbox)
                if not holders:
                    del self.order_subscribers[account]
        return True

    def _on_order(self, topic: bytes, data: bytes) -> None:
        try:
            key = topics.parse_orders_topic(topic)
        except ValueError:
            self.metrics.errors["BUS_CONTROL"] += 1
            return
        targets = self.order_subscribers.get(key.account, set()) | self.order_subscribers.get("*", set())
        if not targets:
            return
        frame = text_frame(data)
        for outbox in targets:
            outbox.append(frame)
        self.dirty.update(targets)
        self.metrics.messages_out += len(targets)

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
        companion = state.numeric
        if companion is not None:
            self.reject(companion, code, message)
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
        return bool(self.directory.connected_feeds(time.monotonic()))

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
        if state.interval:
            self._on_candle(state, seq, data, len(parts) == 4)
            return
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
        state.last_data = data
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
        companion = state.numeric
        if companion is not None:
            companion.last_seq = seq
            companion.last_data = numeric_timestamp(data)
            companion.last_frame = _frame(prefix, seq, companion.last_data)
            self._fan_out(companion, companion.last_frame)

    def _fan_out(self, state: TopicState, frame: bytes) -> None:
        """The same fan-out for a companion (kept inline above for the seed hot path)."""
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

    @staticmethod
    def _candle_frame(state: TopicState, seq_text: bytes, data: bytes, snapshot: bool) -> bytes:
        prefix = state.snapshot_prefix if snapshot else state.prefix
        head = frame_header(len(prefix) + len(seq_text) + len(data) + 9)
        return b"".join((head, prefix, seq_text, _MID, data, _END))

    def _on_candle(self, state: TopicState, seq: int, data: bytes, snapshot: bool) -> None:
        """A candle frame: live ones go to every subscriber; the history burst (snapshots) only to
        the outboxes waiting for it. The completed candles are kept for clients that join later."""
        if seq <= state.last_seq:
            self.metrics.bus_duplicates += 1
            return
        completed = _COMPLETED in data
        if snapshot and state.primed:
            return  # another proxy's history burst
        state.last_seq = seq
        seq_text = b"%d" % seq
        if completed:
            state.candles.append((seq_text, data))
            state.forming = None
        else:
            state.forming = (seq_text, data)
        frame = self._candle_frame(state, seq_text, data, snapshot)
        state.last_frame = frame
        if snapshot:
            if not completed:
                state.primed = True  # the forming candle ends the burst
            for outbox in state.awaiting:
                outbox.append(frame)
            self.dirty.update(state.awaiting)
            if state.primed:
                state.awaiting.clear()
            return
        state.primed = True
        state.awaiting.clear()
        for append in state.appenders:
            append(frame)
        for outbox in state.slow:
            outbox.conflated[state] = frame
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
        if topic.startswith(topics.ORDERS_PREFIX):
            self._on_order(topic, data)
            return
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
                            if state.numeric is not None:
                                state.numeric.prefix = state.prefix
                                state.numeric.snapshot_prefix = state.snapshot_prefix
            elif topic.startswith(topics.REJECT_PREFIX):
                rejected = self.topics.get(topics.parse_reject_topic(topic))
                if rejected is not None and self.on_reject is not None:
                    reject = control.decode_reject(data)
                    self.on_reject(rejected, reject.code, reject.message)
        except (ControlMessageError, ValueError) as exc:
            self.metrics.errors["BUS_CONTROL"] += 1
            log.warning("bus: bad control message on %r: %s", topic[:60], exc)
