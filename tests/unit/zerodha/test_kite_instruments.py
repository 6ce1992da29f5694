"""Kite instrument master: parsing, client names both ways, file/gzip/URL loading and the day cache."""

from __future__ import annotations

import datetime as dt
import gzip
from pathlib import Path

import pytest
from aiohttp import web

from openalgo_proxy.brokers.zerodha import instruments as ki

FIXTURE = Path(__file__).parents[2] / "fixtures" / "zerodha" / "instruments.csv"


def master() -> ki.KiteInstruments:
    return ki.KiteInstruments(ki.parse_csv(FIXTURE.read_text()))


@pytest.mark.parametrize(
    ("exchange", "symbol", "token"),
    [
        ("NSE", "RELIANCE", 738561),
        ("BSE", "RELIANCE", 128083204),
        ("NSE_INDEX", "NIFTY", 256265),
        ("NSE_INDEX", "BANKNIFTY", 260105),
        ("NSE_INDEX", "FINNIFTY", 257801),
        ("NSE_INDEX", "INDIAVIX", 264969),
        ("BSE_INDEX", "SENSEX", 265),
        ("NSE_INDEX", "NIFTYMIDCAP100", 268041),
        ("NFO", "NIFTY30DEC25FUT", 13356802),
        ("NFO", "NIFTY09DEC2526000CE", 12345858),
        ("NFO", "NIFTY09DEC2525950.5PE", 12346114),
        ("BFO", "SENSEX24DEC25FUT", 206622725),
        ("MCX", "CRUDEOIL19DEC25FUT", 115241223),
        ("CDS", "USDINR29DEC25FUT", 303363),
    ],
)
def test_client_names_map_both_ways(exchange: str, symbol: str, token: int) -> None:
    m = master()
    inst = m.lookup(exchange, symbol)
    assert inst is not None and inst.token == str(token)
    assert m.by_token(token) == inst


def test_fields_and_skips() -> None:
    m = master()
    assert len(m) == 15
    assert m.skipped == 1  # unknown exchange XYZ; the malformed row never became a row
    fut = m.lookup("NFO", "NIFTY30DEC25FUT")
    assert fut is not None and fut.lot_size == 75 and fut.tick_size == 0.1 and fut.name == "NIFTY"
    nifty = m.lookup("NSE_INDEX", "NIFTY")
    assert nifty is not None and nifty.tick_size == 0.05 and nifty.lot_size == 1
    assert m.lookup("NSE", "NIFTY 50") is None and m.lookup("XYZ", "WEIRD") is None
    assert m.exchanges() == ("BFO", "BSE", "BSE_INDEX", "CDS", "MCX", "NFO", "NSE", "NSE_INDEX")
    assert sorted(m.directory()["NSE"]) == ["INFY", "RELIANCE"]
    only_mcx = m.restricted(["MCX"])
    assert only_mcx.exchanges() == ("MCX",) and only_mcx.by_token(738561) is None


def test_missing_column_is_an_error() -> None:
    with pytest.raises(ValueError, match="lacks columns"):
        ki.parse_csv("instrument_token,tradingsymbol\n1,X\n")


def test_blank_lines_short_rows_and_decimal_counts() -> None:
    header = ",".join(ki.COLUMNS)
    rows = ki.parse_csv(
        f"{header}\n\n"
        "738561,2885,RELIANCE\n"  # a short row: its missing cells are empty
        "13356802,52175,NIFTY25DECFUT,NIFTY,0,2025-12-30,0,0.1,75.0,FUT,NFO-FUT,NFO\n"  # a lot size as a decimal
        "408065,1594.5,INFY,INFOSYS,0,,0,0.1,1,EQ,NSE,NSE\n"  # an exchange token is an integer: malformed
    )
    assert [(r.instrument_token, r.tradingsymbol, r.exchange, r.lot_size) for r in rows] == [
        (738561, "RELIANCE", "", 0),
        (13356802, "NIFTY25DECFUT", "NFO", 75),
    ]


def test_format_csv_round_trips() -> None:
    rows = ki.parse_csv(FIXTURE.read_text())
    assert ki.parse_csv(ki.format_csv(rows)) == rows


async def test_load_from_plain_and_gzipped_file(tmp_path: Path) -> None:
    gz = tmp_path / "instruments.csv.gz"
    gz.write_bytes(gzip.compress(FIXTURE.read_bytes()))
    for source in (str(FIXTURE), str(gz)):
        m = await ki.load(source)
        assert m.lookup("NSE", "INFY") is not None


async def test_load_from_url_caches_for_the_day(tmp_path: Path) -> None:
    hits: list[str] = []

    async def serve(request: web.Request) -> web.Response:
        hits.append(request.headers.get("X-Kite-Version", ""))
        # gzipped body without Content-Encoding, as a CDN may serve it
        return web.Response(body=gzip.compress(FIXTURE.read_bytes()), content_type="text/csv")

    app = web.Application()
    app.router.add_get("/instruments", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        url = f"http://127.0.0.1:{port}/instruments"
        day = dt.date(2025, 12, 1)
        cache = str(tmp_path / "cache")
        first = await ki.load(url, cache, headers={"X-Kite-Version": "3"}, today=day)
        second = await ki.load(url, cache, today=day)
        assert hits == ["3"]  # the second load came from the cache
        assert len(first) == len(second) == 15
        await ki.load(url, cache, today=day + dt.timedelta(days=1))
        assert len(hits) == 2
        files = sorted(p.name for p in (tmp_path / "cache").iterdir())
        assert len(files) == 1 and files[0].endswith("2025-12-02.csv")  # yesterday's copy pruned
        bad = f"http://127.0.0.1:{port}/missing"
        with pytest.raises(ki.BrokerError):
            await ki.load(bad, None)
    finally:
        await runner.cleanup()


def test_instrument_types_in_one_vocabulary() -> None:
    m = master()
    kinds = [
        getattr(m.lookup(exchange, symbol), "instrument_type", None)
        for exchange, symbol in (
            ("NSE", "RELIANCE"),
            ("NSE_INDEX", "NIFTY"),
            ("NFO", "NIFTY30DEC25FUT"),
            ("NFO", "NIFTY09DEC2525950.5PE"),
        )
    ]
    assert kinds == ["EQ", "INDEX", "FUT", "PE"]
