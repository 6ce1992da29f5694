"""The `search` action and "did you mean" suggestions, driven through a session without sockets."""

from __future__ import annotations

import json
from typing import Any

import pytest

from openalgo_proxy.bus import SEQ
from openalgo_proxy.proxy import protocol as proto
from tests.unit.proxy_support import Rig

INSTRUMENTS: dict[str, Any] = {
    "broker": "simulator",
    "exchanges": ["NSE", "NSE_INDEX", "NFO", "CDS"],
    "symbols": {
        "NSE": ["INFY", "RELIANCE", "HDFCBANK"],
        "NSE_INDEX": ["NIFTY", "BANKNIFTY"],
        "NFO": ["NIFTY29DEC26FUT"],
        "CDS": ["USDINR29DEC26FUT"],
    },
    "instruments": {
        "NSE": [
            {"symbol": "INFY", "name": "INFOSYS", "instrument_type": "EQ", "tick_size": 0.05},
            {"symbol": "RELIANCE", "name": "RELIANCE INDUSTRIES", "instrument_type": "EQ", "tick_size": 0.1},
        ],
        "NSE_INDEX": [{"symbol": "NIFTY", "name": "NIFTY 50", "instrument_type": "INDEX"}],
        "NFO": [{"symbol": "NIFTY29DEC26FUT", "name": "NIFTY", "instrument_type": "FUT", "lot_size": 75}],
        "CDS": [{"symbol": "USDINR29DEC26FUT", "name": "USDINR", "instrument_type": "FUT", "tick_size": 0.0025}],
    },
}


def test_search_answers_ranked_results_with_details() -> None:
    rig = Rig(instruments=INSTRUMENTS)
    session, wire = rig.session()
    rig.send(session, {"action": "search", "query": "nifty", "request_id": 4})
    (reply,) = wire.messages()
    assert reply["type"] == "search" and reply["status"] == "success" and reply["request_id"] == 4
    assert reply["query"] == "nifty"
    assert [(r["exchange"], r["symbol"]) for r in reply["results"]][:2] == [
        ("NSE_INDEX", "NIFTY"),
        ("NFO", "NIFTY29DEC26FUT"),
    ]
    fut = reply["results"][1]
    assert fut == {
        "symbol": "NIFTY29DEC26FUT",
        "exchange": "NFO",
        "name": "NIFTY",
        "instrument_type": "FUT",
        "tick_size": 0.0,
        "lot_size": 75,
    }
    rig.send(session, {"action": "search", "query": "infosys"})
    assert [r["symbol"] for r in wire.messages()[0]["results"]] == ["INFY"]
    rig.send(session, {"action": "search", "query": "nifty", "exchange": "nfo", "limit": 1})
    assert [r["symbol"] for r in wire.messages()[0]["results"]] == ["NIFTY29DEC26FUT"]
    rig.send(session, {"action": "search", "query": "zzzz"})
    assert wire.messages()[0]["results"] == []


def test_search_shows_only_the_exchanges_a_role_may_subscribe(tmp_path: Any) -> None:
    rig = Rig(
        auth={"mode": "api_key", "roles": {"default": {"exchanges": ["NSE"]}}},
        tmp=tmp_path,
        instruments=INSTRUMENTS,
    )
    session, wire = rig.session()
    rig.send(session, {"action": "search", "query": "nifty"})
    assert wire.messages()[0]["code"] == "NOT_AUTHENTICATED"
    rig.send(session, {"action": "authenticate", "api_key": "unit-test-key-0123456789"})
    wire.messages()
    rig.send(session, {"action": "search", "query": "i"})
    assert {r["exchange"] for r in wire.messages()[0]["results"]} == {"NSE"}


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        ({"action": "search"}, "INVALID_PARAMETERS"),
        ({"action": "search", "query": ""}, "INVALID_PARAMETERS"),
        ({"action": "search", "query": 5}, "INVALID_PARAMETERS"),
        ({"action": "search", "query": "x" * 65}, "INVALID_PARAMETERS"),
        ({"action": "search", "query": "x", "limit": 0}, "INVALID_PARAMETERS"),
        ({"action": "search", "query": "x", "limit": True}, "INVALID_PARAMETERS"),
        ({"action": "search", "query": "x", "exchange": "N|X"}, "INVALID_PARAMETERS"),
    ],
)
def test_bad_search_requests_are_refused_with_their_code(request_: dict[str, Any], code: str) -> None:
    rig = Rig(instruments=INSTRUMENTS)
    session, wire = rig.session()
    assert rig.send(session, request_) is None  # the connection stays
    (reply,) = wire.messages()
    assert reply["type"] == "error" and reply["code"] == code


def test_limit_is_capped_at_fifty() -> None:
    parsed = proto.parse_request(b'{"action":"search","query":"a","limit":500}')
    assert parsed.command == proto.Search("a", None, 50)


