"""Issue 19's proxy defences without sockets: the session's budgets for frames and batches, UTF-8,
the request parser on raw bytes, Host and Origin, the HTTP side's answers, per-peer log limits."""

from __future__ import annotations

import json
import logging

import pytest
from websockets.datastructures import Headers
from websockets.http11 import Request

from openalgo_proxy.config import ProxySettings
from openalgo_proxy.errors import CloseCode
from openalgo_proxy.proxy.origin import accepted_hosts, host_allowed, host_name
from openalgo_proxy.proxy.peerlog import PeerLog
from openalgo_proxy.proxy.protocol import BadRequest, parse_request
from openalgo_proxy.proxy.server import ProxyServer
from openalgo_proxy.proxy.session import ENTRIES_PER_TOKEN, Action, Close
from tests.unit.proxy_support import Rig

VIEWER = {"roles": {"default": {"exchanges": ["BSE"], "max_subscriptions": 3}}}


def _batch(n: int, exchange: str = "NSE") -> dict[str, object]:
    return {"action": "subscribe", "mode": 1, "symbols": [f"{exchange}:S{i}" for i in range(n)]}


# -- batches (finding 2) ----------------------------------------------------------------------------
def test_a_batch_larger_than_the_identity_may_hold_is_refused_whole() -> None:
    rig = Rig(auth=VIEWER)
    session, wire = rig.session()
    rig.send(session, _batch(5000))
    (reply,) = wire.messages()
    assert reply["type"] == "error" and reply["code"] == "LIMIT_EXCEEDED" and "at most 50" in reply["message"]
    assert not rig.hub.topics


def test_failed_entries_spend_the_error_budget_until_4029() -> None:
    rig = Rig(auth=VIEWER, limits={"max_protocol_errors": 3})
    session, wire = rig.session()
    decisions = [rig.send(session, _batch(40)) for _ in range(4)]  # 40 forbidden entries each
    assert decisions[:3] == [None, None, None]
    assert decisions[3] == Close(CloseCode.TOO_MANY_REQUESTS, "too many requests or protocol errors", at_once=True)
    assert all(m["status"] == "error" for m in wire.messages())


def test_entries_and_reply_bytes_are_charged_to_the_command_bucket() -> None:
    rig = Rig(limits={"commands_per_second": 1, "command_burst": 20, "max_protocol_errors": 100})
    session, _ = rig.session()
    assert session.receive_frame(rig.now) is None
    rig.send(session, _batch(ENTRIES_PER_TOKEN * 20))  # 1,000 entries (not listed): 20 tokens and more
    assert session.receive_frame(rig.now) is Action.DROP  # the bucket is in debt: the next frame waits
    rig.now += 25.0
    assert session.receive_frame(rig.now) is None


def test_broker_unavailable_is_not_the_clients_fault() -> None:
    rig = Rig(instruments=None, limits={"max_protocol_errors": 1})
    session, _ = rig.session()
    for _ in range(5):
        assert rig.send(session, _batch(10)) is None


# -- frames and text (findings 1, 4) ----------------------------------------------------------------
def test_invalid_utf8_closes_1007() -> None:
    rig = Rig()
    session, _ = rig.session()
    decision = session.receive_message(b'{"action":"\xff\xfe"}', False, rig.now)
    assert decision == Close(CloseCode.INVALID_DATA, "invalid UTF-8 in a text message")


@pytest.mark.parametrize(
    "raw",
    [
        b'"\xff"',
        b"[" * 100_000,
        b'{"a":' * 5000,
        b"\xff\xfe\x00",
        b"",
        b"\x00" * 10,
        b'{"action":"subscribe","symbols":[' + b"[" * 3000,
    ],
)
def test_the_request_parser_answers_any_bytes_with_a_code(raw: bytes) -> None:
    with pytest.raises(BadRequest) as info:
        parse_request(raw)
    assert info.value.code in ("INVALID_JSON", "INVALID_PARAMETERS")


def test_deep_json_is_an_error_reply_and_the_session_stays() -> None:
    rig = Rig()
    session, wire = rig.session()
    assert session.receive_message(b'{"x":' + b"[" * 1000 + b"]" * 1000 + b"}", False, rig.now) is None
    assert rig.send(session, {"action": "ping"}) is None
    error, pong = wire.messages()
    assert error["code"] == "INVALID_JSON" and pong["type"] == "pong"


