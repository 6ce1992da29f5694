"""The hub without sockets: sequence checks, conflation, bus subscriptions, the fan-out invariant."""

from __future__ import annotations

import json
import random

from openalgo_proxy import topics
from openalgo_proxy.bus import RUN_SHIFT, SEQ, SNAPSHOT
from openalgo_proxy.errors import ErrorCode
from openalgo_proxy.model import Mode
from openalgo_proxy.proxy.hub import Hub, TopicState
from openalgo_proxy.proxy.metrics import ProxyMetrics
from openalgo_proxy.proxy.outbox import Outbox
from tests.unit.proxy_support import INSTRUMENTS, Wire, make_hub, outbox, split_frames, tick

INFY = b"NSE|INFY|1"


def _seqs(wire: Wire) -> list[int]:
    return [json.loads(p)["seq"] for w in wire.writes for _, p in split_frames(w)]


def check_invariant(hub: Hub) -> None:
    """Per topic: subscribers = slow + owners of appenders, disjoint; slow = the paused outboxes."""
    for topic, state in hub.topics.items():
        assert state.subscribers, topic
        fast = [box for box in state.subscribers if box.append in state.appenders]
        assert len(state.appenders) == len(fast)
        assert set(fast).isdisjoint(state.slow)
        assert set(fast) | state.slow == set(state.subscribers)
        assert state.slow == {box for box in state.subscribers if box.paused}
        for box in state.subscribers:
            assert box.topics[topic] is state


def test_frames_carry_the_envelope_and_data_verbatim() -> None:
    hub, _ = make_hub()
    box, wire = outbox()
    hub.subscribe(box, "INFY", "NSE", Mode.LTP)
    tick(hub, INFY, 1, 12.5)
    hub.flush()
    (frame,) = split_frames(wire.writes[0])
    assert frame[0] == 1  # text
    assert json.loads(frame[1]) == {
        "type": "market_data",
        "topic": "INFY.NSE",
        "symbol": "INFY",
        "exchange": "NSE",
        "mode": 1,
        "broker": "simulator",
        "seq": 1,
        "data": {"ltp": 12.5},
    }


def test_seq_duplicate_gap_and_restart_are_counted() -> None:
    metrics = ProxyMetrics()
    hub, _ = make_hub(metrics)
    box, wire = outbox()
    hub.subscribe(box, "INFY", "NSE", Mode.LTP)
    for seq in (1, 2, 2, 5):
        tick(hub, INFY, seq)
    assert metrics.bus_duplicates == 1 and metrics.bus_gaps == 2 and metrics.bus_resets == 0
    tick(hub, INFY, 3)  # went backwards: a restarted feed
    assert metrics.bus_resets == 1
    tick(hub, INFY, 3 + (1 << RUN_SHIFT) * 1000)  # a new run's seq: a reset, not a gap
    assert metrics.bus_resets == 2 and metrics.bus_gaps == 2
    hub.flush()
    assert _seqs(wire) == [1, 2, 5, 3, 3 + (1 << RUN_SHIFT) * 1000]


def test_first_subscriber_subscribes_the_bus_and_the_last_unsubscribes() -> None:
    hub, bus = make_hub()
    a, _ = outbox()
    b, _ = outbox()
    first = hub.subscribe(a, "INFY", "NSE", Mode.LTP)
    assert hub.subscribe(b, "INFY", "NSE", Mode.LTP) is first
    assert hub.subscribe(a, "INFY", "NSE", Mode.LTP) is first  # twice: no change
    assert bus.subscribed == [INFY] and len(first.appenders) == 2
    hub.unsubscribe(a, first)
    hub.unsubscribe(a, first)  # not subscribed any more: no change
    assert bus.unsubscribed == [] and INFY in hub.topics
    hub.unsubscribe(b, first)
    assert bus.unsubscribed == [INFY] and not hub.topics
    again = hub.subscribe(a, "INFY", "NSE", Mode.LTP)
    assert again is not first and bus.subscribed == [INFY, INFY]


