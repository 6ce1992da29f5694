"""The bus control plane: every message round-trips, keeps its documented JSON, and fails clearly."""

from __future__ import annotations

import json

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from openalgo_proxy import control
from openalgo_proxy.errors import ControlMessageError, ErrorCode, ProxyError

text = st.text(max_size=20)
names = st.text(min_size=1, max_size=12)
counts = st.integers(min_value=0, max_value=2**53)
prices = st.floats(allow_nan=False, allow_infinity=False, width=64)

statuses = st.builds(
    control.FeedStatus,
    broker=names,
    state=st.sampled_from([s.value for s in control.FeedState]) | text,
    connections=counts,
    subscriptions=counts,
    topics=counts,
    reconnects=counts,
    decode_errors=counts,
    last_tick_age=prices,
    ticks=counts,
    exchanges=st.lists(names, max_size=4),
    instance=text,
    active_since=counts,
    standby=st.booleans(),
    time=counts,
)
infos = st.builds(
    control.InstrumentInfo,
    symbol=names,
    name=text,
    instrument_type=text,
    tick_size=prices,
    lot_size=st.integers(min_value=1, max_value=10**6),
)
directories = st.builds(
    control.InstrumentDirectory,
    broker=names,
    exchanges=st.lists(names, max_size=4),
    symbols=st.dictionaries(names, st.lists(names, max_size=5), max_size=4),
    instruments=st.dictionaries(names, st.lists(infos, max_size=3), max_size=3) | st.just(msgspec.UNSET),
)
orders = st.builds(
    control.OrderUpdate,
    user_id=names,
    mode=st.sampled_from(["live", "analyze"]),
    broker=names,
    orderid=names,
    symbol=names,
    exchange=names,
    action=st.sampled_from(["BUY", "SELL"]),
    quantity=counts,
    price=prices,
    trigger_price=prices,
    pricetype=st.sampled_from(["MARKET", "LIMIT", "SL", "SL-M"]),
    product=st.sampled_from(["CNC", "NRML", "MIS"]),
    order_status=st.sampled_from(["open", "complete", "rejected", "cancelled", "trigger pending"]),
    filled_quantity=counts,
    pending_quantity=counts,
    average_price=prices,
    rejection_reason=text,
)


@given(statuses)
def test_status_round_trip(status: control.FeedStatus) -> None:
    assert control.decode_status(control.encode_status(status)) == status


@given(directories)
def test_directory_round_trip(directory: control.InstrumentDirectory) -> None:
    assert control.decode_directory(control.encode_directory(directory)) == directory


@given(st.sampled_from(list(ErrorCode)), text)
def test_reject_round_trip(code: ErrorCode, message: str) -> None:
    reject = control.decode_reject(control.encode_reject(code, message))
    assert (reject.code, reject.message) == (code.value, message)


@given(orders)
def test_order_update_round_trip(update: control.OrderUpdate) -> None:
    assert control.decode_order_update(control.encode_order_update(update)) == update


def test_status_json_is_the_documented_shape() -> None:
    status = control.FeedStatus(
        broker="angel",
        state=control.FeedState.CONNECTED,
        connections=1,
        subscriptions=2,
        topics=3,
        reconnects=0,
        decode_errors=0,
        last_tick_age=0.5,
        ticks=9,
        exchanges=["NSE"],
        instance="1-ab",
        active_since=5,
        standby=False,
        time=7,
    )
    assert control.encode_status(status) == (
        b'{"broker":"angel","state":"connected","connections":1,"subscriptions":2,"topics":3,"reconnects":0,'
        b'"decode_errors":0,"last_tick_age":0.5,"ticks":9,"exchanges":["NSE"],"instance":"1-ab",'
        b'"active_since":5,"standby":false,"time":7}'
    )
    assert status.connected


def test_status_with_only_broker_and_state_decodes_with_defaults() -> None:
    status = control.decode_status(b'{"broker":"x","state":"connected"}')
    assert status.connected and status.exchanges == [] and status.last_tick_age == -1.0 and status.time == 0


