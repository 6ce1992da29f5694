"""The feed's topic table, driven without a bus: wanting, releasing, replay, richest mode, tick fill."""

from __future__ import annotations

import json

from openalgo_proxy import topics
from openalgo_proxy.feed.topic_table import TopicTable
from openalgo_proxy.model import Instrument, Mode, Tick

BASE = 1_000 << 11
SBIN = Instrument("SBIN", "NSE", "3045")
MM = Instrument("M&M", "NSE", "2031")


def want(table: TopicTable, inst: Instrument, mode: Mode, streamed: bool = False) -> bytes:
    topic = topics.bus_topic(inst.exchange, inst.symbol, mode)
    table.add(topic, topics.parse_bus_topic(topic), inst, streamed)
    return topic


def release(table: TopicTable, topic: bytes) -> bool:
    return table.remove(topic, topics.parse_bus_topic(topic))


def tick(inst: Instrument, mode: Mode, ltp: float = 100.0) -> Tick:
    return Tick(exchange=inst.exchange, symbol=inst.symbol, mode=mode, ltp=ltp)


def test_wanted_is_the_richest_mode_per_instrument() -> None:
    table = TopicTable(BASE)
    assert table.wanted() == {}
    ltp = want(table, SBIN, Mode.LTP)
    want(table, SBIN, Mode.DEPTH)
    want(table, MM, Mode.QUOTE)
    assert table.wanted() == {SBIN: Mode.DEPTH, MM: Mode.QUOTE}
    assert len(table) == 3 and ltp in table and set(table) == {ltp, b"NSE|SBIN|3", b"NSE|M&M|2"}
    assert release(table, b"NSE|SBIN|3")
    assert table.wanted() == {SBIN: Mode.LTP, MM: Mode.QUOTE}
    assert release(table, ltp) and not release(table, ltp)
    assert table.wanted() == {MM: Mode.QUOTE} and table.modes_of("NSE", "SBIN") is None


def test_a_tick_fills_every_mode_up_to_its_own_with_rising_seq() -> None:
    table = TopicTable(BASE)
    for mode in Mode:
        want(table, SBIN, mode)
    filled = table.apply(tick(SBIN, Mode.QUOTE, 101.5))
    assert sorted(s.mode for s in filled) == [Mode.LTP, Mode.QUOTE]  # a quote never fills depth
    assert all(s.seq == BASE + 1 for s in filled)
    assert json.loads(table[b"NSE|SBIN|2"].data)["ltp"] == 101.5
    assert table[b"NSE|SBIN|3"].data == b"" and table[b"NSE|SBIN|3"].seq == BASE
    filled = table.apply(tick(SBIN, Mode.DEPTH, 102.0))
    assert {s.topic: s.seq for s in filled} == {
        b"NSE|SBIN|1": BASE + 2,
        b"NSE|SBIN|2": BASE + 2,
        b"NSE|SBIN|3": BASE + 1,
    }
    assert table.apply(tick(MM, Mode.DEPTH)) == []  # nobody wants it


def test_quick_resubscribe_replays_the_last_value_while_streamed() -> None:
    table = TopicTable(BASE)
    topic = want(table, SBIN, Mode.LTP)
    table.apply(tick(SBIN, Mode.LTP, 99.0))
    table.apply(tick(SBIN, Mode.LTP, 99.5))
    release(table, topic)
    state = table.add(topic, topics.parse_bus_topic(topic), SBIN, streamed=True)
    assert state.seq == BASE + 2 and json.loads(state.data)["ltp"] == 99.5
    # seq continues from there, it does not restart
    assert table.apply(tick(SBIN, Mode.LTP))[0].seq == BASE + 3


def test_no_replay_once_the_upstream_let_go_or_when_not_streamed() -> None:
    table = TopicTable(BASE)
    topic = want(table, SBIN, Mode.LTP)
    table.apply(tick(SBIN, Mode.LTP))
    release(table, topic)
    state = table.add(topic, topics.parse_bus_topic(topic), SBIN, streamed=False)
    assert state.data == b"" and state.seq == BASE + 1  # nothing replayed; the seq run goes on
    release(table, topic)
    table.synced()  # the broker no longer carries it: the last value is forgotten
    state = table.add(topic, topics.parse_bus_topic(topic), SBIN, streamed=True)
    assert state.data == b""


def test_a_topic_released_before_its_first_tick_keeps_nothing() -> None:
    table = TopicTable(BASE)
    topic = want(table, SBIN, Mode.LTP)
    release(table, topic)
    assert table.add(topic, topics.parse_bus_topic(topic), SBIN, streamed=True).data == b""


