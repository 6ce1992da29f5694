"""The proxy's directory and the hub's control path, fed the typed control messages a feed publishes."""

from __future__ import annotations

from openalgo_proxy import control, topics
from openalgo_proxy.bus import SEQ
from openalgo_proxy.errors import ErrorCode
from openalgo_proxy.model import Mode
from openalgo_proxy.proxy.directory import STATUS_STALE_AFTER, Directory
from openalgo_proxy.proxy.metrics import ProxyMetrics
from tests.unit.proxy_support import make_hub, outbox


def status(broker: str, state: str = control.FeedState.CONNECTED) -> control.FeedStatus:
    return control.FeedStatus(
        broker=broker,
        state=state,
        connections=1,
        subscriptions=0,
        topics=0,
        reconnects=0,
        last_tick_age=-1.0,
        exchanges=["NSE"],
        time=1,
    )


def test_directory_answers_from_what_feeds_announced() -> None:
    directory = Directory("fallback")
    problem = directory.check("NSE", "SBIN")
    assert problem is not None and problem[0] is ErrorCode.BROKER_UNAVAILABLE
    changed = directory.update(control.InstrumentDirectory(broker="angel", symbols={"NSE": ["SBIN", "M&M"]}))
    assert changed == ["NSE"] and directory.broker("NSE") == "angel"
    assert directory.check("NSE", "M&M") is None
    problem = directory.check("NSE", "INFY")
    assert problem is not None and problem[0] is ErrorCode.SYMBOL_NOT_FOUND
    assert directory.check("BSE", "SBIN") is not None
    assert directory.update(control.InstrumentDirectory(broker="angel", symbols={"NSE": ["SBIN"]})) == []
    assert directory.broker("MCX") == "fallback"
    directory.update_status("zerodha", status("zerodha"), 5.0)
    assert directory.brokers() == ["angel", "zerodha"] and directory.status_seen["zerodha"] == 5.0


def test_hub_reads_typed_statuses_and_counts_bad_ones() -> None:
    metrics = ProxyMetrics()
    hub, _ = make_hub(metrics)
    assert not hub.upstream_connected()
    hub.on_bus_message(
        [topics.status_topic("angel"), SEQ.pack(1), control.encode_status(status("angel", "connecting"))]
    )
    assert not hub.upstream_connected() and hub.directory.status["angel"].state == "connecting"
    hub.on_bus_message([topics.status_topic("angel"), SEQ.pack(2), control.encode_status(status("angel"))])
    assert hub.upstream_connected()
    hub.on_bus_message([topics.status_topic("angel"), SEQ.pack(3), b'{"broker":"angel"}'])  # keys missing
    hub.on_bus_message([b"#status|", SEQ.pack(4), control.encode_status(status("x"))])  # no broker in topic
    assert metrics.errors["BUS_CONTROL"] == 2
    assert hub.upstream_connected()  # the last good status stands


def test_hub_moves_the_broker_of_an_exchange_and_relays_rejects() -> None:
    hub, bus = make_hub()
    box, _ = outbox()
    told: list[tuple[bytes, str, str]] = []
    box.on_reject = lambda state, code, message: told.append((state.bus_topic, code, message))
    state = hub.subscribe(box, "INFY", "NSE", Mode.LTP)
    assert b'"broker":"simulator"' in state.prefix
    directory = control.InstrumentDirectory(broker="angel", exchanges=["NSE"], symbols={"NSE": ["INFY"]})
    hub.on_bus_message([topics.instruments_topic("angel"), SEQ.pack(2), control.encode_directory(directory)])
    assert hub.directory.broker("NSE") == "angel" and b'"broker":"angel"' in state.prefix
    reject = control.encode_reject(ErrorCode.LIMIT_EXCEEDED, "cap")
    hub.on_bus_message([topics.reject_topic(state.bus_topic), SEQ.pack(3), reject])
    assert told == [(b"NSE|INFY|1", "LIMIT_EXCEEDED", "cap")]
    assert state.bus_topic not in hub.topics and bus.unsubscribed == [b"NSE|INFY|1"]


def test_a_feed_whose_status_went_stale_is_not_connected() -> None:
    directory = Directory()
    directory.update_status("angel", status("angel"), 100.0)
    assert directory.connected_feeds(100.0 + STATUS_STALE_AFTER - 0.1) == ["angel"]
    assert directory.connected_feeds(100.0 + STATUS_STALE_AFTER + 0.1) == []  # its process died: not connected
