"""Dhan's instrument master (the compact scrip-master CSV): client names <-> (segment, security id).

Columns used: SEM_EXM_EXCH_ID (NSE, BSE, MCX), SEM_SEGMENT (E equity, D derivatives, C currency,
M commodity, I index), SEM_SMST_SECURITY_ID, SEM_INSTRUMENT_NAME, SEM_TRADING_SYMBOL, SEM_LOT_UNITS,
SEM_CUSTOM_SYMBOL, SEM_EXPIRY_DATE, SEM_STRIKE_PRICE, SEM_OPTION_TYPE, SEM_TICK_SIZE (paise),
SM_SYMBOL_NAME. Security ids are unique only within a segment, so the wire key is (segment, id).

Naming rules (the same names Angel and Zerodha users type):
- cash: the trading symbol (RELIANCE) on NSE or BSE;
- indices: the trading symbol upper case without spaces (NIFTY, BANKNIFTY, INDIAVIX) on NSE_INDEX or
  BSE_INDEX;
- futures: underlying + expiry DDMMMYY + FUT (NIFTY30DEC25FUT); options: underlying + DDMMMYY +
  strike + CE/PE (NIFTY30DEC2526000CE), on NFO, BFO, MCX, CDS, BCD. The underlying is the trading
  symbol's part before the first '-' (RELIANCE-Sep2026-700-CE).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from openalgo_proxy.brokers import master
from openalgo_proxy.brokers.dhan.codec import Segment
from openalgo_proxy.brokers.index import InstrumentIndex
from openalgo_proxy.brokers.market import UNIVERSE, Listing
from openalgo_proxy.brokers.master import InstrumentMasterError
from openalgo_proxy.model import Instrument

__all__ = ["MASTER_PATH", "MASTER_URL", "InstrumentMasterError", "Key", "load_master", "parse_master", "wire_key"]

MASTER_URL = "https://images.dhan.co/api-data/api-scrip-master.csv"
MASTER_PATH = "/api-data/api-scrip-master.csv"
CACHE_PREFIX = "dhan-scrip-master"

COLUMNS = (
    "SEM_EXM_EXCH_ID",
    "SEM_SEGMENT",
    "SEM_SMST_SECURITY_ID",
    "SEM_INSTRUMENT_NAME",
    "SEM_EXPIRY_CODE",
    "SEM_TRADING_SYMBOL",
    "SEM_LOT_UNITS",
    "SEM_CUSTOM_SYMBOL",
    "SEM_EXPIRY_DATE",
    "SEM_STRIKE_PRICE",
    "SEM_OPTION_TYPE",
    "SEM_TICK_SIZE",
    "SEM_EXPIRY_FLAG",
    "SEM_EXCH_INSTRUMENT_TYPE",
    "SEM_SERIES",
    "SM_SYMBOL_NAME",
)

#: (exchange id, segment letter) -> (wire segment, client exchange)
SEGMENTS: dict[tuple[str, str], tuple[Segment, str]] = {
    ("NSE", "E"): (Segment.NSE_EQ, "NSE"),
    ("NSE", "D"): (Segment.NSE_FNO, "NFO"),
    ("NSE", "C"): (Segment.NSE_CURRENCY, "CDS"),
    ("BSE", "E"): (Segment.BSE_EQ, "BSE"),
    ("BSE", "D"): (Segment.BSE_FNO, "BFO"),
    ("BSE", "C"): (Segment.BSE_CURRENCY, "BCD"),
    ("MCX", "M"): (Segment.MCX_COMM, "MCX"),
    ("NSE", "I"): (Segment.IDX_I, "NSE_INDEX"),
    ("BSE", "I"): (Segment.IDX_I, "BSE_INDEX"),
    ("MCX", "I"): (Segment.IDX_I, "MCX_INDEX"),
}
#: client exchange -> wire segment
EXCHANGE_SEGMENTS: dict[str, Segment] = {exchange: segment for segment, exchange in SEGMENTS.values()}


@dataclass(frozen=True, slots=True)
class MasterRow:
    """One served row: its client name and its wire identity."""

    exchange: str
    symbol: str
    segment: Segment
    security_id: str
    tick_size: float
    lot_size: int
    name: str


def _number(text: str, default: float) -> float:
    try:
        return float(text)
    except ValueError:
        return default


def _expiry(text: str) -> str:
    """`2025-12-30` or `2025-12-30 14:30:00` -> `30DEC25`; '' when absent or malformed."""
    try:
        return dt.date.fromisoformat(text.strip()[:10]).strftime("%d%b%y").upper()
    except ValueError:
        return ""


def _strike(text: str) -> str:
    value = _number(text, 0.0)
    return str(int(value)) if value == int(value) else f"{value:g}"


def client_name(row: Mapping[str, str]) -> tuple[str, str, Segment] | None:
    """(client exchange, client symbol, wire segment) for a master row, or None for rows we do not serve."""
    exch = row.get("SEM_EXM_EXCH_ID", "").strip().upper()
    seg_letter = row.get("SEM_SEGMENT", "").strip().upper()
    found = SEGMENTS.get((exch, seg_letter))
    trading = row.get("SEM_TRADING_SYMBOL", "").strip()
    if found is None or not trading or not row.get("SEM_SMST_SECURITY_ID", "").strip().isdigit():
        return None
    segment, exchange = found
    if seg_letter == "I":
        return exchange, trading.upper().replace(" ", ""), segment
    if seg_letter == "E":
        return (exchange, trading, segment) if "|" not in trading else None
    instrument = row.get("SEM_INSTRUMENT_NAME", "").strip().upper()
    underlying = trading.split("-", 1)[0].strip().upper()
    expiry = _expiry(row.get("SEM_EXPIRY_DATE", ""))
    if not underlying or not expiry:
        return None
    if instrument.startswith("FUT"):
        return exchange, f"{underlying}{expiry}FUT", segment
    option = row.get("SEM_OPTION_TYPE", "").strip().upper()
    if instrument.startswith("OPT") and option in ("CE", "PE"):
        return exchange, f"{underlying}{expiry}{_strike(row.get('SEM_STRIKE_PRICE', ''))}{option}", segment
    return None


def parse_rows(data: bytes) -> Iterator[MasterRow]:
    """Served rows of the CSV master. InstrumentMasterError when the header lacks a needed column."""
    text = data.decode("utf-8-sig", errors="replace")
    reader = csv.DictReader(io.StringIO(text))
    missing = {"SEM_EXM_EXCH_ID", "SEM_SEGMENT", "SEM_SMST_SECURITY_ID", "SEM_TRADING_SYMBOL"} - set(
        reader.fieldnames or ()
    )
    if missing:
        raise InstrumentMasterError(f"instrument master CSV lacks columns {sorted(missing)}")
    for row in reader:
        names = client_name(row)
        if names is None:
            continue
        exchange, symbol, segment = names
        tick_paise = _number(row.get("SEM_TICK_SIZE", ""), 5.0) or 5.0  # indices list 0: one step of 5 paise
        lot = int(_number(row.get("SEM_LOT_UNITS", ""), 1.0)) or 1
        name = (row.get("SM_SYMBOL_NAME") or row.get("SEM_CUSTOM_SYMBOL") or "").strip()
        yield MasterRow(
            exchange, symbol, segment, row["SEM_SMST_SECURITY_ID"].strip(), round(tick_paise / 100.0, 6), lot, name
        )


Key = tuple[int, int]  # (segment, security id): ids are unique only within a segment


def wire_key(instrument: Instrument) -> Key:
    """(segment, security id) of an instrument, as the wire names it."""
    return int(EXCHANGE_SEGMENTS[instrument.exchange]), int(instrument.token)


def parse_master(data: bytes) -> InstrumentIndex[Key]:
    """The CSV master as the toolkit's both-way index; the first row of a name or key wins."""
    index: InstrumentIndex[Key] = InstrumentIndex()
    for row in parse_rows(data):
        instrument = Instrument(row.symbol, row.exchange, row.security_id, row.tick_size, row.lot_size, row.name)
        index.add(instrument, (int(row.segment), int(row.security_id)))
    return index