def test_drop_instrument_forgets_every_mode() -> None:
    table = TopicTable(BASE)
    want(table, SBIN, Mode.LTP)
    want(table, SBIN, Mode.QUOTE)
    keep = want(table, MM, Mode.LTP)
    dropped = table.drop_instrument(SBIN)
    assert sorted(s.topic for s in dropped) == [b"NSE|SBIN|1", b"NSE|SBIN|2"]
    assert set(table) == {keep} and table.wanted() == {MM: Mode.LTP}
    assert table.drop_instrument(SBIN) == []
    assert table.apply(tick(SBIN, Mode.DEPTH)) == []


def test_seq_keeps_rising_when_a_topic_is_released_and_wanted_again() -> None:
    table = TopicTable(BASE)
    topic = want(table, SBIN, Mode.LTP)
    table.apply(tick(SBIN, Mode.LTP))
    release(table, topic)
    table.synced()  # gone upstream: no replay, but the seq is remembered
    state = table.add(topic, topics.parse_bus_topic(topic), SBIN, streamed=False)
    assert state.seq == BASE + 1 and state.data == b""
    assert table.apply(tick(SBIN, Mode.LTP))[0].seq == BASE + 2
    table.drop_instrument(SBIN)  # refused upstream: remembered too
    assert want(table, SBIN, Mode.LTP) and table[topic].seq == BASE + 2


def test_a_new_mode_of_a_streamed_instrument_is_filled_from_its_last_tick() -> None:
    table = TopicTable(BASE)
    want(table, SBIN, Mode.DEPTH)
    table.apply(tick(SBIN, Mode.DEPTH, 101.0))
    quote = b"NSE|SBIN|2"
    state = table.add(quote, topics.parse_bus_topic(quote), SBIN, streamed=True)
    assert state.seq == BASE + 1 and json.loads(state.data)["ltp"] == 101.0
    # a poorer last tick cannot fill a richer mode; nor can one of an instrument not streamed
    want(table, MM, Mode.LTP)
    table.apply(tick(MM, Mode.LTP))
    depth = b"NSE|M&M|3"
    assert table.add(depth, topics.parse_bus_topic(depth), MM, streamed=True).data == b""
    ltp = b"NSE|SBIN|1"
    assert table.add(ltp, topics.parse_bus_topic(ltp), SBIN, streamed=False).data == b""


def test_last_ticks_of_instruments_nobody_wants_are_forgotten_at_sync() -> None:
    table = TopicTable(BASE)
    topic = want(table, SBIN, Mode.QUOTE)
    table.apply(tick(SBIN, Mode.QUOTE))
    release(table, topic)
    table.synced()
    ltp = b"NSE|SBIN|1"
    assert table.add(ltp, topics.parse_bus_topic(ltp), SBIN, streamed=True).data == b""


def want_depth(table: TopicTable, inst: Instrument, depth: int, streamed: bool = False) -> bytes:
    topic = topics.bus_topic(inst.exchange, inst.symbol, Mode.DEPTH, depth)
    table.add(topic, topics.parse_bus_topic(topic), inst, streamed)
    return topic


def book(inst: Instrument, depth: int) -> Tick:
    from openalgo_proxy.model import DepthLevel

    levels = tuple(DepthLevel(100.0 - i * 0.05, 10 + i, 1) for i in range(depth))
    return Tick(inst.symbol, inst.exchange, Mode.DEPTH, 100.0, bids=levels, asks=levels, depth=depth)


def test_deeper_books_have_their_own_topics() -> None:
    table = TopicTable(BASE)
    five = want(table, SBIN, Mode.DEPTH)
    twenty = want_depth(table, SBIN, 20)
    assert table.wanted() == {SBIN: Mode.DEPTH} and table.wanted_depth() == {SBIN: 20}
    # a five-level tick fills only the five-level topic, a 20-level book only its own
    assert [s.topic for s in table.apply(tick(SBIN, Mode.DEPTH))] == [five]
    filled = table.apply(book(SBIN, 20))
    assert [s.topic for s in filled] == [twenty]
    assert len(json.loads(filled[0].data)["depth"]["buy"]) == 20


def test_a_shallower_deep_topic_is_cut_from_the_deepest_book() -> None:
    table = TopicTable(BASE)
    twenty = want_depth(table, SBIN, 20)
    deepest = want_depth(table, SBIN, 200)
    assert table.wanted_depth() == {SBIN: 200}
    filled = {s.topic: json.loads(s.data) for s in table.apply(book(SBIN, 200))}
    assert len(filled[twenty]["depth"]["sell"]) == 20 and len(filled[deepest]["depth"]["sell"]) == 200
    assert filled[twenty]["depth"]["sell"] == filled[deepest]["depth"]["sell"][:20]


def test_a_refused_deep_book_leaves_the_other_streams() -> None:
    table = TopicTable(BASE)
    five = want(table, SBIN, Mode.DEPTH)
    twenty = want_depth(table, SBIN, 20)
    deepest = want_depth(table, SBIN, 200)
    assert [s.topic for s in table.drop_instrument(SBIN, 200)] == [deepest]
    assert set(table) == {five, twenty} and table.wanted_depth() == {SBIN: 20}
