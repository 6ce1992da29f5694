"""The client session driven without sockets: every action and error, deadlines, budgets, dialects."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jwt

from openalgo_proxy.errors import CloseCode
from openalgo_proxy.proxy.dialect import SeedDialect
from openalgo_proxy.proxy.session import Action, Close, SessionState
from tests.unit.proxy_support import KEY, Rig, tick

SECRET = "s" * 48


def _auth_rig(tmp_path: Path, **kwargs: Any) -> Rig:
    return Rig(auth={"mode": "api_key"}, tmp=tmp_path, **kwargs)


def test_without_auth_a_session_is_authenticated_at_open_and_streams() -> None:
    rig = Rig()
    session, wire = rig.session(open_=False)
    assert session.state is SessionState.HANDSHAKING and rig.admission.pending == 1
    assert session.open(rig.now) is None
    assert session.state is SessionState.AUTHENTICATED and rig.admission.pending == 0
    assert rig.admission.open_count == 1
    assert rig.send(session, {"action": "subscribe", "symbol": "INFY", "exchange": "NSE", "mode": 1}) is None
    (reply,) = wire.messages()
    assert reply["type"] == "subscription" and reply["status"] == "success" and reply["topic"] == "INFY.NSE"
    assert rig.bus.subscribed == [b"NSE|INFY|1"]
    tick(rig.hub, b"NSE|INFY|1", 7, 1500.5)
    rig.hub.flush()
    (data,) = wire.messages()
    assert data["type"] == "market_data" and data["seq"] == 7 and data["data"] == {"ltp": 1500.5}


def test_first_byte_deadline_is_shorter_than_the_handshake_deadline() -> None:
    rig = Rig(proxy={"first_byte_timeout": 2, "handshake_timeout": 10})
    silent, _ = rig.session(open_=False)
    assert silent.check(rig.now + 1.9, rig.wall) is None
    assert silent.check(rig.now + 2.1, rig.wall) is Action.ABORT
    trickling, _ = rig.session(open_=False)
    trickling.received_bytes(rig.now + 0.5)
    assert trickling.check(rig.now + 9.9, rig.wall) is None
    assert trickling.check(rig.now + 10.1, rig.wall) is Action.ABORT


def test_handshake_deadline_aborts_and_nothing_else_is_due_before_it() -> None:
    rig = Rig()
    session, _ = rig.session(open_=False)
    session.received_bytes(rig.now)
    assert session.check(rig.now + rig.limits.handshake_timeout - 0.1, rig.wall) is None
    assert session.check(rig.now + rig.limits.handshake_timeout + 0.1, rig.wall) is Action.ABORT
    session.lost(CloseCode.ABNORMAL)
    assert rig.admission.pending == 0 and rig.admission.open_count == 0
    assert session.state is SessionState.CLOSED


def test_pending_handshake_slots_are_capped_by_admission() -> None:
    rig = Rig(limits={"max_pending_handshakes": 1})
    first, _ = rig.session(open_=False)
    second, _ = rig.session(connect=False, open_=False)
    assert not second.connect() and second.state is SessionState.CLOSED
    first.lost(CloseCode.ABNORMAL)
    third, _ = rig.session(connect=False, open_=False)
    assert third.connect()


def test_authentication_actions_and_errors(tmp_path: Path) -> None:
    rig = _auth_rig(tmp_path)
    session, wire = rig.session()
    assert session.state is SessionState.OPEN and not session.authenticated
    rig.send(session, {"action": "subscribe", "symbol": "INFY", "exchange": "NSE", "request_id": 1})
    (reply,) = wire.messages()
    assert (reply["code"], reply["request_id"]) == ("NOT_AUTHENTICATED", 1)
    rig.send(session, {"action": "authenticate", "api_key": KEY + "x"})
    (reply,) = wire.messages()
    assert reply["code"] == "AUTHENTICATION_ERROR" and "invalid API key" in reply["message"]
    rig.send(session, {"action": "authenticate", "api_key": KEY, "request_id": "a"})
    (reply,) = wire.messages()
    assert reply["type"] == "auth" and reply["status"] == "success" and reply["user_id"] == "key:config-1"
    assert reply["request_id"] == "a" and reply["broker"] == "simulator"
    assert session.state is SessionState.AUTHENTICATED and rig.admission.identities.count("key:config-1") == 1
    # the same identity again is fine; ping and brokers need no authentication at all
    rig.send(session, {"action": "auth", "apikey": KEY})
    assert wire.messages()[0]["type"] == "auth"
    assert rig.admission.identities.count("key:config-1") == 1
    session.lost(CloseCode.NORMAL)
    assert rig.admission.identities.count("key:config-1") == 0 and rig.metrics.disconnects[1000] == 1


def test_auth_deadline_closes_4401_and_drops_nothing_twice(tmp_path: Path) -> None:
    rig = _auth_rig(tmp_path)
    session, wire = rig.session()
    deadline = rig.auth.deadline
    assert session.check(rig.now + deadline - 0.1, rig.wall) is None
    decision = session.check(rig.now + deadline + 0.1, rig.wall)
    assert decision == Close(CloseCode.AUTH_TIMEOUT, "authentication required")
    assert session.state is SessionState.CLOSING and session.close_code == CloseCode.AUTH_TIMEOUT
    assert session.check(rig.now + deadline + 1, rig.wall) is None  # closing: nothing else is due
    rig.send(session, {"action": "ping"})
    assert wire.messages() == []  # a closing session sends nothing more


def test_bearer_at_handshake(tmp_path: Path) -> None:
    rig = _auth_rig(tmp_path)
    bad, _ = rig.session(open_=False)
    assert bad.handshake(KEY + "x") == "authentication failed: invalid API key"
    good, wire = rig.session(open_=False)
    assert good.handshake(KEY) is None
    assert good.open(rig.now) is None
    assert good.state is SessionState.AUTHENTICATED and good.identity == "key:config-1"
    assert wire.messages() == []  # authenticated quietly: the client never asked


def test_per_identity_cap_refuses_the_extra_connection_and_frees_on_close(tmp_path: Path) -> None:
    rig = _auth_rig(tmp_path, limits={"max_connections_per_identity": 1})
    first, _ = rig.session()
    rig.send(first, {"action": "authenticate", "api_key": KEY})
    second, wire = rig.session()
    decision = rig.send(second, {"action": "authenticate", "api_key": KEY})
    assert decision is not None and decision.code == CloseCode.TOO_MANY_REQUESTS
    (reply,) = wire.messages()
    assert reply["code"] == "LIMIT_EXCEEDED" and "at most 1 concurrent" in reply["message"]
    first.lost(CloseCode.NORMAL)
    third, wire = rig.session()
    assert rig.send(third, {"action": "authenticate", "api_key": KEY}) is None
    assert wire.messages()[0]["type"] == "auth"


def test_server_full_closes_1013() -> None:
    rig = Rig(proxy={"max_connections": 1})
    rig.session()
    extra, _ = rig.session(open_=False)
    assert extra.open(rig.now) == Close(CloseCode.TRY_AGAIN_LATER, "server full")
    extra.lost(CloseCode.TRY_AGAIN_LATER)
    assert rig.admission.open_count == 1


def test_subscribe_entry_errors_and_limits() -> None:
    rig = Rig(
        auth={"roles": {"default": {"exchanges": ["NSE"], "modes": [1, 2], "max_subscriptions": 2}}},
    )
    session, wire = rig.session()
    rig.send(
        session,
        {
            "action": "subscribe",
            "request_id": 9,
            "symbols": [
                {"symbol": "INFY", "exchange": "NSE", "mode": 1},
                {"symbol": "INFY", "exchange": "NSE", "mode": 1},
                {"symbol": "NIFTY", "exchange": "NSE_INDEX", "mode": 1},
                {"symbol": "TCS", "exchange": "NSE", "mode": 3},
                {"symbol": "NOPE", "exchange": "NSE", "mode": 1},
                {"symbol": "TCS", "exchange": "NSE", "mode": 2},
                {"symbol": "RELIANCE", "exchange": "NSE", "mode": 2},
            ],
        },
    )
    (reply,) = wire.messages()
    assert reply["status"] == "partial" and reply["request_id"] == 9 and "topic" not in reply
    outcome = [(r["status"], r.get("code"), r.get("message")) for r in reply["subscriptions"]]
    assert outcome[0] == ("success", None, None)
    assert outcome[1] == ("success", None, "already subscribed")
    assert outcome[2][1] == "FORBIDDEN" and outcome[3][1] == "FORBIDDEN"
    assert outcome[4][1] == "SYMBOL_NOT_FOUND"
    assert outcome[5] == ("success", None, None)
    assert outcome[6][1] == "LIMIT_EXCEEDED"
    assert rig.metrics.errors["FORBIDDEN"] == 2 and rig.metrics.errors["LIMIT_EXCEEDED"] == 1


def test_subscribe_before_any_feed_is_broker_unavailable() -> None:
    rig = Rig(instruments=None)
    session, wire = rig.session()
    rig.send(session, {"action": "subscribe", "symbol": "INFY", "exchange": "NSE"})
    (reply,) = wire.messages()
    assert reply["status"] == "error" and reply["subscriptions"][0]["code"] == "BROKER_UNAVAILABLE"


def test_snapshot_follows_the_subscribe_reply() -> None:
    rig = Rig()
    first, _ = rig.session()
    rig.send(first, {"action": "subscribe", "symbol": "INFY", "exchange": "NSE", "mode": 2})
    tick(rig.hub, b"NSE|INFY|2", 3, 10.0)
    rig.hub.flush()
    second, wire = rig.session()
    rig.send(second, {"action": "subscribe", "symbol": "INFY", "exchange": "NSE", "mode": 2})
    reply, snapshot = wire.messages()
    assert reply["type"] == "subscription" and snapshot["type"] == "market_data" and snapshot["seq"] == 3


def test_unsubscribe_list_and_unsubscribe_all() -> None:
    rig = Rig()
    session, wire = rig.session()
    rig.send(session, {"action": "subscribe", "symbols": ["NSE:INFY", "NSE:TCS"], "mode": 1})
    rig.send(session, {"action": "subscribe", "symbol": "INFY", "exchange": "NSE", "mode": 2})
    wire.messages()
    rig.send(session, {"action": "list_subscriptions"})
    (listed,) = wire.messages()
    listed_topics = [(s["topic"], s["mode"]) for s in listed["subscriptions"]]
    assert listed_topics == [("INFY.NSE", 1), ("TCS.NSE", 1), ("INFY.NSE", 2)]
    rig.send(session, {"action": "unsubscribe", "symbol": "INFY", "exchange": "NSE"})  # every mode
    (reply,) = wire.messages()
    assert reply["status"] == "success" and reply["topic"] == "INFY.NSE" and len(reply["subscriptions"]) == 2
    rig.send(session, {"action": "unsubscribe", "symbol": "RELIANCE", "exchange": "NSE", "mode": 1})
    (reply,) = wire.messages()
    assert reply["status"] == "error" and reply["subscriptions"][0]["code"] == "NOT_SUBSCRIBED"
    rig.send(session, {"action": "unsubscribe_all"})
    (reply,) = wire.messages()
    assert reply["message"] == "unsubscribed from 1 topic(s)" and not rig.hub.topics
    assert sorted(rig.bus.unsubscribed) == sorted(rig.bus.subscribed)


def test_ping_brokers_and_broker_info() -> None:
    rig = Rig()
    session, wire = rig.session()
    rig.send(session, {"action": "ping", "_pingId": 42, "request_id": 5})
    rig.send(session, {"action": "get_supported_brokers"})
    rig.send(session, {"action": "get_broker_info"})
    pong, brokers, info = wire.messages()
    assert pong == {
        "type": "pong",
        "status": "success",
        "server_timestamp": int(rig.wall * 1000),
        "_pingId": 42,
        "request_id": 5,
    }
    assert brokers["brokers"] == ["simulator"]
    assert info["broker"] == "simulator" and info["exchanges"] == ["NSE", "NSE_INDEX"]
    assert info["adapter_status"] == "disconnected"  # no #status from a feed yet


def test_bad_requests_answer_with_their_codes_and_spend_the_error_budget() -> None:
    rig = Rig(limits={"max_protocol_errors": 3})
    session, wire = rig.session()
    assert rig.send(session, b"{not json") is None
    assert rig.send(session, {"action": "fly"}) is None
    assert rig.send(session, b"[]", binary=True) is None
    codes = [m["code"] for m in wire.messages()]
    assert codes == ["INVALID_JSON", "INVALID_ACTION", "INVALID_JSON"]
    decision = rig.send(session, {"action": "subscribe", "symbol": "INFY", "exchange": "NSE", "mode": 9})
    assert decision == Close(CloseCode.TOO_MANY_REQUESTS, "too many requests or protocol errors", at_once=True)
    assert wire.messages()[0]["code"] == "INVALID_MODE"


def test_error_budget_refills_over_time() -> None:
    rig = Rig(limits={"max_protocol_errors": 2})
    session, _ = rig.session()
    assert rig.send(session, b"x") is None
    assert rig.send(session, b"x") is None
    rig.now += 31.0  # 2 per 60 s: one violation back
    assert rig.send(session, b"x") is None
    assert rig.send(session, b"x") is not None


def test_every_frame_costs_a_token_then_rate_limited_then_4029_at_once() -> None:
    rig = Rig(limits={"commands_per_second": 1, "command_burst": 2, "max_protocol_errors": 2})
    session, wire = rig.session()
    assert session.receive_frame(rig.now) is None  # a pong, a ping, a continuation: all the same
    assert session.receive_frame(rig.now) is None
    assert session.receive_frame(rig.now) is Action.DROP  # over the rate: answered, one violation
    assert [m["code"] for m in wire.messages()] == ["RATE_LIMITED"]
    assert rig.metrics.errors["RATE_LIMITED"] == 1
    assert session.receive_frame(rig.now) is Action.DROP  # the second of 2 allowed violations
    decision = session.receive_frame(rig.now)
    assert isinstance(decision, Close) and decision.code == CloseCode.TOO_MANY_REQUESTS and decision.at_once
    assert session.closing
    assert session.receive_frame(rig.now) is Action.ABORT  # still flooding while closing: cut
    rig.now += 1.0
    assert session.receive_frame(rig.now) is None  # a token came back: the close frame may be read


def test_the_bucket_refills_at_the_configured_rate() -> None:
    rig = Rig(limits={"commands_per_second": 10, "command_burst": 1})
    session, _ = rig.session()
    assert session.receive_frame(rig.now) is None
    assert session.receive_frame(rig.now + 0.05) is Action.DROP
    assert session.receive_frame(rig.now + 0.2) is None


def test_keepalive_ping_then_timeout() -> None:
    rig = Rig(proxy={"ping_interval": 5, "ping_timeout": 2})
    session, _ = rig.session()
    assert session.check(rig.now + 4, rig.wall) is None
    assert session.check(rig.now + 5, rig.wall) is Action.PING
    assert session.check(rig.now + 6, rig.wall) is None
    session.receive_pong()
    assert session.check(rig.now + 9, rig.wall) is None
    assert session.check(rig.now + 10, rig.wall) is Action.PING
    decision = session.check(rig.now + 12.5, rig.wall)
    assert decision == Close(CloseCode.KEEPALIVE_TIMEOUT, "keepalive ping timeout")


def test_slow_client_conflates_then_closes_4008() -> None:
    rig = Rig(proxy={"slow_client_grace": 2})
    session, wire = rig.session()
    rig.send(session, {"action": "subscribe", "symbol": "INFY", "exchange": "NSE", "mode": 1})
    wire.messages()
    session.pause(rig.now)
    assert session.conflating and session.state is SessionState.AUTHENTICATED
    for seq in (1, 2, 3):
        tick(rig.hub, b"NSE|INFY|1", seq)
    rig.hub.flush()
    assert wire.writes == [] and rig.metrics.conflated == 2
    assert session.check(rig.now + 1, rig.wall) is None
    session.resume()
    assert [m["seq"] for m in wire.messages()] == [3]  # only the latest
    session.pause(rig.now + 1)
    decision = session.check(rig.now + 3.5, rig.wall)
    assert decision == Close(CloseCode.TOO_SLOW, "too slow to keep up")
    assert rig.metrics.slow_disconnects[CloseCode.TOO_SLOW] == 1 and not rig.hub.topics


def test_token_expiry_closes_4401() -> None:
    rig = Rig(auth={"mode": "jwt", "jwt_secret": SECRET})
    session, wire = rig.session()
    exp = int(time.time()) + 60
    token = jwt.encode({"sub": "carol", "exp": exp}, SECRET, algorithm="HS256")
    rig.send(session, {"action": "authenticate", "token": token})
    assert wire.messages()[0]["user_id"] == "jwt:carol"
    assert session.check(rig.now, exp - 1) is None
    assert session.check(rig.now, exp) == Close(CloseCode.AUTH_TIMEOUT, "token expired")


def test_revoked_key_closes_4401(tmp_path: Path) -> None:
    rig = _auth_rig(tmp_path)
    store = rig.admission.authenticator.store
    assert store is not None
    key, _ = store.add("desk", "default")
    session, _ = rig.session()
    rig.send(session, {"action": "authenticate", "api_key": key})
    assert session.revalidate() is None
    store.revoke("desk")
    assert session.revalidate() == Close(CloseCode.AUTH_TIMEOUT, "API key revoked")


def test_switching_identity_is_refused(tmp_path: Path) -> None:
    rig = _auth_rig(tmp_path)
    store = rig.admission.authenticator.store
    assert store is not None
    other, _ = store.add("other", "default")
    session, wire = rig.session()
    rig.send(session, {"action": "authenticate", "api_key": KEY})
    rig.send(session, {"action": "authenticate", "api_key": other})
    assert wire.messages()[1]["code"] == "AUTHENTICATION_ERROR" and session.identity == "key:config-1"


def test_a_feed_reject_drops_the_topic_and_tells_the_client() -> None:
    rig = Rig()
    session, wire = rig.session()
    rig.send(session, {"action": "subscribe", "symbol": "INFY", "exchange": "NSE", "mode": 1})
    wire.messages()
    rig.hub.on_bus_message([b"#reject|NSE|INFY|1", b"\x00" * 8, b'{"code":"SYMBOL_NOT_FOUND","message":"gone"}'])
    (error,) = wire.messages()
    assert error["code"] == "SYMBOL_NOT_FOUND" and error["topic"] == "INFY.NSE" and error["mode"] == 1
    assert not session.outbox.topics and not rig.hub.topics


def test_peer_closing_drops_topics_and_lost_counts_once() -> None:
    rig = Rig()
    session, _ = rig.session()
    rig.send(session, {"action": "subscribe", "symbol": "INFY", "exchange": "NSE", "mode": 1})
    session.peer_closing()
    assert session.state is SessionState.CLOSING and not rig.hub.topics
    assert session.close(CloseCode.NORMAL, "bye") is None  # already closing
    session.lost(CloseCode.NORMAL)
    session.lost(CloseCode.NORMAL)
    assert rig.admission.open_count == 0 and rig.metrics.disconnects[1000] == 1


class LoudDialect(SeedDialect):
    name = "loud"

    def pong(self, ping_id: Any, server_ms: int, request_id: Any) -> bytes:
        return b'{"type":"PONG"}'


def test_the_dialect_shapes_replies() -> None:
    rig = Rig()
    session, wire = rig.session()
    session.dialect = LoudDialect()
    rig.send(session, {"action": "ping"})
    assert wire.messages() == [{"type": "PONG"}]
