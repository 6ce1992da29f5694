"""The candle service: candles built once per instrument and interval, published on the bus.

A bus participant with two sockets. Its XPUB (bound; proxies connect their SUB to it) learns which
``#candles|EXCHANGE|SYMBOL|INTERVAL`` topics someone wants; its SUB (connected to the feeds) holds
the instrument's Quote topic only while at least one interval of that instrument is wanted. Every
tick updates the instrument's builders (candles.py): a completed candle is published at once, the
forming one at most every `conflate` seconds while it changes. The clock (`clock`, epoch seconds)
also completes candles when their interval ends without a tick; it is injectable for tests.

On each subscription the service publishes the topic's history as snapshot frames: the last
`history` completed candles (from the tick store when it holds the instrument's day, else those
this service has built since it started), then the forming candle. The proxy hands those only to
the clients that are waiting for history (hub.py).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import msgspec
import zmq

from openalgo_proxy import topics
from openalgo_proxy.bus import SNAPSHOT
from openalgo_proxy.bus_service import BusService
from openalgo_proxy.history.candles import Candle, CandleBuilder, TickPoint
from openalgo_proxy.history.query import completed_candles, ist_text
from openalgo_proxy.history.sessions import DAY_MS, TradingSession, interval_ms, ist_midnight, session_of
from openalgo_proxy.model import Mode

log = logging.getLogger(__name__)


class CandleData(msgspec.Struct, gc=False):
    """The `data` object of a candle message."""

    time: str  # the candle's start, ISO 8601 in IST
    start: int  # epoch ms
    end: int  # epoch ms, exclusive
    open: float
    high: float
    low: float
    close: float
    volume: int
    oi: int
    completed: bool


class _TickFields(msgspec.Struct, gc=False):
    ltp: float = 0.0
    ltt: int = 0
    volume: int = 0
    oi: int = 0


_encode = msgspec.json.Encoder().encode
_decode_tick = msgspec.json.Decoder(_TickFields).decode


def encode_candle(candle: Candle) -> bytes:
    return _encode(
        CandleData(
            ist_text(candle.start),
            candle.start,
            candle.end,
            candle.open,
            candle.high,
            candle.low,
            candle.close,
            candle.volume,
            candle.oi,
            candle.completed,
        )
    )


@dataclass(slots=True)
class _Series:
    """One wanted (instrument, interval)."""

    topic: bytes
    builder: CandleBuilder
    seq: int
    dirty: bool = False
    completed: collections.deque[Candle] = field(default_factory=collections.deque)


class CandleService(BusService):
    label = "candles"

    def __init__(
        self,
        bind: str,
        feeds: Iterable[str],
        *,
        store_dir: str | None = None,
        history: int = 100,
        conflate: float = 0.25,
        clock: Callable[[], float] = time.time,
        session_for: Callable[[str], TradingSession] = session_of,
        ctx: zmq.Context[zmq.Socket[bytes]] | None = None,
    ) -> None:
        super().__init__(bind, feeds, conflate, clock, ctx)
        self.store_dir = store_dir
        self.history = history
        self.session_for = session_for
        self.series: dict[bytes, _Series] = {}
        self._memory: dict[bytes, collections.deque[Candle]] = {}  # completed candles of released series too
        self._by_instrument: dict[tuple[str, str], list[_Series]] = {}
        self.tick_topics: set[bytes] = set()  # Quote topics held on the feeds right now

    # -- who wants what ---------------------------------------------------------------------------
    def on_subscription(self, subscribe: bool, topic: bytes) -> None:
        if not topic.startswith(topics.CANDLES_PREFIX):
            return
        try:
            key = topics.parse_candle_topic(topic)
        except ValueError:
            log.warning("candle service: ignoring malformed subscription %r", topic[:80])
            return
        instrument = (key.exchange, key.symbol)
        if not subscribe:
            series = self.series.pop(topic, None)
            if series is not None:
                self._memory[topic] = series.completed
                siblings = self._by_instrument.get(instrument, [])
                siblings.remove(series)
                if not siblings:
                    del self._by_instrument[instrument]
                    tick_topic = topics.bus_topic(key.exchange, key.symbol, Mode.QUOTE)
                    self.tick_topics.discard(tick_topic)
                    if self.subscriber is not None:
                        self.subscriber.unsubscribe(tick_topic)
            return
        series = self.series.get(topic)
        if series is None:
            builder = CandleBuilder(interval_ms(key.interval), self.session_for(key.exchange))
            remembered = self._memory.pop(topic, collections.deque(maxlen=self.history))
            series = _Series(topic, builder, self._seq_base, completed=remembered)
            self.series[topic] = series
            self._by_instrument.setdefault(instrument, []).append(series)
            tick_topic = topics.bus_topic(key.exchange, key.symbol, Mode.QUOTE)
            if tick_topic not in self.tick_topics and self.subscriber is not None:
                self.tick_topics.add(tick_topic)
                self.subscriber.subscribe(tick_topic)
        asyncio.get_running_loop().create_task(self._send_history(series, key), name="candles-history")

    async def _send_history(self, series: _Series, key: topics.CandleKey) -> None:
        candles = list(series.completed)
        if self.store_dir is not None:
            now = int(self.clock() * 1000)
            start = ist_midnight(now) - (DAY_MS if key.interval == "1d" else 0) * 30
            try:
                recorded = await asyncio.to_thread(
                    completed_candles, self.store_dir, key.exchange, key.symbol, key.interval, start, now + 1, now
                )
            except (OSError, ValueError) as exc:
                log.warning("candle service: could not read recorded history of %s: %s", series.topic.decode(), exc)
                recorded = []
            if recorded:
                newer = [c for c in candles if c.start > recorded[-1].start]
                candles = recorded + newer
        publisher = self.publisher
        if publisher is None or self.series.get(series.topic) is not series:
            return
        for candle in candles[-self.history :]:
            series.seq += 1
            publisher.publish_snapshot(series.topic, series.seq, encode_candle(candle))
        forming = series.builder.forming
        if forming is not None:
            series.seq += 1
            publisher.publish_snapshot(series.topic, series.seq, encode_candle(forming))

    # -- ticks in, candles out --------------------------------------------------------------------
    def on_frame(self, parts: list[bytes]) -> None:
        if len(parts) != 3 and (len(parts) != 4 or parts[3] != SNAPSHOT):
            return
        try:
            key = topics.parse_bus_topic(parts[0])
        except ValueError:
            return
        targets = self._by_instrument.get((key.exchange, key.symbol))
        if not targets:
            return
        try:
            fields = _decode_tick(parts[2])
        except msgspec.DecodeError:
            log.warning("candle service: undecodable tick on %r", parts[0][:80])
            return
        point = TickPoint(fields.ltt, fields.ltp, fields.volume, fields.oi)
        for series in targets:
            completed, forming = series.builder.add(point)
            if completed is not None:
                self._publish_completed(series, completed)
            if forming is not None:
                series.dirty = True

    def _publish_completed(self, series: _Series, candle: Candle) -> None:
        series.completed.append(candle)
        if self.publisher is not None:
            series.seq += 1
            self.publisher.publish(series.topic, series.seq, encode_candle(candle))

    def beat(self) -> None:
        """Publish changed forming candles; complete those whose interval has ended."""
        now = int(self.clock() * 1000)
        publisher = self.publisher
        for series in self.series.values():
            done = series.builder.advance(now)
            if done is not None:
                series.dirty = False
                self._publish_completed(series, done)
            elif series.dirty and publisher is not None:
                series.dirty = False
                forming = series.builder.forming
                if forming is not None:
                    series.seq += 1
                    publisher.publish(series.topic, series.seq, encode_candle(forming))
