"""The client's decoding against the data contract encoder (payload.py), and its small helpers."""

from __future__ import annotations

import json
import random

import msgspec
import pytest

from openalgo_proxy.brokers.market import SimulatedMarket
from openalgo_proxy.client.backoff import Backoff, BackoffState
from openalgo_proxy.client.messages import (
    ENVELOPE_FIELDS,
    TICK_TYPES,
    DepthTick,
    LtpTick,
    ProtocolViolation,
    QuoteTick,
    Reply,
    decode,
)
from openalgo_proxy.client.symbols import Stream, parse_instrument, streams
from openalgo_proxy.model import Mode
from openalgo_proxy.payload import KEYS_BY_MODE, encode_data


def envelope(mode: Mode, data: bytes, seq: int = 7) -> bytes:
    head = {"type": "market_data", "topic": "RELIANCE.NSE", "symbol": "RELIANCE", "exchange": "NSE"}
    head |= {"mode": int(mode), "broker": "simulator", "seq": seq}
    return json.dumps(head)[:-1].encode() + b',"data":' + data + b"}"


@pytest.mark.parametrize("mode", list(Mode))
def test_tick_types_carry_exactly_the_contract_keys(mode: Mode) -> None:
    fields = set(TICK_TYPES[mode].__struct_fields__) - ENVELOPE_FIELDS
    assert fields == set(KEYS_BY_MODE[mode])


@pytest.mark.parametrize(("mode", "kind"), [(Mode.LTP, LtpTick), (Mode.QUOTE, QuoteTick), (Mode.DEPTH, DepthTick)])
def test_encoded_ticks_decode_to_the_mode_type(mode: Mode, kind: type[LtpTick]) -> None:
    tick = SimulatedMarket(seed=3).advance("NSE", "RELIANCE")
    decoded = decode(envelope(mode, encode_data(tick, mode), seq=42))
    assert type(decoded) is kind
    assert isinstance(decoded, LtpTick)
    assert (decoded.symbol, decoded.exchange, decoded.mode, decoded.seq) == ("RELIANCE", "NSE", mode, 42)
    assert decoded.broker == "simulator" and decoded.ltp == tick.ltp and decoded.name == "NSE:RELIANCE"
    if isinstance(decoded, DepthTick):
        assert decoded.depth.buy[0] == tick.bids[0] and len(decoded.depth.sell) == 5


def test_error_reply_keeps_code_message_and_request_id() -> None:
    reply = decode(b'{"type":"error","status":"error","code":"INVALID_MODE","message":"bad","request_id":"c9"}')
    assert isinstance(reply, Reply)
    assert (reply.type, reply.code, reply.message, reply.request_id) == ("error", "INVALID_MODE", "bad", "c9")


def test_subscription_reply_results() -> None:
    body = {"type": "subscription", "status": "partial", "subscriptions": [
        {"symbol": "A", "exchange": "NSE", "mode": 2, "topic": "A.NSE", "status": "success"},
        {"symbol": "B", "exchange": "NSE", "mode": 2, "topic": "B.NSE", "status": "error", "code": "SYMBOL_NOT_FOUND"},
    ]}  # fmt: skip
    reply = decode(msgspec.json.encode(body))
    assert isinstance(reply, Reply)
    assert [(r.symbol, r.ok, r.code) for r in reply.results()] == [("A", True, ""), ("B", False, "SYMBOL_NOT_FOUND")]


@pytest.mark.parametrize(
    "raw",
    [b"not json", b"[1,2]", b'{"status":"x"}', envelope(Mode.QUOTE, b'{"symbol":"X"}'), envelope(Mode.LTP, b"1")],
)
def test_malformed_messages_raise_protocol_violation(raw: bytes) -> None:
    with pytest.raises(ProtocolViolation):
        decode(raw)


def test_instrument_parsing() -> None:
    assert parse_instrument("nse:M&M") == ("NSE", "M&M")
    assert parse_instrument("nse:infy") == ("NSE", "INFY")  # as the web page and exchanges write it
    assert parse_instrument("NFO:A:B") == ("NFO", "A:B")
    for bad in ("RELIANCE", ":X", "NSE:", ""):
        with pytest.raises(ValueError):
            parse_instrument(bad)
    assert streams(["NSE:A", ("NSE", "A"), "BSE:A"], "depth") == [
        Stream("NSE", "A", Mode.DEPTH),
        Stream("BSE", "A", Mode.DEPTH),
    ]
    with pytest.raises(ValueError):
        streams(["NSE:A"], "fast")


def test_backoff_is_full_jitter_capped_and_resets() -> None:
    state = BackoffState(Backoff(initial=1.0, maximum=8.0), rng=random.Random(5))
    ceilings = [state.policy.ceiling(n) for n in range(6)]
    assert ceilings == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    delays = [state.next_delay() for _ in range(200)]
    assert all(0.0 <= d <= 8.0 for d in delays)
    assert max(delays[4:]) > 4.0  # reaches past the early ceilings
    state.reset()
    assert state.next_delay() <= 1.0
    assert state.next_delay(minimum=5.0) >= 5.0
    with pytest.raises(ValueError):
        Backoff(initial=0)


def test_a_snapshot_tick_says_so_and_a_live_one_does_not() -> None:
    tick = SimulatedMarket(seed=3).advance("NSE", "RELIANCE")
    live = decode(envelope(Mode.LTP, encode_data(tick, Mode.LTP)))
    marked = envelope(Mode.LTP, encode_data(tick, Mode.LTP)).replace(b', "seq": ', b', "snapshot": true, "seq": ')
    assert marked != envelope(Mode.LTP, encode_data(tick, Mode.LTP))
    replay = decode(marked)
    assert isinstance(live, LtpTick) and isinstance(replay, LtpTick)
    assert (live.snapshot, replay.snapshot) == (False, True) and replay.seq == live.seq == 7
