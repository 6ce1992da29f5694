"""Upstox's instrument master: naming rules, ISIN keys, the simulated universe's master."""

from __future__ import annotations

import gzip
import json

import pytest

from openalgo_proxy.brokers.market import UNIVERSE, future_symbol
from openalgo_proxy.brokers.upstox import instruments
from openalgo_proxy.brokers.upstox.instruments import InstrumentMasterError, parse_master

RECORDS = [
    {
        "segment": "NSE_EQ",
        "name": "RELIANCE INDUSTRIES LTD",
        "exchange": "NSE",
        "isin": "INE002A01018",
        "instrument_type": "EQ",
        "instrument_key": "NSE_EQ|INE002A01018",
        "lot_size": 1,
        "freeze_quantity": 100000.0,
        "exchange_token": "2885",
        "tick_size": 5.0,
        "trading_symbol": "RELIANCE",
        "short_name": "Reliance Industries",
        "security_type": "NORMAL",
    },
    {
        "segment": "NSE_INDEX",
        "name": "Nifty 50",
        "exchange": "NSE",
        "instrument_type": "INDEX",
        "instrument_key": "NSE_INDEX|Nifty 50",
        "exchange_token": "26000",
        "trading_symbol": "NIFTY",
    },
    {
        "segment": "NSE_INDEX",
        "name": "Nifty Bank",
        "exchange": "NSE",
        "instrument_type": "INDEX",
        "instrument_key": "NSE_INDEX|Nifty Bank",
        "trading_symbol": "NIFTY BANK",
    },
    {
        "segment": "NSE_INDEX",
        "name": "Nifty Auto",
        "instrument_key": "NSE_INDEX|Nifty Auto",
        "trading_symbol": "NIFTY AUTO",
    },
    {
        "segment": "NSE_FO",
        "name": "NIFTY",
        "exchange": "NSE",
        "expiry": 1767090600000,  # 2025-12-30 16:00 IST
        "instrument_type": "FUT",
        "underlying_symbol": "NIFTY",
        "instrument_key": "NSE_FO|52175",
        "lot_size": 75,
        "exchange_token": "52175",
        "tick_size": 10.0,
        "trading_symbol": "NIFTY FUT 30 DEC 25",
    },
    {
        "segment": "NSE_FO",
        "name": "NIFTY",
        "expiry": 1767090600000,
        "instrument_type": "CE",
        "strike_price": 26000.0,
        "underlying_symbol": "NIFTY",
        "instrument_key": "NSE_FO|40001",
        "lot_size": 75,
        "exchange_token": "40001",
        "tick_size": 5.0,
        "trading_symbol": "NIFTY 26000 CE 30 DEC 25",
    },
    {
        "segment": "NCD_FO",
        "expiry": 1767090600000,
        "instrument_type": "PE",
        "strike_price": 89.25,
        "underlying_symbol": "USDINR",
        "instrument_key": "NCD_FO|9001",
        "lot_size": 1,
        "tick_size": 0.25,
        "trading_symbol": "USDINR 89.25 PE 30 DEC 25",
    },
    {"segment": "BSE_EQ", "instrument_key": "BSE_EQ|INE002A01018", "trading_symbol": "RELIANCE", "tick_size": 5.0},
    {"segment": "BSE_INDEX", "name": "SENSEX", "instrument_key": "BSE_INDEX|SENSEX", "trading_symbol": "SENSEX"},
    {
        "segment": "BSE_FO",
        "expiry": 1767090600000,
        "instrument_type": "FUT",
        "underlying_symbol": "SENSEX",
        "instrument_key": "BSE_FO|1101",
        "lot_size": 20,
        "tick_size": 5.0,
        "trading_symbol": "SENSEX FUT 30 DEC 25",
    },
    {
        "segment": "MCX_FO",
        "expiry": 1767090600000,
        "instrument_type": "FUT",
        "underlying_symbol": "CRUDEOIL",
        "instrument_key": "MCX_FO|450161",
        "lot_size": 100,
        "tick_size": 100.0,
        "trading_symbol": "CRUDEOIL FUT 30 DEC 25",
    },
    {"segment": "NSE_COM", "instrument_key": "NSE_COM|1", "trading_symbol": "GOLD"},
    {"segment": "GLOBAL_INDEX", "instrument_key": "GLOBAL_INDEX|DJI", "trading_symbol": "DJI"},
    {"segment": "NSE_EQ", "instrument_key": "NSE_EQ|INE000000000", "trading_symbol": "RELIANCE"},  # a duplicate
]