def test_unknown_symbols_suggest_the_closest_names() -> None:
    rig = Rig(instruments=INSTRUMENTS)
    session, wire = rig.session()
    rig.send(
        session,
        {
            "action": "subscribe",
            "symbols": [
                {"symbol": "NIFTY", "exchange": "NSE"},
                {"symbol": "USDINR", "exchange": "CDS"},
                {"symbol": "RELAINCE", "exchange": "NSE"},
                {"symbol": "QQQQQQ", "exchange": "NSE"},
            ],
        },
    )
    (reply,) = wire.messages()
    nifty, usd, typo, nothing = reply["subscriptions"]
    assert nifty["code"] == "SYMBOL_NOT_FOUND" and nifty["suggestions"][0] == "NSE_INDEX:NIFTY"
    assert nifty["message"] == "NIFTY is not listed on NSE; did you mean NSE_INDEX:NIFTY?"
    assert usd["suggestions"] == ["CDS:USDINR29DEC26FUT"]
    assert typo["suggestions"][0] == "NSE:RELIANCE"
    assert "suggestions" not in nothing and nothing["message"] == "QQQQQQ is not listed on NSE"


def test_suggestions_are_bounded_per_request() -> None:
    rig = Rig(instruments=INSTRUMENTS)
    session, wire = rig.session()
    entries = [{"symbol": f"RELIANC{c}", "exchange": "NSE"} for c in "ABCDFGH"]
    rig.send(session, {"action": "subscribe", "symbols": entries})
    (reply,) = wire.messages()
    assert sum(1 for r in reply["subscriptions"] if "suggestions" in r) == 3
    assert sum(1 for r in reply["subscriptions"] if "did you mean" in r["message"]) == 3  # each costs a search
    assert all(r["code"] == "SYMBOL_NOT_FOUND" for r in reply["subscriptions"])


def test_a_big_instrument_list_is_indexed_off_the_caller_and_a_newer_list_wins() -> None:
    from openalgo_proxy.control import InstrumentDirectory
    from openalgo_proxy.proxy.directory import SYNC_INDEX_AT_MOST, Directory

    names = [f"SYM{i}" for i in range(SYNC_INDEX_AT_MOST + 1)]
    directory = Directory()
    directory.update(InstrumentDirectory(broker="b", exchanges=["NFO"], symbols={"NFO": names}))
    assert not directory.index_ready  # left for prepare_index (the server runs it in a thread)
    directory.prepare_index()
    assert directory.index_ready and directory.search("SYM77", None, 1)[0].symbol == "SYM77"
    directory.update(InstrumentDirectory(broker="b", exchanges=["NFO"], symbols={"NFO": [*names, "NEW"]}))
    assert not directory.index_ready
    assert [item.symbol for item in directory.search("NEW", None, 5)] == ["NEW"]  # built when asked
    small = Directory()
    small.update(InstrumentDirectory(broker="b", exchanges=["NSE"], symbols={"NSE": ["INFY"]}))
    assert small.index_ready  # a small list is indexed at once


def test_broker_info_names_the_user_and_lists_every_broker(tmp_path: Any) -> None:
    rig = Rig(auth={"mode": "api_key"}, tmp=tmp_path, instruments=INSTRUMENTS)
    second = {"broker": "zerodha", "exchanges": ["MCX"], "symbols": {"MCX": ["GOLD05FEB27FUT"]}}
    rig.hub.on_bus_message([b"#instruments|zerodha", SEQ.pack(1), json.dumps(second).encode()])
    session, wire = rig.session()
    rig.send(session, {"action": "authenticate", "api_key": "unit-test-key-0123456789"})
    rig.send(session, {"action": "get_broker_info"})
    _, info = wire.messages()
    assert info["user_id"] == session.identity and info["user_id"]
    assert info["brokers"] == ["simulator", "zerodha"]  # a list; `broker` stays for old clients
    assert isinstance(info["broker"], str)


def test_a_search_costs_several_commands_of_the_rate_budget() -> None:
    rig = Rig(instruments=INSTRUMENTS, limits={"commands_per_second": 1, "command_burst": 25})
    session, wire = rig.session()

    def frame(message: dict[str, Any]) -> None:  # as the shell does: the frame first, then the message
        if session.receive_frame(rig.now) is None:
            rig.send(session, message)

    for _ in range(3):
        frame({"action": "search", "query": "nifty"})
    assert [m["type"] for m in wire.messages()] == ["search", "search", "search"]  # 3 x 10 of a burst of 25
    frame({"action": "ping"})
    assert [m.get("code", m["type"]) for m in wire.messages()] == ["RATE_LIMITED"]


@pytest.mark.parametrize("where", ["request", "entry"])
def test_depth_level_is_read_like_depth_everywhere(where: str) -> None:
    entry: dict[str, Any] = {"symbol": "SBIN", "exchange": "NSE"}
    request: dict[str, Any] = {"action": "subscribe", "mode": 3, "symbols": [entry]}
    (entry if where == "entry" else request)["depth_level"] = 20
    (parsed,) = proto.parse_request(json.dumps(request).encode()).command.entries  # type: ignore[union-attr]
    assert parsed.depth == 20  # never silently served as 5 levels
    single = {"action": "subscribe", "symbol": "SBIN", "exchange": "NSE", "mode": 3, "depth_level": 30}
    assert proto.parse_request(json.dumps(single).encode()).command.entries[0].depth == 30  # type: ignore[union-attr]
    both = {**single, "depth": 20}
    with pytest.raises(proto.BadRequest) as refused:
        proto.parse_request(json.dumps(both).encode())
    assert refused.value.code.value == "INVALID_PARAMETERS"
