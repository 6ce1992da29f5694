"""The Kite instrument master: CSV <-> rows, rows -> client-named Instruments, loading and caching.

Client names follow OpenAlgo so a client's symbol is the same whatever the broker: NSE cash by its
trading symbol, indices on NSE_INDEX/BSE_INDEX by short names (NIFTY 50 -> NIFTY), futures as
NAME + DDMMMYY + FUT, options as NAME + DDMMMYY + STRIKE + CE/PE.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import astuple, dataclass
from typing import Any, get_type_hints

from openalgo_proxy.brokers import master
from openalgo_proxy.brokers.index import InstrumentIndex
from openalgo_proxy.errors import BrokerError
from openalgo_proxy.model import Instrument, instrument_kind
from openalgo_proxy.topics import valid_name

__all__ = ["BrokerError", "KiteInstruments", "KiteRow", "format_csv", "load", "parse_csv"]

log = logging.getLogger(__name__)

DEFAULT_URL = "https://api.kite.trade/instruments"
EXCHANGES = frozenset({"NSE", "BSE", "NFO", "BFO", "MCX", "CDS", "BCD", "NCO"})
INDEX_SEGMENT = "INDICES"

# Kite index trading symbol -> OpenAlgo symbol. Others: the trading symbol without spaces.
INDEX_NAMES: Mapping[str, str] = {
    "NIFTY 50": "NIFTY",
    "NIFTY BANK": "BANKNIFTY",
    "NIFTY FIN SERVICE": "FINNIFTY",
    "NIFTY MID SELECT": "MIDCPNIFTY",
    "NIFTY NEXT 50": "NIFTYNXT50",
}
CACHE_PREFIX = "zerodha-instruments"


@dataclass(frozen=True, slots=True)
class KiteRow:
    """One line of the Kite instruments CSV, in Kite's names and units; the fields are its columns."""

    instrument_token: int
    exchange_token: int
    tradingsymbol: str
    name: str
    last_price: float
    expiry: str  # YYYY-MM-DD or ""
    strike: float
    tick_size: float
    lot_size: int
    instrument_type: str
    segment: str
    exchange: str


def _decimal(cell: str) -> float:
    return float(cell or 0)


# each column (the fields, in order) with how its stripped cell is read: an empty number is 0, but
# every row has its instrument token; a lot size may be written as a decimal
_READERS: dict[type, Callable[[str], Any]] = {int: lambda cell: int(cell or 0), float: _decimal, str: str}
_COLUMN_READERS = {name: _READERS[kind] for name, kind in get_type_hints(KiteRow).items()}
_COLUMN_READERS |= {"instrument_token": int, "lot_size": lambda cell: int(_decimal(cell))}
COLUMNS = tuple(_COLUMN_READERS)


def parse_csv(text: str) -> list[KiteRow]:
    """Rows of the CSV; ValueError if a required column is missing. Bad rows are skipped and logged."""
    reader = csv.reader(io.StringIO(text))
    header = next(reader, [])
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise ValueError(f"Kite instruments CSV lacks columns: {', '.join(missing)}")
    cells = [(header.index(column), read) for column, read in _COLUMN_READERS.items()]
    rows: list[KiteRow] = []
    bad = 0
    for record in filter(None, reader):  # blank lines are no rows
        record += [""] * (len(header) - len(record))  # a short row's missing cells are empty
        try:
            rows.append(KiteRow(*(read(record[at].strip()) for at, read in cells)))
        except ValueError:
            bad += 1
    if bad:
        log.warning("kite instruments: skipped %d malformed rows", bad)
    return rows


def format_csv(rows: Iterable[KiteRow]) -> str:
    """The CSV text of rows, as Kite serves it (the simulator's /instruments)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow(_num(value) if isinstance(value, float) else value for value in astuple(row))
    return out.getvalue()


def _num(value: float) -> str:
    return str(int(value)) if value == int(value) else repr(value)


def _expiry_code(expiry: str) -> str:
    """2025-12-30 -> 30DEC25."""
    return dt.date.fromisoformat(expiry).strftime("%d%b%y").upper()


def client_name(row: KiteRow) -> tuple[str, str] | None:
    """(client exchange, client symbol) for a row, or None if the row is not streamable here."""
    if row.segment == INDEX_SEGMENT:
        symbol = INDEX_NAMES.get(row.tradingsymbol, row.tradingsymbol.replace(" ", "").upper())
        return f"{row.exchange}_INDEX", symbol
    if row.exchange not in EXCHANGES:
        return None
    kind = row.instrument_type
    base = row.name or row.tradingsymbol
    if kind in ("FUT", "CE", "PE") and row.expiry:
        strike = "" if kind == "FUT" else _num(row.strike)
        return row.exchange, f"{base}{_expiry_code(row.expiry)}{strike}{kind}"
    return row.exchange, row.tradingsymbol


class KiteInstruments(InstrumentIndex[int]):
    """Client (exchange, symbol) <-> Kite instrument token, both ways."""

    def __init__(self, rows: Iterable[KiteRow]) -> None:
        super().__init__()
        for row in rows:
            try:
                named = client_name(row)
            except ValueError:
                named = None
            if named is None or not valid_name(named[0]) or not valid_name(named[1]):
                self.skipped += 1
                continue
            instrument = Instrument(
                symbol=named[1],
                exchange=named[0],
                token=str(row.instrument_token),
                tick_size=row.tick_size if row.tick_size > 0 else 0.05,
                lot_size=max(row.lot_size, 1),
                name=row.name,
                instrument_type=instrument_kind(row.instrument_type, named[1], named[0]),
            )
            self.add(instrument, row.instrument_token)

    def by_token(self, token: int) -> Instrument | None:
        return self.by_key(token)


def parse(body: bytes) -> KiteInstruments:
    """The master from the CSV body (gzipped or not)."""
    if body[:2] == b"\x1f\x8b":
        body = gzip.decompress(body)
    return KiteInstruments(parse_csv(body.decode("utf-8-sig")))


async def load(
    source: str | None = None,
    cache_dir: str | None = None,
    headers: Mapping[str, str] | None = None,
    today: dt.date | None = None,
) -> KiteInstruments:
    """The master from a URL (cached on disk for the IST day when cache_dir is set) or a file path.

    Kite's own URL (the default) is cached in the default cache directory unless `cache_dir` is given.
    """
    source = source or DEFAULT_URL
    if source == DEFAULT_URL and cache_dir is None:
        cache_dir = master.default_cache_dir()
    return await master.load_daily(
        source,
        parse,
        prefix=CACHE_PREFIX,
        suffix=".csv",
        cache_dir=cache_dir,
        headers=headers,
        today=today,
    )