def test_parse_master_names_and_keys() -> None:
    index = parse_master(gzip.compress(json.dumps(RECORDS).encode()))
    assert sorted(index.directory().items()) == [
        ("BFO", ["SENSEX30DEC25FUT"]),
        ("BSE", ["RELIANCE"]),
        ("BSE_INDEX", ["SENSEX"]),
        ("CDS", ["USDINR30DEC2589.25PE"]),
        ("MCX", ["CRUDEOIL30DEC25FUT"]),
        ("NFO", ["NIFTY30DEC25FUT", "NIFTY30DEC2526000CE"]),
        ("NSE", ["RELIANCE"]),
        ("NSE_INDEX", ["NIFTY", "BANKNIFTY", "NIFTYAUTO"]),
    ]
    rel = index.lookup("NSE", "RELIANCE")
    assert rel is not None and index.key_of(rel) == "NSE_EQ|INE002A01018"
    assert (rel.token, rel.tick_size, rel.lot_size, rel.name) == ("2885", 0.05, 1, "RELIANCE INDUSTRIES LTD")
    fut = index.lookup("NFO", "NIFTY30DEC25FUT")
    assert fut is not None and index.key_of(fut) == "NSE_FO|52175" and fut.tick_size == 0.1 and fut.lot_size == 75
    assert index.by_key("NSE_INDEX|Nifty 50") == index.lookup("NSE_INDEX", "NIFTY")
    assert index.skipped == 1
    kinds = {
        (i.exchange, i.symbol): i.instrument_type
        for e, names in index.directory().items()
        for s in names
        if (i := index.lookup(e, s))
    }
    assert kinds == {
        ("NSE", "RELIANCE"): "EQ",
        ("NSE_INDEX", "NIFTY"): "INDEX",
        ("NSE_INDEX", "BANKNIFTY"): "INDEX",
        ("NSE_INDEX", "NIFTYAUTO"): "INDEX",
        ("NFO", "NIFTY30DEC25FUT"): "FUT",
        ("NFO", "NIFTY30DEC2526000CE"): "CE",
        ("CDS", "USDINR30DEC2589.25PE"): "PE",
        ("BSE", "RELIANCE"): "EQ",
        ("BSE_INDEX", "SENSEX"): "INDEX",
        ("BFO", "SENSEX30DEC25FUT"): "FUT",
        ("MCX", "CRUDEOIL30DEC25FUT"): "FUT",
    }
    crude = index.lookup("MCX", "CRUDEOIL30DEC25FUT")
    assert crude is not None and crude.tick_size == 1.0 and crude.lot_size == 100


def test_plain_json_is_accepted_and_garbage_refused() -> None:
    assert len(parse_master(json.dumps(RECORDS[:1]).encode())) == 1
    with pytest.raises(InstrumentMasterError):
        parse_master(b'{"not": "a list"}')
    with pytest.raises(InstrumentMasterError):
        parse_master(b"\x1f\x8bnot gzip at all")


def test_the_simulated_master_lists_the_simulated_universe() -> None:
    index = parse_master(instruments.master_gzip(UNIVERSE))
    assert len(index) == len(UNIVERSE)
    for listing in UNIVERSE:
        found = index.lookup(listing.exchange, listing.symbol)
        assert found is not None, listing
        assert index.key_of(found) == instruments.listing_key(listing)
        assert found.tick_size == listing.tick_size and found.lot_size == listing.lot_size
    assert index.lookup("NSE", "RELIANCE") is not None
    assert instruments.listing_key(UNIVERSE[0]) == "NSE_EQ|INE002A01018"
    assert index.lookup("MCX", future_symbol("CRUDEOIL")) is not None
    assert index.lookup("CDS", future_symbol("USDINR")) is not None
    assert index.by_key("NSE_INDEX|Nifty Bank") == index.lookup("NSE_INDEX", "BANKNIFTY")
