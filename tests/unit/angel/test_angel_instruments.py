"""Instrument master: naming rules, both-way mapping, file and URL loading with the day's disk cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aiohttp import web

from openalgo_proxy.brokers.angel.instruments import (
    InstrumentMaster,
    InstrumentMasterError,
    cache_path,
    load_master,
    parse_master,
    today_ist,
)
from openalgo_proxy.brokers.angel.simulator import master_records
from openalgo_proxy.brokers.market import UNIVERSE
from openalgo_proxy.model import Instrument

MASTER = Path(__file__).parents[2] / "fixtures" / "angel" / "scripmaster.json"


@pytest.fixture
def master() -> InstrumentMaster:
    return parse_master(MASTER.read_bytes())


@pytest.mark.parametrize(
    ("exchange", "symbol", "token", "key"),
    [
        ("NSE", "RELIANCE", "2885", (1, "2885")),
        ("NSE", "IDEA-BE", "14366", (1, "14366")),
        ("NSE", "INFY", "1594", (1, "1594")),
        ("NSE_INDEX", "NIFTY", "99926000", (1, "99926000")),
        ("NSE_INDEX", "BANKNIFTY", "99926009", (1, "99926009")),
        ("NSE_INDEX", "INDIAVIX", "99926017", (1, "99926017")),
        ("BSE_INDEX", "SENSEX", "99919000", (3, "99919000")),
        ("BSE", "RELIANCE", "500325", (3, "500325")),
        ("NFO", "NIFTY30DEC25FUT", "52175", (2, "52175")),
        ("NFO", "NIFTY30DEC2526000CE", "43650", (2, "43650")),
        ("BFO", "SENSEX25DECFUT", "1130203", (4, "1130203")),
        ("MCX", "CRUDEOIL19DEC25FUT", "450161", (5, "450161")),
        ("CDS", "USDINR29DEC25FUT", "1185", (13, "1185")),
        ("NCDEX", "DHANIYA20DEC25FUT", "66130", (7, "66130")),
    ],
)
def test_both_ways(master: InstrumentMaster, exchange: str, symbol: str, token: str, key: tuple[int, str]) -> None:
    instrument = master.lookup(exchange, symbol)
    assert instrument is not None
    assert instrument.token == token
    assert InstrumentMaster.key(instrument) == key
    assert master.by_token(*key) == instrument


def test_units_and_unknowns(master: InstrumentMaster) -> None:
    reliance = master.lookup("NSE", "RELIANCE")
    usdinr = master.lookup("CDS", "USDINR29DEC25FUT")
    nifty_fut = master.lookup("NFO", "NIFTY30DEC25FUT")
    assert reliance is not None and reliance.tick_size == 0.1
    assert usdinr is not None and usdinr.tick_size == 0.0025 and usdinr.lot_size == 1000
    assert nifty_fut is not None and nifty_fut.lot_size == 75
    assert master.lookup("NSE", "RELIANCE-EQ") is None
    assert master.lookup("NSE", "NOPE") is None
    assert master.lookup("XYZ", "ODD") is None
    assert master.by_token(1, "999") is None
    assert len(master) == 15
    assert set(master.exchanges()) == {"NSE", "NSE_INDEX", "BSE", "BSE_INDEX", "NFO", "BFO", "MCX", "CDS", "NCDEX"}
    assert "RELIANCE" in master.directory()["NSE"]


def test_bad_master_is_a_typed_error() -> None:
    with pytest.raises(InstrumentMasterError):
        parse_master(b'{"not":"a list"}')
    with pytest.raises(InstrumentMasterError):
        parse_master(b'[{"token": 5}]')


def test_simulator_master_names_every_listing() -> None:
    parsed = parse_master(json.dumps(master_records()).encode())
    assert len(parsed) == len(UNIVERSE)
    for listing in UNIVERSE:
        instrument = parsed.lookup(listing.exchange, listing.symbol)
        assert isinstance(instrument, Instrument), listing.symbol
        assert instrument.token == listing.angel_token
        assert instrument.tick_size == pytest.approx(listing.tick_size)
    assert InstrumentMaster([]).lookup("NSE", "RELIANCE") is None


async def test_load_from_path_and_missing_path(tmp_path: Path) -> None:
    master = await load_master(str(MASTER))
    assert master.lookup("NSE", "SBIN") is not None
    with pytest.raises(InstrumentMasterError):
        await load_master(str(tmp_path / "missing.json"))


async def test_url_download_is_cached_for_the_day(tmp_path: Path) -> None:
    hits = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal hits
        hits += 1
        return web.Response(body=MASTER.read_bytes(), content_type="application/json")

    app = web.Application()
    app.router.add_get("/master.json", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/master.json"
        first = await load_master(url, str(tmp_path))
        second = await load_master(url, str(tmp_path))
        assert hits == 1
        assert len(first) == len(second) == 15
        assert cache_path(str(tmp_path), url, today_ist()).exists()
        with pytest.raises(InstrumentMasterError):
            await load_master(url.replace("master.json", "missing.json"), str(tmp_path))
    finally:
        await runner.cleanup()


def test_instrument_types_in_one_vocabulary(master: InstrumentMaster) -> None:
    kinds = {
        (exchange, symbol): getattr(master.lookup(exchange, symbol), "instrument_type", None)
        for exchange, symbol in (
            ("NSE", "RELIANCE"),
            ("NSE_INDEX", "NIFTY"),
            ("NFO", "NIFTY30DEC25FUT"),
            ("NFO", "NIFTY30DEC2526000CE"),
            ("CDS", "USDINR29DEC25FUT"),
        )
    }
    assert list(kinds.values()) == ["EQ", "INDEX", "FUT", "CE", "FUT"], kinds
