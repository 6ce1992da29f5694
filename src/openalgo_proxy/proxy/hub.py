"""Topic index and fan-out: the hot path.

A bus frame is turned into one WebSocket frame (bytes built once) and appended to each fast
subscriber's pending list; slow (paused) subscribers keep only the latest frame per topic.
Dirty connections are flushed once per bus drain, each in a single write.
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from openalgo_proxy import topics
from openalgo_proxy.bus import SNAPSHOT, is_new_run
from openalgo_proxy.errors import ErrorCode
from openalgo_proxy.model import Mode
from openalgo_proxy.proxy.metrics import ProxyMetrics

if TYPE_CHECKING:
    from openalgo_proxy.proxy.connection import Connection

log = logging.getLogger(__name__)

_H16 = struct.Struct("!BBH")
_H64 = struct.Struct("!BBQ")
_MID = b',"data":'
_END = b"}"
_decode = msgspec.json.decode


def frame_header(n: int) -> bytes:
    """Header of an unmasked, final WebSocket text frame (server to client) with an n-byte payload."""
    if n < 126:
        return bytes((0x81, n))
    if n < 65536:
        return _H16.pack(0x81, 126, n)
    return _H64.pack(0x81, 127, n)


def text_frame(payload: bytes) -> bytes:
    """An unmasked, final WebSocket text frame (server to client)."""
    return frame_header(len(payload)) + payload


class TopicState:
    __slots__ = (
        "appenders",
        "bus_topic",
        "client_topic",
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

    def __init__(self, bus_topic: bytes, symbol: str, exchange: str, mode: Mode, broker: str) -> None:
        self.bus_topic = bus_topic
        self.symbol = symbol
        self.exchange = exchange
        self.mode = mode
        self.client_topic = topics.client_topic(symbol, exchange)
        self.subscribers: dict[Connection, None] = {}
        self.appenders: list[Callable[[bytes], None]] = []
        self.slow: set[Connection] = set()
        self.last_frame = b""
        self.last_seq = 0
        self.prefix = b""
        self.snapshot_prefix = b""
        self.set_broker(broker)

    def set_broker(self, broker: str) -> None:
        head = msgspec.json.encode(
            {
                "type": "market_data",
                "topic": self.client_topic,
                "symbol": self.symbol,
                "exchange": self.exchange,
                "mode": int(self.mode),
                "broker": broker,
            }
        )
        self.prefix = head[:-1] + b',"seq":'
        self.snapshot_prefix = head[:-1] + b',"snapshot":true,"seq":'


class Directory:
    """What the feeds on the bus can stream, learned from `#instruments|BROKER` publications."""

    def __init__(self, default_broker: str = "") -> None:
        self.symbols: dict[str, set[str]] = {}
        self.broker_of: dict[str, str] = {}
        self.default_broker = default_broker
        self.status: dict[str, dict[str, Any]] = {}
        self.status_seen: dict[str, float] = {}

    def update(self, payload: dict[str, Any]) -> list[str]:
        broker = str(payload.get("broker", ""))
        symbols = payload.get("symbols", {})
        changed = []
        if isinstance(symbols, dict):
            for exchange, names in symbols.items():
                if isinstance(names, list):
                    self.symbols[exchange] = set(map(str, names))
                    if self.broker_of.get(exchange) != broker:
                        self.broker_of[exchange] = broker
                        changed.append(exchange)
        return changed

    def broker(self, exchange: str) -> str:
        return self.broker_of.get(exchange) or self.default_broker or next(iter(self.status), "")

    def brokers(self) -> list[str]:
        return sorted(set(self.broker_of.values()) | set(self.status))

    def check(self, exchange: str, symbol: str) -> tuple[ErrorCode, str] | None:
        if not self.symbols:
            return ErrorCode.BROKER_UNAVAILABLE, "no broker feed is connected yet; try again shortly"
        names = self.symbols.get(exchange)
        if names is None:
            return ErrorCode.SYMBOL_NOT_FOUND, f"exchange {exchange} is not served by any connected feed"
        if symbol not in names:
            return ErrorCode.SYMBOL_NOT_FOUND, f"{symbol} is not listed on {exchange}"
        return None


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
        self.dirty: set[Connection] = set()
        self.directory = Directory(default_broker)
        self._bus_subscribe = bus_subscribe
        self._bus_unsubscribe = bus_unsubscribe
        self._batch_started = 0.0
        self._batch_count = 0
        self.on_reject: Callable[[TopicState, str, str], None] | None = None

    # -- subscriptions -------------------------------------------------------------------------
    def subscribe(self, conn: Connection, symbol: str, exchange: str, mode: Mode) -> TopicState:
        bus_topic = topics.bus_topic(exchange, symbol, mode)
        state = self.topics.get(bus_topic)
        if state is None:
            state = TopicState(bus_topic, symbol, exchange, mode, self.directory.broker(exchange))
            self.topics[bus_topic] = state
            self._bus_subscribe(bus_topic)
        if conn not in state.subscribers:
            state.subscribers[conn] = None
            if conn.paused:
                state.slow.add(conn)
            else:
                state.appenders.append(conn.append)
        return state

    def unsubscribe(self, conn: Connection, state: TopicState) -> None:
        if conn not in state.subscribers:
            return
        del state.subscribers[conn]
        if conn in state.slow:
            state.slow.discard(conn)
        else:
            state.appenders.remove(conn.append)
        conn.conflated.pop(state, None)
        if not state.subscribers:
            del self.topics[state.bus_topic]
            self._bus_unsubscribe(state.bus_topic)

    def set_paused(self, conn: Connection, paused: bool) -> None:
        for state in conn.topics.values():
            if paused:
                state.appenders.remove(conn.append)
                state.slow.add(conn)
            else:
                state.slow.discard(conn)
                state.appenders.append(conn.append)

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
            if topic[:1] == b"#":
                self._on_control(topic, data)
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
            for conn in state.slow:
                pending = conn.conflated
                if state in pending:
                    conflated += 1
                pending[state] = frame
            self.metrics.conflated += conflated
        self.dirty.update(state.subscribers)
        self.metrics.messages_out += len(state.subscribers)

    def flush(self) -> None:
        """End of a bus drain: one write per connection that got frames."""
        count = self._batch_count
        if count:
            self.metrics.bus_messages += count
            self._batch_count = 0
        dirty = self.dirty
        if dirty:
            self.dirty = set()
            for conn in dirty:
                conn.flush()
            if count:
                self.metrics.tick_to_send.observe(time.perf_counter() - self._batch_started, count)

    def _on_control(self, topic: bytes, data: bytes) -> None:
        try:
            payload = _decode(data)
        except msgspec.DecodeError:
            self.metrics.errors["BUS_CONTROL"] += 1
            log.warning("bus: undecodable control message on %r", topic[:60])
            return
        if not isinstance(payload, dict):
            return
        if topic.startswith(topics.STATUS_PREFIX):
            broker = topic[len(topics.STATUS_PREFIX) :].decode(errors="replace")
            self.directory.status[broker] = payload
            self.directory.status_seen[broker] = time.monotonic()
        elif topic.startswith(topics.INSTRUMENTS_PREFIX):
            changed = set(self.directory.update(payload))
            if changed:
                for state in self.topics.values():
                    if state.exchange in changed:
                        state.set_broker(self.directory.broker(state.exchange))
        elif topic.startswith(topics.REJECT_PREFIX):
            rejected = self.topics.get(topic[len(topics.REJECT_PREFIX) :])
            if rejected is not None and self.on_reject is not None:
                self.on_reject(rejected, str(payload.get("code", "")), str(payload.get("message", "")))
