from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openalgo_proxy import topics
from openalgo_proxy.model import Mode, instrument_kind


def test_bus_topic_round_trip() -> None:
    topic = topics.bus_topic("NSE", "RELIANCE", Mode.QUOTE)
    assert topic == b"NSE|RELIANCE|2"
    assert topics.parse_bus_topic(topic) == ("NSE", "RELIANCE", Mode.QUOTE, topics.STANDARD_DEPTH)
    assert topics.parse_bus_topic(b"NSE|M&M|3").symbol == "M&M"


@pytest.mark.parametrize(
    "bad", [b"NSE|RELIANCE", b"NSE|RELIANCE|22", b"NSE|RELIANCE|x", b"|X|1", b"\xff|X|1", b"A|B|C|1"]
)
def test_parse_rejects_non_market_topics(bad: bytes) -> None:
    with pytest.raises(ValueError):
        topics.parse_bus_topic(bad)


def test_deeper_book_topics_round_trip() -> None:
    for depth in topics.DEEPER_DEPTHS:
        topic = topics.bus_topic("NFO", "NIFTY30DEC25FUT", Mode.DEPTH, depth)
        assert topic == f"NFO|NIFTY30DEC25FUT|D{depth:03d}".encode()
        assert topics.parse_bus_topic(topic) == ("NFO", "NIFTY30DEC25FUT", Mode.DEPTH, depth)
    assert topics.bus_topic("NSE", "SBIN", Mode.DEPTH, topics.STANDARD_DEPTH) == b"NSE|SBIN|3"


@pytest.mark.parametrize(("mode", "depth"), [(Mode.QUOTE, 20), (Mode.DEPTH, 10), (Mode.DEPTH, 0), (Mode.LTP, 200)])
def test_deeper_books_exist_only_for_depth_mode_and_known_depths(mode: Mode, depth: int) -> None:
    with pytest.raises(ValueError):
        topics.bus_topic("NSE", "SBIN", mode, depth)


@pytest.mark.parametrize("bad", [b"NSE|SBIN|D20", b"NSE|SBIN|D010", b"NSE|SBIN|D0200", b"NSE|SBIN|d020", b"NSE|SBIN|4"])
def test_parse_rejects_malformed_depth_topics(bad: bytes) -> None:
    with pytest.raises(ValueError):
        topics.parse_bus_topic(bad)


def test_no_market_topic_of_one_symbol_is_a_prefix_of_another() -> None:
    """Every mode and every depth of a symbol: ZeroMQ prefix matching delivers each topic alone."""
    every = [topics.bus_topic("NSE", "SBIN", mode) for mode in Mode]
    every += [topics.bus_topic("NSE", "SBIN", Mode.DEPTH, depth) for depth in topics.DEEPER_DEPTHS]
    for a in every:
        for b in every:
            assert a == b or not b.startswith(a), (a, b)


def test_separator_cannot_appear_in_names() -> None:
    with pytest.raises(ValueError):
        topics.bus_topic("NSE", "A|B", 1)
    with pytest.raises(ValueError):
        topics.bus_topic("#status", "A", 1)


def test_prefix_matching_cannot_cross_talk() -> None:
    # a subscription to one symbol's topic must not be a prefix of another symbol's topic
    a = topics.bus_topic("NSE", "SBI", Mode.LTP)
    b = topics.bus_topic("NSE", "SBIN", Mode.LTP)
    assert not b.startswith(a) and not a.startswith(b)


@pytest.mark.parametrize(
    ("value", "mode"),
    [
        (1, Mode.LTP),
        (2, Mode.QUOTE),
        (3, Mode.DEPTH),
        ("ltp", Mode.LTP),
        ("Quote", Mode.QUOTE),
        ("DEPTH", Mode.DEPTH),
        ("2", Mode.QUOTE),
    ],
)
def test_mode_parse_accepts_numbers_and_names(value: object, mode: Mode) -> None:
    assert Mode.parse(value) is mode


@pytest.mark.parametrize("value", [0, 4, "snap", None, True, 2.5, [1]])
def test_mode_parse_rejects_others(value: object) -> None:
    with pytest.raises(ValueError):
        Mode.parse(value)


@pytest.mark.parametrize("symbol", ["M&M", "BAJAJ-AUTO", "NIFTY 50", "L&TFH-EQ", "NIFTY 26DEC 24000 CE"])
def test_bus_topic_round_trips_symbols_with_punctuation_and_spaces(symbol: str) -> None:
    for mode in Mode:
        assert topics.parse_bus_topic(topics.bus_topic("NSE", symbol, mode))[:3] == ("NSE", symbol, mode)


@pytest.mark.parametrize("account", ["alice", "alice_01", "A B", "M&M-1"])
def test_orders_topic_round_trip(account: str) -> None:
    topic = topics.orders_topic("angel", account)
    assert topic == b"#orders|angel|" + account.encode()
    assert topics.parse_orders_topic(topic) == ("angel", account)
    assert topic.startswith(topics.ORDERS_PREFIX)


