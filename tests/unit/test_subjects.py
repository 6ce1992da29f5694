"""NATS names of bus topics: every exact symbol round-trips, every name is one valid subject token and
a valid KV key; control topics and prefixes map both ways; nothing else parses."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from openalgo_proxy import topics
from openalgo_proxy.bus_nats import BusEngineError, check_server, server_version
from openalgo_proxy.config import BusSettings
from openalgo_proxy.model import Mode
from openalgo_proxy.subjects import Names, escape, unescape

KV_KEY = re.compile(r"^[-/_=.a-zA-Z0-9]+$")
TOKEN = re.compile(r"^[^.*>\s]+$")
names_text = st.text(min_size=1, max_size=40).filter(topics.valid_name)
N = Names("oa")


@given(names_text)
def test_escape_round_trips_and_builds_one_token(name: str) -> None:
    token = escape(name)
    assert unescape(token) == name
    assert TOKEN.match(token) and KV_KEY.match(token)


@given(names_text, names_text, st.sampled_from(list(Mode)))
def test_market_data_topics_round_trip_through_subjects_and_interest_keys(ex: str, sym: str, mode: Mode) -> None:
    topic = topics.bus_topic(ex, sym, mode)
    subject = N.subject(topic)
    assert subject.startswith("oa.md.") and len(subject.split(".")) == 5
    assert N.topic(subject) == topic
    key = N.interest_key("host-1-abc", topic)
    assert KV_KEY.match(key)
    assert N.parse_interest_key(key) == ("host-1-abc", topic)


@pytest.mark.parametrize(
    ("exchange", "symbol", "subject"),
    [
        ("NSE", "M&M", "oa.md.NSE.M=26M.2"),
        ("NSE_INDEX", "Nifty 50", "oa.md.NSE_INDEX.Nifty=2050.2"),
        ("NSE", "BAJAJ-AUTO", "oa.md.NSE.BAJAJ-AUTO.2"),
        ("NFO", "A.B*C>D", "oa.md.NFO.A=2EB=2AC=3ED.2"),
        ("BSE", "a=b", "oa.md.BSE.a=3Db.2"),
    ],
)
def test_known_symbols(exchange: str, symbol: str, subject: str) -> None:
    assert N.subject(topics.bus_topic(exchange, symbol, 2)) == subject
    assert N.topic(subject) == topics.bus_topic(exchange, symbol, 2)


def test_deeper_books_keep_their_own_subject() -> None:
    deep = topics.bus_topic("NSE", "M&M", Mode.DEPTH, 20)
    assert N.subject(deep) == "oa.md.NSE.M=26M.D020" != N.subject(topics.bus_topic("NSE", "M&M", Mode.DEPTH))
    assert N.topic(N.subject(deep)) == deep
    assert N.parse_interest_key(N.interest_key("p", deep)) == ("p", deep)
    with pytest.raises(ValueError):
        N.topic("oa.md.NSE.SBIN.D021")


def test_control_topics_and_prefixes() -> None:
    assert N.subject(topics.status_topic("angel")) == "oa.ctl.status.angel"
    assert N.topic("oa.ctl.status.angel") == topics.status_topic("angel")
    reject = topics.reject_topic(topics.bus_topic("NSE", "M&M", 1))
    assert N.topic(N.subject(reject)) == reject
    orders = topics.orders_topic("angel", "A 1")
    assert N.topic(N.subject(orders)) == orders
    assert N.subscription(topics.STATUS_PREFIX) == "oa.ctl.status.>"
    assert N.subscription(topics.REJECT_PREFIX) == "oa.ctl.reject.>"


@pytest.mark.parametrize(
    "subject", ["oa.md.NSE.SBIN", "oa.md.NSE.SBIN.12", "oa.md.NSE.S%BIN.1", "oa.md.NSE.=ZZ.1", "x.md.NSE.SBIN.1",
                "oa.ctl.bogus.x", "oa.md.NSE.=FF.1"],
)  # fmt: skip
def test_foreign_subjects_do_not_parse(subject: str) -> None:
    with pytest.raises(ValueError):
        N.topic(subject)


def test_prefix_is_checked_and_names_buckets() -> None:
    names = Names("desk-2.oa")
    assert names.interest_bucket == "desk_2_oa_interest" and names.leader_bucket == "desk_2_oa_leader"
    for bad in ("", "a..b", "a b", "a.*", ">"):
        with pytest.raises(ValueError):
            Names(bad)


def test_old_servers_are_refused_in_one_line() -> None:
    assert server_version({"version": "2.15.1"}) == (2, 15, 1)
    assert server_version({"version": "2.11.0-beta.2"}) == (2, 11, 0)
    check_server({"version": "2.11.0"})
    for old in ("2.9.10", "2.10.29", "1.4.1"):
        with pytest.raises(BusEngineError, match=rf"nats-server {re.escape(old)} is too old") as caught:
            check_server({"version": old})
        assert "\n" not in str(caught.value)


def test_bus_settings_default_to_zmq_and_validate_nats_options() -> None:
    assert BusSettings.model_validate({}).engine == "zmq"
    nats = BusSettings.model_validate({"engine": "nats", "urls": ["nats://a:4222", "nats://b:4222"]})
    assert nats.lease_ttl == 2.0 and nats.prefix == "oa"
    with pytest.raises(ValueError):
        BusSettings.model_validate({"engine": "redis"})
    with pytest.raises(ValueError):
        BusSettings.model_validate({"engine": "nats", "lease_ttl": 0.5})  # NATS TTLs start at 1 s
