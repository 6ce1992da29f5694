"""What a feed streams, per bus topic: pure state, no socket, no clock.

Each wanted topic (``EXCHANGE|SYMBOL|MODE``, or ``EXCHANGE|SYMBOL|Dnnn`` for a book deeper than five
levels) keeps its seq and the last data published on it, so a
proxy that subscribes again is answered with a snapshot. Seq rises per topic for the whole feed run,
however often the topic is released and wanted again. The table also answers what the broker must
carry (instrument -> richest wanted mode, and the deepest wanted book) and which topics one tick
fills: a five-level tick fills the one-digit modes, a deeper book fills its own depth's topics (and
shallower deep topics, cut from it), never the reverse. The feed's bus
shell (`shell.py`) turns bus subscriptions into calls here and publishes what comes back.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import msgspec

from openalgo_proxy.model import DEPTH_LEVELS, Instrument, Mode, Tick
from openalgo_proxy.payload import encode_data
from openalgo_proxy.topics import TopicKey

#: one stream of an instrument: (mode, levels per side); (DEPTH, 20) is the 20-level book's topic
Stream = tuple[Mode, int]


class TopicState:
    """One wanted bus topic: its last seq and data (``b""`` until the first tick)."""

    __slots__ = ("data", "depth", "instrument", "mode", "seq", "topic")

    def __init__(self, topic: bytes, instrument: Instrument, mode: Mode, seq: int, depth: int = DEPTH_LEVELS) -> None:
        self.topic = topic
        self.instrument = instrument
        self.mode = mode
        self.depth = depth
        self.seq = seq
        self.data = b""


class TopicTable:
    """Every topic some proxy wants, indexed by topic and by instrument.

    `seq_base` is the run's first seq minus one (see `bus.run_seq_base`). A topic released while its
    instrument is still streamed upstream keeps its (seq, data) until the next upstream sync, so a
    quick re-subscribe replays the last value instead of waiting for a tick that may not come; a
    newly wanted mode of an instrument already streamed is filled from its last tick, for the same
    reason.
    """

    def __init__(self, seq_base: int) -> None:
        self.seq_base = seq_base
        self._topics: dict[bytes, TopicState] = {}
        # (exchange, symbol) -> {(mode, depth): state}
        self._by_instrument: dict[tuple[str, str], dict[Stream, TopicState]] = {}
        self._released: dict[bytes, tuple[int, bytes]] = {}
        # last seq of every topic streamed in this run (bounded by the directory x modes)
        self._last_seq: dict[bytes, int] = {}
        # last tick of every wanted instrument per book depth, until the upstream sync after it is no
        # longer wanted
        self._last_tick: dict[tuple[str, str, int], Tick] = {}

    def __len__(self) -> int:
        return len(self._topics)

    def __contains__(self, topic: bytes) -> bool:
        return topic in self._topics

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._topics)

    def __getitem__(self, topic: bytes) -> TopicState:
        return self._topics[topic]

    def get(self, topic: bytes) -> TopicState | None:
        return self._topics.get(topic)

    def add(self, topic: bytes, key: TopicKey, instrument: Instrument, streamed: bool) -> TopicState:
        """Start wanting `topic`; `streamed` says whether the instrument is carried upstream right now.
        The returned state has data (a snapshot to publish) only when its instrument is streamed and
        either the topic was released a moment ago (its last frame, same seq) or the instrument's
        last tick can fill this mode (a new frame, next seq)."""
        state = TopicState(topic, instrument, key.mode, self._last_seq.get(topic, self.seq_base), key.depth)
        self._topics[topic] = state
        self._by_instrument.setdefault((key.exchange, key.symbol), {})[(key.mode, key.depth)] = state
        released = self._released.pop(topic, None)
        if not streamed:
            return state
        last = self._last_tick.get((key.exchange, key.symbol, key.depth))
        if released is not None:
            state.seq, state.data = released
        elif last is not None and last.mode >= key.mode:
            state.seq += 1
            state.data = encode_data(last, key.mode)
        return state

    def remove(self, topic: bytes, key: TopicKey) -> bool:
        """Stop wanting `topic`; False if it was not wanted."""
        state = self._topics.pop(topic, None)
        if state is None:
            return False
        self._last_seq[topic] = state.seq
        if state.data:
            self._released[topic] = (state.seq, state.data)
        modes = self._by_instrument.get((key.exchange, key.symbol))
        if modes is not None:
            modes.pop((key.mode, key.depth), None)
            if not modes:
                del self._by_instrument[(key.exchange, key.symbol)]
        return True

    def drop_instrument(self, instrument: Instrument, depth: int = DEPTH_LEVELS) -> list[TopicState]:
        """Forget every mode of `instrument` (the broker refused it), or with a deeper `depth` only
        that book's topics (the broker refused that book); returns the topics dropped."""
        key = (instrument.exchange, instrument.symbol)
        if depth != DEPTH_LEVELS:
            streams = self._by_instrument.get(key, {})
            dropped = [streams.pop(stream) for stream in [s for s in streams if s[1] == depth]]
            if not streams:
                self._by_instrument.pop(key, None)
            self._last_tick.pop((*key, depth), None)
        else:
            dropped = list(self._by_instrument.pop(key, {}).values())
            for last in [last for last in self._last_tick if last[:2] == key]:
                del self._last_tick[last]
        for state in dropped:
            self._topics.pop(state.topic, None)
            self._last_seq[state.topic] = state.seq
        return dropped

    def synced(self) -> None:
        """The upstream now carries exactly `wanted()`: released topics' instruments are gone or
        re-wanted, and last ticks of instruments nobody wants are forgotten."""
        self._released.clear()
        for key in [key for key in self._last_tick if key[:2] not in self._by_instrument]:
            del self._last_tick[key]

    def wanted(self) -> dict[Instrument, Mode]:
        """Instrument -> richest mode any proxy wants (a deeper book counts as Depth)."""
        result: dict[Instrument, Mode] = {}
        for state in self._topics.values():
            current = result.get(state.instrument)
            if current is None or state.mode > current:
                result[state.instrument] = state.mode
        return result

    def wanted_depth(self) -> dict[Instrument, int]:
        """Instrument -> deepest book (> 5 levels) any proxy wants; shallower deep topics are cut from it."""
        result: dict[Instrument, int] = {}
        for state in self._topics.values():
            if state.depth > result.get(state.instrument, DEPTH_LEVELS):
                result[state.instrument] = state.depth
        return result

    def modes_of(self, exchange: str, symbol: str) -> Mapping[Stream, TopicState] | None:
        return self._by_instrument.get((exchange, symbol))

    def apply(self, tick: Tick) -> list[TopicState]:
        """The topics `tick` fills (every wanted mode up to the tick's own), each with its seq
        advanced and its data set; empty if nobody wants the instrument."""
        name = (tick.exchange, tick.symbol)
        modes = self._by_instrument.get(name)
        if not modes:
            return []
        book = tick.depth
        self._last_tick[(*name, book)] = tick
        filled = []
        for (mode, depth), state in modes.items():
            if book == DEPTH_LEVELS:
                if depth != DEPTH_LEVELS or mode > tick.mode:
                    continue  # a poorer packet never fills a richer stream; deeper books have their own
                state.data = encode_data(tick, mode)
            elif depth == book:
                state.data = encode_data(tick, mode)
            elif DEPTH_LEVELS < depth < book:  # a shallower deep book, cut from the deeper one
                cut = msgspec.structs.replace(tick, depth=depth)
                self._last_tick[(*name, depth)] = cut
                state.data = encode_data(cut, mode)
            else:
                continue
            state.seq += 1
            filled.append(state)
        return filled
