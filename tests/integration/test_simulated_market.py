"""Every broker simulator lists the one simulated market (brokers/market.csv): the same instruments,
each under the id the table gives that broker, equities with their ISIN where the broker keys by it.

Each broker's real adapter downloads its simulator's instrument master over HTTP and parses it, so
this checks what a client of that broker would see, not the simulator's internals."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from openalgo_proxy.brokers.angel import simulator as angel_sim
from openalgo_proxy.brokers.base import FeedOptions
from openalgo_proxy.brokers.dhan.local import LocalDhanAdapter
from openalgo_proxy.brokers.market import UNIVERSE, Listing
from openalgo_proxy.brokers.mstock import simulator as mstock_sim
from openalgo_proxy.brokers.mstock.adapter import EXCHANGES as MSTOCK_EXCHANGES
from openalgo_proxy.brokers.noren.local import LocalNorenAdapter
from openalgo_proxy.brokers.pooled import PooledAdapter
from openalgo_proxy.brokers.upstox.local import LocalUpstoxAdapter
from openalgo_proxy.brokers.zerodha import simulator as kite_sim

OPTIONS = FeedOptions(ticks_per_second=0.0, seed=1)
UPSTOX_SEGMENTS = {"NSE": "NSE_EQ", "BSE": "BSE_EQ", "NFO": "NSE_FO", "MCX": "MCX_FO", "CDS": "NCD_FO"}


def _drop(_: object) -> None:
    return None


@contextlib.asynccontextmanager
async def _served(name: str) -> AsyncIterator[PooledAdapter[Any, Any]]:
    """The broker's adapter, started against a simulator with the default (shared) listings."""
    sim: Any = None
    if name == "angel":
        sim = angel_sim.AngelSimulator()
    elif name == "mstock":
        sim = mstock_sim.MStockSimulator()
    elif name == "zerodha":
        sim = kite_sim.KiteSimulator()
    if sim is not None:
        await sim.start()
        adapter: Any = {"angel": angel_sim, "mstock": mstock_sim, "zerodha": kite_sim}[name].adapter_for(sim, OPTIONS)
    else:
        adapter = {
            "dhan": lambda: LocalDhanAdapter(OPTIONS),
            "noren": lambda: LocalNorenAdapter(OPTIONS, "shoonya"),
            "upstox": lambda: LocalUpstoxAdapter(OPTIONS),
        }[name]()
    try:
        await adapter.start(_drop, _drop)
        assert isinstance(adapter, PooledAdapter)
        yield adapter
    finally:
        await adapter.stop()
        if sim is not None:
            await sim.stop()


def _upstox_key(listing: Listing) -> str:
    if listing.upstox_key:
        return listing.upstox_key
    return f"{UPSTOX_SEGMENTS[listing.exchange]}|{listing.isin or listing.exchange_token}"


#: broker -> (the table's id of a listing at that broker, what the parsed master says it is)
IDS: dict[str, Callable[[Listing], str]] = {
    "angel": lambda lst: lst.angel_token,
    "mstock": lambda lst: lst.angel_token,
    "zerodha": lambda lst: str(lst.kite_token),
    "dhan": lambda lst: lst.dhan_id,
    "noren": lambda lst: lst.exchange_token,
    "upstox": _upstox_key,
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("broker", sorted(IDS))
async def test_every_simulator_lists_the_one_market_under_the_tables_ids(broker: str) -> None:
    listings = [lst for lst in UNIVERSE if broker != "mstock" or lst.exchange in MSTOCK_EXCHANGES]
    async with _served(broker) as adapter:
        index = adapter.index
        assert index is not None
        listed = {(exchange, symbol) for exchange, symbols in adapter.directory().items() for symbol in symbols}
        assert listed == {(lst.exchange, lst.symbol) for lst in listings}
        for listing in listings:
            instrument = index.lookup(listing.exchange, listing.symbol)
            assert instrument is not None, listing.symbol
            wire = index.key_of(instrument)
            seen = wire if broker == "upstox" else instrument.token
            assert seen == IDS[broker](listing), (listing.symbol, wire, instrument.token)
            if not listing.is_index:  # brokers give indices no tick size (parsers default it)
                assert (instrument.tick_size, instrument.lot_size) == (listing.tick_size, listing.lot_size), (
                    listing.symbol
                )
