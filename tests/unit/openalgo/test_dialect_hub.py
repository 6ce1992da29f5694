"""The OpenAlgo dialect without sockets: parsing, ack shapes, the numeric-timestamp companion, order relay."""

from __future__ import annotations

import json

import pytest

from openalgo_proxy import topics
from openalgo_proxy.bus import SEQ
from openalgo_proxy.model import Mode
from openalgo_proxy.payload import iso_millis, numeric_timestamp
from openalgo_proxy.proxy import protocol as proto
from openalgo_proxy.proxy.dialect import OPENALGO, SEED
from tests.unit.proxy_support import Rig, make_hub, outbox, split_frames

RELIANCE = b"NSE|RELIANCE|1"
STAMP = 1_733_471_400_123


def _data(ms: int) -> bytes:
    return b'{"symbol":"RELIANCE","exchange":"NSE","ltp":1.5,"ltt":%d,"timestamp":"%s"}' % (ms, iso_millis(ms).encode())


def _messages(wire: object) -> list[dict[str, object]]:
    return [json.loads(p) for w in wire.writes for _, p in split_frames(w)]  # type: ignore[attr-defined]


def test_parse_type_alias_default_quote_and_depth_per_entry() -> None:
    request = OPENALGO.parse(b'{"type":"subscribe","symbol":"sbin","exchange":"NSE","request_id":"r"}', 5000)
    command = request.command
    assert isinstance(command, proto.Subscribe) and request.request_id == "r"
    (entry,) = command.entries
    assert (entry.symbol, entry.mode) == ("SBIN", Mode.QUOTE)
    assert isinstance(OPENALGO.parse(b'{"action":"subscribe_orders"}', 5000).command, proto.SubscribeOrders)
    assert isinstance(SEED.parse(b'{"action":"unsubscribe_orders"}', 5000).command, proto.UnsubscribeOrders)
    seed = SEED.parse(b'{"action":"subscribe","symbol":"SBIN","exchange":"NSE"}', 5000).command
    assert isinstance(seed, proto.Subscribe) and seed.entries[0].mode == Mode.DEPTH  # the seed keeps its default
    with pytest.raises(proto.BadRequest):
        SEED.parse(b'{"type":"subscribe","symbol":"SBIN","exchange":"NSE"}', 5000)  # no alias in the seed


def test_ack_shapes() -> None:
    ok = {"symbol": "A", "exchange": "NSE", "mode": 1, "topic": "A.NSE", "status": "success"}
    bad = {**ok, "symbol": "B", "status": "error", "code": "NOT_SUBSCRIBED", "message": "not subscribed"}
    sub = json.loads(OPENALGO.subscribed([ok], True, "x"))
    assert (sub["type"], sub["status"], sub["request_id"], sub["subscriptions"]) == ("subscribe", "success", "x", [ok])
    uns = json.loads(OPENALGO.unsubscribed([ok, bad], "A.NSE", 3))
    assert (uns["type"], uns["status"], uns["successful"], uns["failed"]) == ("unsubscribe", "partial", [ok], [bad])
    everything = json.loads(OPENALGO.unsubscribed_all([{k: v for k, v in ok.items() if k != "status"}], None))
    assert everything["type"] == "unsubscribe" and everything["successful"] == [ok]
    assert json.loads(SEED.subscribed([ok], False, None))["type"] == "subscription"
    assert (
        json.loads(SEED.orders(True, None))["type"]
        == json.loads(OPENALGO.orders(True, None))["type"]
        == "subscribe_orders"
    )


def test_numeric_timestamp_rewrite() -> None:
    assert json.loads(numeric_timestamp(_data(STAMP)))["timestamp"] == STAMP
    assert numeric_timestamp(b'{"ltp":1}') == b'{"ltp":1}'
    assert numeric_timestamp(b'{"timestamp":"garbage"}') == b'{"timestamp":"garbage"}'


def test_companion_feeds_numeric_clients_and_leaves_the_seed_path_alone() -> None:
    hub, bus = make_hub()
    seed_box, seed_wire = outbox()
    oa_box, oa_wire = outbox()
    hub.subscribe(seed_box, "RELIANCE", "NSE", Mode.LTP)
    hub.on_bus_message([RELIANCE, SEQ.pack(1), _data(STAMP)])
    state = hub.topics[RELIANCE]
    assert state.numeric is None  # nobody wants numbers: no second encoding
    companion = hub.subscribe(oa_box, "RELIANCE", "NSE", Mode.LTP, numeric_time=True)
    assert state.numeric is companion and companion.last_frame  # its snapshot is ready at once
    hub.on_bus_message([RELIANCE, SEQ.pack(2), _data(STAMP + 1)])
    hub.flush()
    assert [m["data"]["timestamp"] for m in _messages(seed_wire)] == [iso_millis(STAMP), iso_millis(STAMP + 1)]  # type: ignore[index]
    (numeric,) = _messages(oa_wire)
    assert numeric["data"]["timestamp"] == STAMP + 1 and numeric["seq"] == 2  # type: ignore[index]
    assert bus.subscribed == [RELIANCE]
    hub.unsubscribe(seed_box, state)
    assert RELIANCE in hub.topics and not bus.unsubscribed  # the numeric client still holds it
    hub.unsubscribe(oa_box, companion)
    assert RELIANCE not in hub.topics and bus.unsubscribed == [RELIANCE] and state.numeric is None


def test_order_updates_go_to_their_account_only() -> None:
    hub, _ = make_hub()
    alice, alice_wire = outbox()
    bob, bob_wire = outbox()
    admin, admin_wire = outbox()
    hub.subscribe_orders(alice, ("alice",))
    hub.subscribe_orders(bob, ("bob",))
    hub.subscribe_orders(admin, ("*",))
    event = b'{"type":"order_update","user_id":"alice"}'
    hub.on_bus_message([topics.orders_topic("zerodha", "alice"), SEQ.pack(1), event])
    hub.flush()
    assert [p for w in alice_wire.writes for _, p in split_frames(w)] == [event]
    assert not bob_wire.writes and len(admin_wire.writes) == 1
    hub.unsubscribe_all(alice, orders=False)  # the client's unsubscribe_all is about market data
    assert hub.order_accounts[alice] == ("alice",)
    hub.unsubscribe_all(alice)  # a closing connection leaves the order relay too
    hub.on_bus_message([topics.orders_topic("zerodha", "alice"), SEQ.pack(2), event])
    hub.flush()
    assert len(alice_wire.writes) == 1 and len(admin_wire.writes) == 2


def test_standalone_order_permission_comes_from_the_role() -> None:
    roles = {"default": {}, "desk": {"orders": ["*"]}}
    rig = Rig(auth={"mode": "jwt", "jwt_secret": "s" * 32, "roles": roles})
    # a grant of the default role (no `orders`) is refused; the desk role may see every account
    plain, plain_wire = rig.session()
    plain.grant = rig.admission.authenticator._grant("jwt:u", "default")
    assert rig.send(plain, {"action": "subscribe_orders"}) is None
    assert _messages(plain_wire)[-1]["code"] == "FORBIDDEN"
    desk, desk_wire = rig.session()
    desk.grant = rig.admission.authenticator._grant("jwt:d", "desk")
    rig.send(desk, {"action": "subscribe_orders", "request_id": 1})
    assert _messages(desk_wire)[-1] == {
        "type": "subscribe_orders",
        "status": "success",
        "message": "Subscribed to order updates",
        "request_id": 1,
    }
    assert rig.hub.order_accounts[desk.outbox] == ("*",)