async def load_master(source: str | None = None, cache_dir: str | None = None) -> InstrumentIndex[Key]:
    """From a URL (cached for the IST day in `cache_dir`) or a file path; Dhan's public master by default."""
    return await master.load_daily(
        source or MASTER_URL, parse_master, prefix=CACHE_PREFIX, suffix=".csv", cache_dir=cache_dir
    )


# ---------------------------------------------------------------------------------------------
# the simulated universe as Dhan lists it

#: the segment of each client exchange (ids from brokers/market.csv)
_LISTING_SEGMENT: dict[str, Segment] = {
    "NSE": Segment.NSE_EQ,
    "BSE": Segment.BSE_EQ,
    "NFO": Segment.NSE_FNO,
    "BFO": Segment.BSE_FNO,
    "MCX": Segment.MCX_COMM,
    "CDS": Segment.NSE_CURRENCY,
    "NSE_INDEX": Segment.IDX_I,
    "BSE_INDEX": Segment.IDX_I,
}


def listing_key(listing: Listing) -> tuple[int, int]:
    """(segment, security id) Dhan uses for a simulated listing."""
    return int(_LISTING_SEGMENT[listing.exchange]), int(listing.dhan_id)


def _dhan_expiry(listing: Listing) -> tuple[str, str]:
    """(SEM_EXPIRY_DATE, trading-symbol month part) for a derivative listing (expiry like 30DEC2025)."""
    day = dt.datetime.strptime(listing.expiry, "%d%b%Y").date()
    return day.isoformat() + " 14:30:00", day.strftime("%b%Y").title()


def master_csv(listings: Iterable[Listing] = UNIVERSE) -> bytes:
    """The compact CSV master for the simulated universe, in Dhan's column order."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for lst in listings:
        tick_paise = f"{lst.tick_size * 100:.4f}"
        name = (lst.name or lst.symbol).upper()
        if lst.is_index:
            exch = lst.exchange.removesuffix("_INDEX")
            trading = (lst.name or lst.symbol) if lst.symbol == "INDIAVIX" else lst.symbol
            row = [exch, "I", lst.dhan_id, "INDEX", "0", trading, "1.0", lst.name or lst.symbol]
            row += ["", "", "", "0.0000", "NA", "IX", "X", name]
        elif lst.exchange in ("NSE", "BSE"):
            row = [lst.exchange, "E", lst.dhan_id, "EQUITY", "0", lst.symbol, f"{lst.lot_size:.1f}"]
            row += [(lst.name or lst.symbol).title(), "", "", "", tick_paise, "NA", "ES", "EQ", name]
        else:
            exch, letter = {"NFO": ("NSE", "D"), "BFO": ("BSE", "D"), "CDS": ("NSE", "C"), "MCX": ("MCX", "M")}[
                lst.exchange
            ]
            expiry, month = _dhan_expiry(lst)
            underlying = lst.name or lst.symbol
            row = [exch, letter, lst.dhan_id, lst.instrument_type, "0", f"{underlying}-{month}-FUT"]
            row += [f"{lst.lot_size:.1f}", f"{underlying} {month.upper()[:3]} FUT", expiry, "-0.01000", "XX"]
            row += [tick_paise, "M", "FUT", "", underlying]
        writer.writerow(row)
    return out.getvalue().encode()
