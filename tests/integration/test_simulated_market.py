"""Every broker simulator lists the one simulated market (brokers/market.csv): the same instruments,
each under the id the table gives that broker, equities with their ISIN where the broker keys by it.

Each broker's real adapter downloads its simulator's instrument master over HTTP and parses it, so
this checks what a client of that broker would see, not the simulator's internals."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from openalgo_proxy.brokers import registry
from openalgo_proxy.brokers.base import FeedOptions
from openalgo_proxy.brokers.market import OPTIONS as OPTION_SERIES
from openalgo_proxy.brokers.market import UNIVERSE, Listing
from openalgo_proxy.brokers.mstock.adapter import EXCHANGES as MSTOCK_EXCHANGES
from openalgo_proxy.brokers.pooled import PooledAdapter

OPTIONS = FeedOptions(ticks_per_second=0.0, seed=1)
UPSTOX_SEGMENTS = {"NSE": "NSE_EQ", "BSE": "BSE_EQ", "NFO": "NSE_FO", "MCX": "MCX_FO", "CDS": "NCD_FO"}


def _drop(_: object) -> None:
    return None


@contextlib.asynccontextmanager
async def _served(name: str) -> AsyncIterator[PooledAdapter[Any, Any]]:
    """The broker's adapter, started against its simulator (the registry's) with the default listings."""
    module = registry.spec("shoonya" if name == "noren" else name).simulator_module()
    sim = module.simulator_for(OPTIONS)
    await sim.start()
    adapter = module.adapter_for(sim, OPTIONS)
    try:
        await adapter.start(_drop, _drop)
        assert isinstance(adapter, PooledAdapter)
        yield adapter
    finally:
        await adapter.stop()
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
    if broker == "angel":  # the local Angel feed also lists the option series the chain service prices
        listings += OPTION_SERIES
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
