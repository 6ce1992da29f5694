"""Dhan's CSV instrument master: client names, wire keys (segment, security id), tick sizes, lots."""

from __future__ import annotations

from pathlib import Path

import pytest

from openalgo_proxy.brokers.dhan.codec import Segment
from openalgo_proxy.brokers.dhan.instruments import (
    InstrumentMasterError,
    listing_key,
    master_csv,
    parse_master,
    wire_key,
)
from openalgo_proxy.brokers.market import UNIVERSE

MASTER = (Path(__file__).parents[2] / "fixtures" / "dhan" / "api-scrip-master.csv").read_bytes()


@pytest.mark.parametrize(
    ("exchange", "symbol", "segment", "security_id", "tick", "lot"),
    [
        ("NSE", "RELIANCE", Segment.NSE_EQ, 2885, 0.1, 1),
        ("NSE_INDEX", "BANKNIFTY", Segment.IDX_I, 25, 0.05, 1),
        ("NSE_INDEX", "INDIAVIX", Segment.IDX_I, 21, 0.05, 1),
        ("BSE_INDEX", "SENSEX", Segment.IDX_I, 51, 0.05, 1),
        ("NFO", "RELIANCE29SEP26700CE", Segment.NSE_FNO, 106277, 0.05, 500),
        ("NFO", "NIFTY30DEC25FUT", Segment.NSE_FNO, 52175, 0.1, 75),
        ("NFO", "NIFTY30DEC2526050.5PE", Segment.NSE_FNO, 71402, 0.05, 75),
        ("CDS", "EURINR29DEC2590CE", Segment.NSE_CURRENCY, 2885, 0.0025, 1000),
        ("CDS", "USDINR29DEC25FUT", Segment.NSE_CURRENCY, 1185, 0.0025, 1000),
        ("BSE", "RELIANCE", Segment.BSE_EQ, 500325, 0.05, 1),
        ("BFO", "SENSEX24DEC25FUT", Segment.BSE_FNO, 1130203, 0.05, 20),
        ("BCD", "USDINR26DEC25FUT", Segment.BSE_CURRENCY, 9001, 0.0025, 1000),
        ("MCX", "CRUDEOIL19DEC25FUT", Segment.MCX_COMM, 450161, 1.0, 100),
    ],
)
def test_rows_become_client_names_with_wire_keys(
    exchange: str, symbol: str, segment: Segment, security_id: int, tick: float, lot: int
) -> None:
    index = parse_master(MASTER)
    instrument = index.lookup(exchange, symbol)
    assert instrument is not None, (exchange, symbol)
    assert (instrument.tick_size, instrument.lot_size) == (tick, lot)
    assert wire_key(instrument) == index.key_of(instrument) == (int(segment), security_id)
    assert index.by_key((int(segment), security_id)) == instrument


def test_security_ids_are_unique_only_per_segment() -> None:
    index = parse_master(MASTER)
    equity = index.by_key((int(Segment.NSE_EQ), 2885))
    currency = index.by_key((int(Segment.NSE_CURRENCY), 2885))
    assert equity is not None and currency is not None
    assert (equity.symbol, currency.symbol) == ("RELIANCE", "EURINR29DEC2590CE")


def test_rows_we_cannot_serve_are_skipped() -> None:
    index = parse_master(MASTER)
    assert len(index) == 14  # the 13 above and NIFTY; the four malformed or foreign rows are not
    assert set(index.exchanges()) == {"NSE", "NSE_INDEX", "BSE_INDEX", "NFO", "CDS", "BSE", "BFO", "BCD", "MCX"}


def test_a_csv_without_the_needed_columns_is_refused() -> None:
    with pytest.raises(InstrumentMasterError, match="SEM_SMST_SECURITY_ID"):
        parse_master(b"SEM_EXM_EXCH_ID,SEM_SEGMENT,SEM_TRADING_SYMBOL\nNSE,E,RELIANCE\n")


def test_simulated_master_names_every_listing_with_its_dhan_key() -> None:
    index = parse_master(master_csv(UNIVERSE))
    assert len(index) == len(UNIVERSE)
    for listing in UNIVERSE:
        instrument = index.lookup(listing.exchange, listing.symbol)
        assert instrument is not None, listing.symbol
        assert wire_key(instrument) == listing_key(listing)
        if not listing.is_index:
            assert instrument.tick_size == listing.tick_size and instrument.lot_size == listing.lot_size