def test_status_of_a_minimal_third_party_feed_decodes() -> None:
    # docs/bus.md: the keys every feed must send; extra keys are ignored
    status = control.decode_status(
        b'{"broker":"x","state":"connected","exchanges":["NSE"],"last_tick_age":-1,"connections":1,'
        b'"subscriptions":0,"topics":0,"reconnects":0,"time":1,"vendor_field":{"a":1}}'
    )
    assert status.connected and status.instance == "" and not status.standby and status.last_tick_age == -1.0


def test_directory_without_metadata_keeps_the_old_json() -> None:
    directory = control.InstrumentDirectory(broker="b", exchanges=["NSE"], symbols={"NSE": ["M&M", "SBIN"]})
    data = control.encode_directory(directory)
    assert data == b'{"broker":"b","exchanges":["NSE"],"symbols":{"NSE":["M&M","SBIN"]}}'
    # an old decoder (a plain dict reader) still reads a directory that carries metadata
    rich = control.InstrumentDirectory(
        broker="b",
        exchanges=["NSE"],
        symbols={"NSE": ["SBIN"]},
        instruments={"NSE": [control.InstrumentInfo(symbol="SBIN", name="STATE BANK", tick_size=0.05)]},
    )
    assert json.loads(control.encode_directory(rich))["symbols"] == {"NSE": ["SBIN"]}
    # a feed that leaves out `exchanges` (the proxy reads `symbols`) still decodes
    lean = control.decode_directory(b'{"broker":"b","symbols":{"NSE":["SBIN"]}}')
    assert lean.exchanges == [] and lean.instruments is msgspec.UNSET


def test_reject_json() -> None:
    assert control.encode_reject(ErrorCode.SYMBOL_NOT_FOUND, "no") == b'{"code":"SYMBOL_NOT_FOUND","message":"no"}'


def test_order_update_has_exactly_openalgos_keys() -> None:
    update = control.OrderUpdate(
        user_id="alice",
        mode="live",
        broker="angel",
        orderid="1",
        symbol="SBIN",
        exchange="NSE",
        action="BUY",
        quantity=1,
        price=0.0,
        trigger_price=0.0,
        pricetype="MARKET",
        product="MIS",
        order_status="trigger pending",
        filled_quantity=0,
        pending_quantity=1,
        average_price=0.0,
        rejection_reason="",
    )
    assert list(json.loads(control.encode_order_update(update))) == [
        "type",
        "user_id",
        "mode",
        "broker",
        "orderid",
        "symbol",
        "exchange",
        "action",
        "quantity",
        "price",
        "trigger_price",
        "pricetype",
        "product",
        "order_status",
        "filled_quantity",
        "pending_quantity",
        "average_price",
        "rejection_reason",
    ]
    assert json.loads(control.encode_order_update(update))["type"] == "order_update"


@pytest.mark.parametrize(
    ("decode", "data"),
    [
        (control.decode_status, b"not json"),
        (control.decode_status, b"[1,2]"),
        (control.decode_status, b'{"broker":"x"}'),
        (control.decode_status, b'{"state":"connected"}'),
        (
            control.decode_status,
            b'{"broker":"x","state":"connected","exchanges":"NSE","last_tick_age":0,'
            b'"connections":1,"subscriptions":0,"topics":0,"reconnects":0,"time":1}',
        ),
        (control.decode_directory, b'{"broker":"x","exchanges":[],"symbols":{"NSE":"SBIN"}}'),
        (control.decode_reject, b'{"code":1,"message":"m"}'),
        (control.decode_order_update, b'{"type":"order_update","mode":"paper"}'),
    ],
)
def test_bad_control_messages_raise_one_error(decode: object, data: bytes) -> None:
    assert callable(decode)
    with pytest.raises(ControlMessageError) as info:
        decode(data)
    assert isinstance(info.value, ProxyError) and isinstance(info.value, ValueError)
    assert not isinstance(info.value, msgspec.MsgspecError)