def test_paused_outbox_conflates_latest_per_topic_and_resume_writes_once() -> None:
    metrics = ProxyMetrics()
    hub, _ = make_hub(metrics)
    fast, fast_wire = outbox(metrics)
    slow, slow_wire = outbox(metrics)
    for box in (fast, slow):
        hub.subscribe(box, "INFY", "NSE", Mode.LTP)
        hub.subscribe(box, "TCS", "NSE", Mode.LTP)
    hub.set_paused(slow, True, 5.0)
    assert slow.paused and slow.paused_since == 5.0
    check_invariant(hub)
    for seq in (1, 2, 3):
        tick(hub, INFY, seq)
    tick(hub, b"NSE|TCS|1", 1)
    hub.flush()
    assert _seqs(fast_wire) == [1, 2, 3, 1] and len(fast_wire.writes) == 1  # one write per drain
    assert slow_wire.writes == [] and metrics.conflated == 2
    hub.set_paused(slow, False)
    assert len(slow_wire.writes) == 1 and sorted(_seqs(slow_wire)) == [1, 3]
    check_invariant(hub)
    tick(hub, INFY, 4)
    hub.flush()
    assert _seqs(slow_wire)[-1] == 4


def test_unsubscribing_a_paused_outbox_forgets_its_conflated_frame() -> None:
    hub, _ = make_hub()
    box, wire = outbox()
    state = hub.subscribe(box, "INFY", "NSE", Mode.LTP)
    hub.set_paused(box, True)
    tick(hub, INFY, 1)
    assert state in box.conflated
    hub.unsubscribe(box, state)
    hub.set_paused(box, False)
    assert wire.writes == [] and not box.conflated


def test_subscribing_while_paused_starts_slow() -> None:
    hub, _ = make_hub()
    box, _ = outbox()
    hub.set_paused(box, True)
    state = hub.subscribe(box, "INFY", "NSE", Mode.LTP)
    assert box in state.slow and state.appenders == []
    check_invariant(hub)


def test_instruments_update_moves_topics_to_the_serving_broker() -> None:
    hub, _ = make_hub()
    box, wire = outbox()
    hub.subscribe(box, "INFY", "NSE", Mode.LTP)
    hub.on_bus_message(
        [b"#instruments|other", b"\x00" * 8, b'{"broker":"other","exchanges":["NSE"],"symbols":{"NSE":["INFY"]}}']
    )
    tick(hub, INFY, 1)
    hub.flush()
    (frame,) = split_frames(wire.writes[0])
    assert json.loads(frame[1])["broker"] == "other" and hub.brokers() == ["other", "simulator"]


def test_malformed_bus_messages_are_counted_not_raised() -> None:
    metrics = ProxyMetrics()
    hub, _ = make_hub(metrics)
    hub.on_bus_message([INFY, b"\x00"])
    hub.on_bus_message([b"#status|x", b"\x00" * 8, b"{not json"])
    assert metrics.errors["BUS_FRAME"] == 1 and metrics.errors["BUS_CONTROL"] == 1


def test_invariant_holds_under_random_operations() -> None:
    rng = random.Random(13)
    hub, bus = make_hub()
    boxes: list[tuple[Outbox[TopicState], Wire]] = [outbox() for _ in range(6)]
    symbols = ["INFY", "TCS", "RELIANCE"]
    for step in range(600):
        box, _ = rng.choice(boxes)
        action = rng.random()
        if action < 0.35:
            hub.subscribe(box, rng.choice(symbols), "NSE", rng.choice([Mode.LTP, Mode.QUOTE]))
        elif action < 0.55 and box.topics:
            hub.unsubscribe(box, rng.choice(list(box.topics.values())))
        elif action < 0.7:
            hub.set_paused(box, not box.paused, float(step))
        elif action < 0.75:
            hub.unsubscribe_all(box)
        else:
            for topic in list(hub.topics):
                tick(hub, topic, step + 1)
            hub.flush()
        check_invariant(hub)
        assert set(hub.topics) == {t for b, _ in boxes for t in b.topics}
    assert len(bus.subscribed) - len(bus.unsubscribed) == len(hub.topics)