@pytest.mark.parametrize(("broker", "account"), [("angel", "a|b"), ("", "x"), ("angel", ""), ("#x", "y")])
def test_orders_topic_refuses_bad_parts(broker: str, account: str) -> None:
    with pytest.raises(ValueError):
        topics.orders_topic(broker, account)


@pytest.mark.parametrize(
    "bad", [b"#orders|angel", b"#orders|angel|a|b", b"#status|angel", b"#orders|\xff|a", b"#orders||a"]
)
def test_parse_orders_topic_rejects_others(bad: bytes) -> None:
    with pytest.raises(ValueError):
        topics.parse_orders_topic(bad)


@pytest.mark.parametrize("broker", ["angel", "zerodha", "my feed-1", "M&M"])
def test_broker_control_topics_round_trip(broker: str) -> None:
    assert topics.status_topic(broker) == b"#status|" + broker.encode()
    assert topics.parse_status_topic(topics.status_topic(broker)) == broker
    assert topics.instruments_topic(broker) == b"#instruments|" + broker.encode()
    assert topics.parse_instruments_topic(topics.instruments_topic(broker)) == broker
    for topic in (topics.status_topic(broker), topics.instruments_topic(broker), topics.orders_topic(broker, "a")):
        assert topics.is_control(topic)


@pytest.mark.parametrize("bad", [b"#status|", b"#status|a|b", b"#status|\xff", b"#instruments|x", b"NSE|SBIN|1"])
def test_parse_status_topic_rejects_others(bad: bytes) -> None:
    with pytest.raises(ValueError):
        topics.parse_status_topic(bad)


@pytest.mark.parametrize("symbol", ["SBIN", "M&M", "NIFTY 50", "BAJAJ-AUTO"])
def test_reject_topic_names_the_market_data_topic(symbol: str) -> None:
    topic = topics.bus_topic("NSE", symbol, Mode.DEPTH)
    reject = topics.reject_topic(topic)
    assert reject.startswith(topics.REJECT_PREFIX) and topics.is_control(reject)
    assert topics.parse_reject_topic(reject) == topic
    assert not topics.is_control(topic)
    with pytest.raises(ValueError):
        topics.parse_reject_topic(topic)


def test_control_subscriptions_cover_prefixes_both_ways() -> None:
    # what a feed answers: an empty subscription (everything), the bare prefix, or its own topic
    for subscription in (b"", b"#", b"#status|", b"#status|angel"):
        assert topics.covers(subscription, topics.STATUS_PREFIX)
    assert not topics.covers(b"#instruments|", topics.STATUS_PREFIX)
    assert not topics.covers(b"NSE|SBIN|1", topics.STATUS_PREFIX)
    assert topics.is_control(b"")


def test_instrument_name() -> None:
    assert topics.instrument_name("NSE", "M&M") == "NSE|M&M"
    assert topics.bus_topic("NSE", "M&M", Mode.LTP).startswith(topics.instrument_name("NSE", "M&M").encode())


@pytest.mark.parametrize(
    ("broker_type", "symbol", "exchange", "kind"),
    [
        ("", "RELIANCE", "NSE", "EQ"),
        ("EQ", "INFY", "BSE", "EQ"),
        ("AMXIDX", "NIFTY", "NSE_INDEX", "INDEX"),
        ("EQ", "NIFTY", "NSE_INDEX", "INDEX"),
        ("FUTIDX", "NIFTY30DEC25FUT", "NFO", "FUT"),
        ("FUTCOM", "CRUDEOIL19DEC25FUT", "MCX", "FUT"),
        ("OPTIDX", "NIFTY30DEC2526000CE", "NFO", "CE"),
        ("PE", "NIFTY09DEC2525950.5PE", "NFO", "PE"),
        ("OPTFUT", "GOLD", "MCX", "OPTFUT"),
    ],
)
def test_instrument_kind_is_one_vocabulary(broker_type: str, symbol: str, exchange: str, kind: str) -> None:
    assert instrument_kind(broker_type, symbol, exchange) == kind


def _streams() -> list[tuple[Mode, int]]:
    return [(mode, topics.STANDARD_DEPTH) for mode in Mode] + [(Mode.DEPTH, d) for d in topics.DEEPER_DEPTHS]


@settings(max_examples=300, deadline=None)
@given(
    names=st.lists(
        st.tuples(
            st.sampled_from(["NSE", "NFO", "BSE", "NSE_INDEX"]),
            st.text(st.characters(exclude_characters="|\x00", exclude_categories=["Cs"]), min_size=1, max_size=12),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_topics_of_any_names_and_streams_round_trip_and_never_prefix_each_other(names: list[tuple[str, str]]) -> None:
    built = {}
    for exchange, symbol in names:
        if not topics.valid_name(symbol):
            continue
        for mode, depth in _streams():
            topic = topics.bus_topic(exchange, symbol, mode, depth)
            assert topics.parse_bus_topic(topic) == (exchange, symbol, mode, depth)
            built[topic] = (exchange, symbol, mode, depth)
    for a in built:
        for b in built:
            assert a == b or not b.startswith(a), (a, b)