# -- Host and Origin (finding 5) --------------------------------------------------------------------
def test_host_names() -> None:
    assert host_name("LocalHost:8765") == "localhost" and host_name("[::1]:80") == "::1"
    assert host_name("example.com.") == "example.com" and host_name("::1") == "::1"
    loopback = accepted_hosts("127.0.0.1", [])
    assert loopback is not None
    for host in ("127.0.0.1:8765", "localhost", "[::1]:8765", "127.0.0.2:1"):
        assert host_allowed(host, loopback), host
    for host in ("rebind.attacker.example:8765", "", None, "127.evil.example", "10.0.0.1"):
        assert not host_allowed(host, loopback), host
    assert accepted_hosts("0.0.0.0", []) is None  # wildcard listener: any name (auth is required there)
    assert accepted_hosts("127.0.0.1", ["*"]) is None
    named = accepted_hosts("0.0.0.0", ["proxy.example"])
    assert named is not None and host_allowed("PROXY.example:443", named) and not host_allowed("localhost", named)


def _request(method: str = "GET", path: str = "/", headers: list[tuple[str, str]] | None = None) -> Request:
    base = [("Host", "127.0.0.1:8765")] if not any(k == "Host" for k, _ in headers or []) else []
    return Request(path, Headers(base + (headers or [])), method)


UPGRADE = [("Upgrade", "websocket"), ("Connection", "Upgrade")]


@pytest.fixture(scope="module")
def server() -> ProxyServer:
    return ProxyServer(ProxySettings.model_validate({"port": 8765}))


def test_route_answers_each_hostile_request_with_its_code(server: ProxyServer) -> None:
    def status(request: Request) -> int | None:
        response = server.route(request, "127.0.0.1:1")
        return None if response is None else response.status_code

    assert status(_request(headers=UPGRADE)) is None  # a plain upgrade on /
    assert status(_request(path="/ws", headers=UPGRADE)) is None
    assert status(_request(path="/metrics", headers=UPGRADE)) == 404
    assert status(_request("PUT", "/healthz")) == 405
    assert status(_request("POST", "/", UPGRADE)) == 405
    for name, value in (("Origin", "http://127.0.0.1:8765"), ("Upgrade", "websocket"), ("Host", "127.0.0.1")):
        doubled = [*UPGRADE, (name, value), (name, value)] if name != "Upgrade" else [*UPGRADE, (name, value)]
        assert status(_request(headers=doubled)) == 400, name
    rebound = [*UPGRADE, ("Host", "rebind.example:8765"), ("Origin", "http://rebind.example:8765")]
    assert status(_request(headers=rebound)) == 403
    assert status(_request(headers=[*UPGRADE, ("Host", "rebind.example:8765")])) is None  # no Origin: not a browser
    assert status(_request("GET", "/healthz", [("Host", "rebind.example")])) == 403
    same_origin = [*UPGRADE, ("Host", "localhost:8765"), ("Origin", "http://localhost:8765")]
    assert status(_request(headers=same_origin)) is None
    foreign = [*UPGRADE, ("Origin", "http://evil.example")]
    assert status(_request(headers=foreign)) == 403


def test_head_answers_like_get_without_a_body(server: ProxyServer) -> None:
    get = server.route(_request("GET", "/healthz"), "p")
    head = server.route(_request("HEAD", "/healthz"), "p")
    assert get is not None and head is not None
    assert (head.status_code, head.headers["Content-Length"]) == (200, str(len(get.body)))
    assert get.body == b"ok\n" and head.body == b""


# -- logs (finding 4) ---------------------------------------------------------------------------------
def test_per_peer_logs_are_rate_limited_and_count_what_they_drop(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    peer_log = PeerLog(logging.getLogger("test.peerlog"), burst=3, rate=0.001)
    for i in range(10):
        peer_log.info("10.0.0.9", "line %d", i)
    peer_log.info("10.0.0.8", "other peer")
    lines = [r.getMessage() for r in caplog.records if r.name == "test.peerlog"]
    assert lines == ["line 0", "line 1", "line 2", "other peer"]
    peer_log._buckets["10.0.0.9"].tokens = 1.0  # time passed
    peer_log.info("10.0.0.9", "later")
    assert caplog.records[-1].getMessage() == "later (7 earlier lines from 10.0.0.9 not logged)"
    json.dumps(lines)