def test_a_new_subscriber_of_a_streaming_topic_gets_the_last_frame_marked_snapshot() -> None:
    hub, _ = make_hub()
    box, _ = outbox()
    state = hub.subscribe(box, "INFY", "NSE", Mode.LTP)
    tick(hub, INFY, 7, 12.5)
    live = json.loads(split_frames(state.last_frame)[0][1])
    assert "snapshot" not in live
    (snapshot,) = split_frames(state.snapshot_frame())
    assert json.loads(snapshot[1]) == {**live, "snapshot": True}  # same seq, same data and times
    for size in (300, 70_000):  # 16- and 64-bit length headers
        hub.on_bus_message([INFY, SEQ.pack(8 + size), b'{"ltp":1.0,"pad":"%s"}' % (b"x" * size)])
        (frame,) = split_frames(state.snapshot_frame())
        assert json.loads(frame[1])["snapshot"] is True and json.loads(frame[1])["data"]["pad"] == "x" * size
    hub.on_bus_message([INFY, SEQ.pack(90_000), b'{"ltp":2.0}', SNAPSHOT])  # a feed's replay: marked once
    assert state.snapshot_frame() == state.last_frame
    assert json.loads(split_frames(state.last_frame)[0][1])["snapshot"] is True


def code_of(hub: Hub, exchange: str, symbol: str) -> ErrorCode | None:
    problem = hub.check(exchange, symbol)
    return problem[0] if problem is not None else None


def _status(hub: Hub, broker: str, exchanges: list[str]) -> None:
    status = {
        "broker": broker,
        "state": "connected",
        "connections": 1,
        "subscriptions": 0,
        "topics": 0,
        "reconnects": 0,
        "last_tick_age": -1,
        "exchanges": exchanges,
        "time": 1,
    }
    hub.on_bus_message([topics.status_topic(broker), SEQ.pack(1), json.dumps(status).encode()])


def test_until_a_feeds_instrument_list_arrives_its_exchanges_are_unavailable_not_unknown() -> None:
    hub, bus = make_hub(instruments=None)
    assert code_of(hub, "NSE", "INFY") is ErrorCode.BROKER_UNAVAILABLE
    _status(hub, "simulator", ["NSE", "NSE_INDEX"])
    assert bus.subscribed == bus.unsubscribed == [b"#instruments|simulator"]  # asked again for its list
    _status(hub, "simulator", ["NSE", "NSE_INDEX"])
    assert bus.subscribed == [b"#instruments|simulator"]  # not more than once a second
    _status(hub, "other", ["MCX"])  # a second feed, whose list has not come either
    hub.on_bus_message([topics.instruments_topic("simulator"), SEQ.pack(2), json.dumps(INSTRUMENTS).encode()])
    assert hub.check("NSE", "INFY") is None
    code, message = hub.check("MCX", "CRUDEOIL") or (None, "")
    assert code is ErrorCode.BROKER_UNAVAILABLE and "instrument list" in message
    assert not hub.directory.complete(["simulator", "other"]) and hub.directory.complete(["simulator"])
    assert code_of(hub, "CDS", "USDINR") is code_of(hub, "NSE", "NOPE") is ErrorCode.SYMBOL_NOT_FOUND


def test_data_that_is_not_exactly_one_json_object_is_dropped() -> None:
    """A forged `data` must not close the envelope early and add keys of its own."""
    metrics = ProxyMetrics()
    hub, _ = make_hub(metrics)
    box, wire = outbox()
    hub.subscribe(box, "INFY", "NSE", Mode.LTP)
    forged = [b'{}, "type":"error"', b'{"ltp":1}}, {"type":"error"', b"[1]", b'"s"', b"", b'{"ltp":1']
    for seq, data in enumerate(forged, 1):
        hub.on_bus_message([INFY, (seq).to_bytes(8, "big"), data])
    hub.flush()
    assert wire.writes == [] and metrics.errors["BUS_DATA"] == len(forged)
    tick(hub, INFY, 1, 5.0)  # the forged seqs were never taken: 1 is still new
    hub.flush()
    assert _seqs(wire) == [1] and metrics.bus_resets == 0
