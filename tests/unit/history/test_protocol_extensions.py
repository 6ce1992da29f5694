"""Parsing of the candle and history actions."""

from __future__ import annotations

import json

import pytest

from openalgo_proxy.errors import ErrorCode
from openalgo_proxy.history.timerange import parse_instant
from openalgo_proxy.proxy import protocol as proto


def test_subscribe_candles_entries_take_their_own_or_the_message_interval() -> None:
    parsed = proto.parse_request(
        b'{"action":"subscribe_candles","interval":"5m","symbols":[{"symbol":"infy","exchange":"nse"},'
        b'{"symbol":"SBIN","exchange":"NSE","interval":"1H"}]}'
    )
    assert parsed.command == proto.SubscribeCandles(
        (proto.CandleEntry("INFY", "NSE", "5m"), proto.CandleEntry("SBIN", "NSE", "1h"))
    )


@pytest.mark.parametrize("interval", [None, "2m", 5, "ticks"])
def test_candles_need_a_known_interval(interval: object) -> None:
    body = {"action": "subscribe_candles", "symbol": "INFY", "exchange": "NSE", "interval": interval}
    with pytest.raises(proto.BadRequest) as err:
        proto.parse_request(json.dumps(body))
    assert err.value.code is ErrorCode.INVALID_PARAMETERS


def test_history_defaults_and_dates() -> None:
    parsed = proto.parse_request(b'{"action":"history","symbol":"INFY","exchange":"NSE","start":"2026-12-07"}')
    assert parsed.command == proto.History(
        "INFY", "NSE", "1m", parse_instant("2026-12-07"), parse_instant("2026-12-08"), 500, 0
    )
    ms = proto.parse_request(
        b'{"action":"history","symbol":"INFY","exchange":"NSE","interval":"ticks","start":1000,"end":2000,'
        b'"limit":5000,"offset":7}'
    )
    assert ms.command == proto.History("INFY", "NSE", "ticks", 1000, 2000, 5000, 7)


@pytest.mark.parametrize(
    "extra",
    [
        {},  # no start
        {"start": "yesterday"},
        {"start": 2000, "end": 1000},
        {"start": "2026-12-07", "limit": 5001},
        {"start": "2026-12-07", "limit": 0},
        {"start": "2026-12-07", "offset": -1},
        {"start": "2020-01-01", "end": "2026-01-01"},  # over a year
        {"start": True},
    ],
)
def test_bad_history_requests_are_invalid_parameters(extra: dict[str, object]) -> None:
    body = {"action": "history", "symbol": "INFY", "exchange": "NSE", **extra}
    with pytest.raises(proto.BadRequest) as err:
        proto.parse_request(json.dumps(body))
    assert err.value.code is ErrorCode.INVALID_PARAMETERS
