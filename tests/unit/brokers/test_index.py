"""The instrument index: both ways, keys of any shape, clashes, restriction to exchanges."""

from __future__ import annotations

from openalgo_proxy.brokers.index import InstrumentIndex
from openalgo_proxy.model import Instrument


def inst(symbol: str, exchange: str = "NSE", token: str = "1") -> Instrument:
    return Instrument(symbol, exchange, token, 0.05, 1, symbol)


def test_both_ways_with_per_segment_keys() -> None:
    index: InstrumentIndex[tuple[str, int]] = InstrumentIndex()
    # the same id in two segments (Dhan) is two instruments
    assert index.add(inst("A", "NSE", "11"), ("NSE_EQ", 11))
    assert index.add(inst("B", "NFO", "11"), ("NSE_FNO", 11))
    a = index.lookup("NSE", "A")
    assert a is not None and index.by_key(("NSE_EQ", 11)) == a and index.key_of(a) == ("NSE_EQ", 11)
    assert index.by_key(("NSE_FNO", 11)) == index.lookup("NFO", "B")
    assert index.lookup("NSE", "B") is None and index.by_key(("BSE_EQ", 11)) is None
    assert index.exchanges() == ("NFO", "NSE") and index.directory() == {"NSE": ["A"], "NFO": ["B"]}


def test_clashes_keep_the_first_unless_replaced() -> None:
    index: InstrumentIndex[str] = InstrumentIndex()
    assert index.add(inst("A"), "INE001")
    assert not index.add(inst("A"), "INE002")  # same name
    assert not index.add(inst("C"), "INE001")  # same key
    assert index.skipped == 2 and len(index) == 1
    assert index.add(inst("A", token="9"), "INE009", replace=True)
    assert index.by_key("INE001") is None and index.by_key("INE009") == index.lookup("NSE", "A")


def test_restrict_to_exchanges() -> None:
    index: InstrumentIndex[int] = InstrumentIndex()
    index.add(inst("A", "NSE"), 1)
    index.add(inst("F", "NFO"), 2)
    index.restrict(["NFO"])
    assert index.exchanges() == ("NFO",) and index.by_key(1) is None and index.lookup("NFO", "F") is not None
