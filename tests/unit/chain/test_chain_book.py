"""The pure parts of chains: topics, requests, contract symbols, the chain book's window and output."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from openalgo_proxy import topics
from openalgo_proxy.chain.book import ChainSpec, OptionChain
from openalgo_proxy.chain.contracts import IST, expiry_ms, parse_future, parse_option, years_to_expiry
from openalgo_proxy.errors import ErrorCode
from openalgo_proxy.proxy import protocol as proto


def test_chain_topics_round_trip_and_refuse_what_is_not_one() -> None:
    topic = topics.chain_topic("NFO", "NIFTY", "30DEC25", 10)
    assert topic == b"#chain|NFO|NIFTY|30DEC25|10"
    assert topics.parse_chain_topic(topic) == topics.ChainKey("NFO", "NIFTY", "30DEC25", 10)
    for bad in (
        b"#chain|NFO|NIFTY|NEAREST|0",
        b"#chain|NFO|NIFTY|NEAREST|51",
        b"#chain|NFO|NIFTY|TOMORROW|5",
        b"#chain|NFO|NIFTY|NEAREST|05",
        b"#chain|NFO|NIFTY|NEAREST",
        b"NFO|NIFTY|3",
    ):
        with pytest.raises(ValueError):
            topics.parse_chain_topic(bad)
    assert topics.is_control(topic)  # feeds never take it for market data


def test_chain_requests_parse_with_defaults_and_clear_errors() -> None:
    parsed = proto.parse_request(b'{"action":"subscribe_chain","underlying":"nifty","request_id":7}')
    assert parsed.command == proto.ChainSubscribe(topics.ChainKey("NFO", "NIFTY", "NEAREST", 10))
    assert parsed.request_id == 7
    parsed = proto.parse_request(b'{"action":"unsubscribe_chain","symbol":"RELIANCE","expiry":"30dec25","strikes":3}')
    assert parsed.command == proto.ChainUnsubscribe(topics.ChainKey("NFO", "RELIANCE", "30DEC25", 3))
    for body in (
        b'{"action":"subscribe_chain"}',
        b'{"action":"subscribe_chain","underlying":"NIFTY","strikes":0}',
        b'{"action":"subscribe_chain","underlying":"NIFTY","strikes":true}',
        b'{"action":"subscribe_chain","underlying":"NIFTY","expiry":"next week"}',
        b'{"action":"subscribe_chain","underlying":"NIFTY","expiry":5}',
    ):
        with pytest.raises(proto.BadRequest) as exc:
            proto.parse_request(body)
        assert exc.value.code is ErrorCode.INVALID_PARAMETERS


def test_option_and_future_symbols() -> None:
    option = parse_option("NIFTY30DEC2526000CE")
    assert option is not None and option.name == "NIFTY" and option.strike == 26000.0 and option.is_call
    assert option.expiry == dt.date(2025, 12, 30)
    put = parse_option("M&M29DEC263720.5PE")
    assert put is not None and put.name == "M&M" and put.strike == 3720.5 and not put.is_call
    assert parse_option("NIFTY30DEC25FUT") is None and parse_option("RELIANCE") is None
    assert parse_option("NIFTY31FEB2526000CE") is None  # no such day
    future = parse_future("BANKNIFTY29DEC26FUT")
    assert future is not None and future.name == "BANKNIFTY" and future.expiry == dt.date(2026, 12, 29)


def test_time_to_expiry_ends_at_the_close_of_the_expiry_day() -> None:
    day = dt.date(2026, 12, 8)
    close = expiry_ms(day)
    assert dt.datetime.fromtimestamp(close / 1000, IST).time() == dt.time(15, 30)
    assert years_to_expiry(day, close - 86_400_000) == pytest.approx(1 / 365)
    assert years_to_expiry(day, close + 1) == 0.0


def _chain(each_side: int = 2, future: bool = False) -> OptionChain:
    expiry = (dt.datetime.now(IST) + dt.timedelta(days=10)).date()
    code = expiry.strftime("%d%b%y").upper()
    contracts = []
    for strike in range(1400, 1610, 10):
        for right in ("CE", "PE"):
            contract = parse_option(f"RELIANCE{code}{strike}{right}")
            assert contract is not None
            contracts.append(contract)
    spec = ChainSpec(
        "RELIANCE",
        "NFO",
        expiry,
        tuple(contracts),
        ("NSE", "RELIANCE"),
        ("NFO", f"RELIANCE{code}FUT") if future else None,
        0.065,
        0.0,
    )
    return OptionChain(spec, each_side)


def test_the_window_follows_the_forward_and_names_its_legs() -> None:
    chain = _chain()
    now = int(dt.datetime.now(IST).timestamp() * 1000)
    assert chain.window_symbols() == []  # no price yet: no window
    assert chain.set_underlying("NSE", "RELIANCE", 1484.0)
    assert chain.update_atm(now)
    atm = chain.strikes[chain.atm_index]
    assert abs(atm - chain.forward(now)) <= 5.0
    assert len(chain.window_symbols()) == 10
    assert not chain.update_atm(now)  # unchanged
    chain.set_underlying("NSE", "RELIANCE", 1531.0)
    assert chain.update_atm(now)
    assert chain.strikes[chain.atm_index] > atm
    chain.set_underlying("NSE", "RELIANCE", 2000.0)  # past the last listed strike: the window is clipped
    chain.update_atm(now)
    assert list(chain.window()) == [18, 19, 20]


def test_compute_has_every_key_never_nan_and_says_why_a_leg_has_no_iv() -> None:
    chain = _chain(future=True)
    now = int(dt.datetime.now(IST).timestamp() * 1000)
    code = chain.spec.expiry.strftime("%d%b%y").upper()
    assert chain.set_underlying("NFO", f"RELIANCE{code}FUT", 1500.0)
    chain.update_atm(now)
    chain.set_leg(f"RELIANCE{code}1500CE", 20.0, 19.9, 20.1, 100, 5000)
    chain.set_leg(f"RELIANCE{code}1500PE", 20.0, 0.0, 0.0, 100, 7000)  # no book: the LTP is used
    chain.set_leg(f"RELIANCE{code}1490CE", 1.0, 0.0, 0.0, 100, 1000)  # under intrinsic (10): no solution
    data = chain.compute(now)
    assert data["model"] == "black76" and data["underlying_source"] == "future"
    assert data["atm_strike"] == 1500.0 and data["underlying_price"] == 1500.0
    rows = {row["strike"]: row for row in data["strikes"]}
    assert rows[1500.0]["ce"]["iv_status"] == "ok" and rows[1500.0]["pe"]["iv_status"] == "ok"
    assert rows[1500.0]["ce"]["iv"] == pytest.approx(rows[1500.0]["pe"]["iv"], rel=1e-6)  # parity on a future
    assert rows[1490.0]["ce"]["iv_status"] == "no_solution" and rows[1490.0]["ce"]["iv"] == 0.0
    assert rows[1510.0]["ce"]["iv_status"] == "no_price"
    assert data["pcr"] == pytest.approx(7000 / 6000, abs=1e-4)  # 4 decimals
    for row in data["strikes"]:
        for side in ("ce", "pe"):
            for key, value in row[side].items():
                if isinstance(value, float):
                    assert math.isfinite(value), (key, row)
