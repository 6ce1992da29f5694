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
        {"start": "2026-10-01", "end": "2026-12-01"},  # candles: over 31 days
        {"start": "2026-12-01", "end": "2026-12-02", "interval": "ticks"},  # ticks: two days
        {"start": True},
    ],
)
def test_bad_history_requests_are_invalid_parameters(extra: dict[str, object]) -> None:
    body = {"action": "history", "symbol": "INFY", "exchange": "NSE", **extra}
    with pytest.raises(proto.BadRequest) as err:
        proto.parse_request(json.dumps(body))
    assert err.value.code is ErrorCode.INVALID_PARAMETERS


def test_candle_topics_round_trip_and_stay_apart() -> None:
    from openalgo_proxy import topics

    topic = topics.candle_topic("NSE", "RELIANCE", "15m")
    assert topic == b"#candles|NSE|RELIANCE|15m" and topics.is_control(topic)
    assert topics.parse_candle_topic(topic) == ("NSE", "RELIANCE", "15m")
    names = [topics.candle_topic("NSE", "INF", i) for i in topics.CANDLE_INTERVALS]
    names += [topics.candle_topic("NSE", "INFY", i) for i in topics.CANDLE_INTERVALS]
    assert not any(a != b and b.startswith(a) for a in names for b in names)  # no topic a prefix of another
    for bad in (b"#candles|NSE|X|2m", b"#candles|NSE|X", b"NSE|X|1", b"#candles|NSE|X|1m|Y"):
        with pytest.raises(ValueError):
            topics.parse_candle_topic(bad)
    with pytest.raises(ValueError):
        topics.candle_topic("NSE", "A|B", "1m")
