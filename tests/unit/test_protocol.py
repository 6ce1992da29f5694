from __future__ import annotations

import json

import pytest

from openalgo_proxy.errors import ErrorCode
from openalgo_proxy.model import Mode
from openalgo_proxy.proxy import protocol as p


def parse(obj: object) -> p.ParsedRequest:
    return p.parse_request(json.dumps(obj))


def test_authenticate_with_aliases() -> None:
    assert parse({"action": "authenticate", "api_key": "k"}).command == p.Authenticate("k", None)
    assert parse({"action": "auth", "apikey": "k"}).command == p.Authenticate("k", None)
    assert parse({"action": "authenticate", "token": "jwt"}).command == p.Authenticate(None, "jwt")


def test_single_subscribe_defaults_to_depth_and_uppercases() -> None:
    req = parse({"action": "subscribe", "symbol": "reliance", "exchange": "nse", "request_id": "r1"})
    assert req.request_id == "r1"
    assert req.command == p.Subscribe((p.Entry("RELIANCE", "NSE", Mode.DEPTH),), single=True)


def test_list_subscribe_with_per_entry_and_top_level_modes() -> None:
    req = parse(
        {
            "action": "subscribe",
            "mode": "LTP",
            "symbols": [
                {"symbol": "SBIN", "exchange": "NSE"},
                {"symbol": "NIFTY", "exchange": "NSE_INDEX", "mode": 2},
                "NSE:INFY",
            ],
        }
    )
    assert isinstance(req.command, p.Subscribe)
    assert [(e.symbol, e.mode) for e in req.command.entries] == [
        ("SBIN", Mode.LTP),
        ("NIFTY", Mode.QUOTE),
        ("INFY", Mode.LTP),
    ]
    assert req.command.single is False


def test_unsubscribe_without_mode_means_every_mode() -> None:
    req = parse({"action": "unsubscribe", "symbol": "SBIN", "exchange": "NSE"})
    assert req.command == p.Unsubscribe((p.Entry("SBIN", "NSE", None),), single=True)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("not json", ErrorCode.INVALID_JSON),
        ("[1,2]", ErrorCode.INVALID_JSON),
        ("42", ErrorCode.INVALID_JSON),
        ('"text"', ErrorCode.INVALID_JSON),
        ("{}", ErrorCode.INVALID_ACTION),
        ('{"action": 5}', ErrorCode.INVALID_ACTION),
        ('{"action": "explode"}', ErrorCode.INVALID_ACTION),
        ('{"action": "subscribe"}', ErrorCode.INVALID_PARAMETERS),
        ('{"action": "subscribe", "symbol": 5, "exchange": "NSE"}', ErrorCode.INVALID_PARAMETERS),
        ('{"action": "subscribe", "symbol": "", "exchange": "NSE"}', ErrorCode.INVALID_PARAMETERS),
        ('{"action": "subscribe", "symbol": "A|B", "exchange": "NSE"}', ErrorCode.INVALID_PARAMETERS),
        ('{"action": "subscribe", "symbols": []}', ErrorCode.INVALID_PARAMETERS),
        ('{"action": "subscribe", "symbols": [7]}', ErrorCode.INVALID_PARAMETERS),
        ('{"action": "subscribe", "symbols": "SBIN"}', ErrorCode.INVALID_PARAMETERS),
        ('{"action": "subscribe", "symbol": "SBIN", "exchange": "NSE", "mode": 9}', ErrorCode.INVALID_MODE),
        ('{"action": "subscribe", "symbol": "SBIN", "exchange": "NSE", "mode": "full-ish"}', ErrorCode.INVALID_MODE),
        ('{"action": "subscribe", "symbol": "SBIN", "exchange": "NSE", "depth": "deep"}', ErrorCode.INVALID_PARAMETERS),
        ('{"action": "subscribe", "symbol": "SBIN", "exchange": "NSE", "depth": 0}', ErrorCode.INVALID_PARAMETERS),
        ('{"action": "subscribe", "symbol": "SBIN", "exchange": "NSE", "depth": true}', ErrorCode.INVALID_PARAMETERS),
        ('{"action": "authenticate", "api_key": 5}', ErrorCode.INVALID_PARAMETERS),
    ],
)
def test_bad_requests_get_documented_codes(raw: str, code: ErrorCode) -> None:
    with pytest.raises(p.BadRequest) as info:
        p.parse_request(raw)
    assert info.value.code is code
    assert info.value.message


def test_request_id_is_kept_on_errors() -> None:
    with pytest.raises(p.BadRequest) as info:
        parse({"action": "subscribe", "request_id": 17})
    assert info.value.request_id == 17


def test_error_envelope() -> None:
    body = json.loads(p.error(ErrorCode.NOT_SUBSCRIBED, "not subscribed", "x"))
    assert body == {
        "type": "error",
        "status": "error",
        "code": "NOT_SUBSCRIBED",
        "message": "not subscribed",
        "request_id": "x",
    }


def test_depth_is_read_per_request_and_per_entry_for_the_depth_mode_only() -> None:
    parsed = p.parse_request(
        '{"action": "subscribe", "mode": 3, "depth": 20, "symbols": ['
        '{"symbol": "SBIN", "exchange": "NSE"}, {"symbol": "INFY", "exchange": "NSE", "depth": 200},'
        '{"symbol": "TCS", "exchange": "NSE", "mode": 2}, {"symbol": "ITC", "exchange": "NSE", "depth": "5"}]}'
    )
    command = parsed.command
    assert isinstance(command, p.Subscribe)
    assert [(e.symbol, e.mode, e.depth) for e in command.entries] == [
        ("SBIN", Mode.DEPTH, 20),
        ("INFY", Mode.DEPTH, 200),
        ("TCS", Mode.QUOTE, 5),  # a depth shapes only the Depth mode's book
        ("ITC", Mode.DEPTH, 5),
    ]
    single = p.parse_request('{"action": "subscribe", "symbol": "SBIN", "exchange": "NSE", "depth": 10}').command
    assert isinstance(single, p.Subscribe) and single.entries[0].depth == 10  # answered INVALID_DEPTH per entry
