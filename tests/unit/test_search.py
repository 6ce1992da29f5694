"""Instrument search (pure): ranking, bounds, exchange filters and suggestions."""

from __future__ import annotations

import pytest

from openalgo_proxy.brokers.market import UNIVERSE, future_symbol
from openalgo_proxy.search import MAX_LIMIT, Listing, SearchIndex, split_query, within_distance


@pytest.fixture(scope="module")
def index() -> SearchIndex:
    return SearchIndex(
        Listing(lst.symbol, lst.exchange, lst.name, lst.instrument_type, lst.tick_size, lst.lot_size)
        for lst in UNIVERSE
    )


def names(found: list[Listing]) -> list[str]:
    return [item.qualified for item in found]


def test_exact_symbol_first_then_prefix_shortest_first(index: SearchIndex) -> None:
    found = names(index.search("nifty"))
    assert found[0] == "NSE_INDEX:NIFTY"
    assert f"NFO:{future_symbol('NIFTY')}" in found
    assert names(index.search("BANK"))[:2] == ["NSE_INDEX:BANKNIFTY", f"NFO:{future_symbol('BANKNIFTY')}"]


def test_words_of_the_name_and_substrings_match(index: SearchIndex) -> None:
    assert "NSE:ICICIBANK" in names(index.search("bank"))  # substring of the symbol
    assert names(index.search("larsen")) == ["NSE:LT"]  # a word of the name
    assert "NSE:TCS" in names(index.search("consultancy"))


def test_typos_find_the_closest_symbol(index: SearchIndex) -> None:
    assert names(index.search("RELAINCE"))[0] == "NSE:RELIANCE"
    assert names(index.search("INFOSIS")) == [] or names(index.search("INFOSIS"))[0] == "NSE:INFY"
    assert names(index.search("HDFCBNK"))[0] == "NSE:HDFCBANK"


def test_exchange_filter_in_the_query_or_as_a_parameter(index: SearchIndex) -> None:
    assert names(index.search("NFO:NIFTY"))[0] == f"NFO:{future_symbol('NIFTY')}"
    assert {item.exchange for item in index.search("nifty", exchange="nfo")} == {"NFO"}
    assert split_query(" nse:  infy ", None) == ("INFY", "NSE")
    assert index.search("RELIANCE", exchange="MCX") == []


def test_results_are_bounded_and_carry_the_metadata(index: SearchIndex) -> None:
    assert len(index.search("a", limit=5)) == 5
    assert len(index.search("a", limit=10_000)) <= MAX_LIMIT
    assert index.search("") == [] and index.search("   ") == []
    (usd,) = index.search("USDINR", exchange="CDS")
    assert usd.as_dict() == {
        "symbol": future_symbol("USDINR"),
        "exchange": "CDS",
        "name": "USDINR",
        "instrument_type": "FUTCUR",
        "tick_size": 0.0025,
        "lot_size": 1000,
    }


def test_suggestions_for_an_unknown_name(index: SearchIndex) -> None:
    assert names(index.suggest("NIFTY", "NSE"))[0] == "NSE_INDEX:NIFTY"
    assert names(index.suggest("CRUDEOIL", "MCX"))[0] == f"MCX:{future_symbol('CRUDEOIL')}"
    assert names(index.suggest("USDINR", "CDS")) == [f"CDS:{future_symbol('USDINR')}"]
    assert names(index.suggest("RELAINCE", "NSE"))[0] == "NSE:RELIANCE"
    assert index.suggest("ZZZZZZZZ", "NSE") == []


def test_edit_distance_is_banded() -> None:
    assert within_distance("RELIANCE", "RELAINCE", 2) == 2
    assert within_distance("INFY", "INFY", 0) == 0
    assert within_distance("ABCDEFGH", "ZZZZZZZZ", 2) is None
    assert within_distance("AB", "ABCDE", 2) is None


def test_a_full_size_master_gives_bounded_ranked_results() -> None:
    months = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
    big = SearchIndex(
        Listing(f"SYM{i % 3000}{months[i % 12]}{i}CE", "NFO", f"NAME {i % 3000}", "CE", 0.05, 50)
        for i in range(150_000)  # an Angel master's size
    )
    found = big.search("SYM12")
    assert len(found) == 20 and all(item.symbol.startswith("SYM12") for item in found)
    assert [len(item.symbol) for item in found] == sorted(len(item.symbol) for item in found)
    assert big.search("XQZ") == []
