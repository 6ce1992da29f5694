"""Noren instrument masters: `<EXCH>_symbols.txt.zip` per exchange -> client names <-> (exchange, token).

Each exchange's master is a zipped CSV with a trailing comma on every line, read by header name
(the CDS master adds Precision and Multiplier, MCX a GNGD column):
- NSE/BSE: `Exchange,Token,LotSize,Symbol,TradingSymbol,Instrument,TickSize,`
- NFO/BFO/MCX/CDS: `Exchange,Token,LotSize,Symbol,TradingSymbol,Expiry,Instrument,OptionType,StrikePrice,TickSize,`

Naming rules (what Angel, Zerodha and Dhan users type):
- cash: the trading symbol without the `-EQ` series suffix (RELIANCE-EQ -> RELIANCE) on NSE or BSE;
- indices (Instrument INDEX): NIFTY, BANKNIFTY, FINNIFTY, MIDCPNIFTY, INDIAVIX, SENSEX (others: the
  name upper case without spaces) on NSE_INDEX or BSE_INDEX, streamed under the base exchange;
- futures: underlying + expiry DDMMMYY + FUT (NIFTY30DEC25FUT); options: underlying + DDMMMYY +
  strike + CE/PE (NIFTY30DEC2526000CE) on NFO, BFO, MCX, CDS.
The source is a base URL (`https://api.shoonya.com/`: each file downloaded once per IST day through
the toolkit's daily loader) or a local directory holding the files (zipped or not; missing ones are
skipped).
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import logging
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Final

from openalgo_proxy.brokers import master
from openalgo_proxy.brokers.index import InstrumentIndex
from openalgo_proxy.brokers.market import Listing
from openalgo_proxy.brokers.master import InstrumentMasterError
from openalgo_proxy.brokers.noren.codec import Key
from openalgo_proxy.model import Instrument, instrument_kind

log = logging.getLogger(__name__)

EXCHANGES: Final = ("NSE", "NFO", "CDS", "MCX", "BSE", "BFO")
INDEX_EXCHANGES: Final = {"NSE": "NSE_INDEX", "BSE": "BSE_INDEX"}
#: Noren index names (upper case) -> our symbol
INDEX_NAMES: Final = {
    "NIFTY 50": "NIFTY",
    "NIFTY BANK": "BANKNIFTY",
    "NIFTY FIN SERVICES": "FINNIFTY",
    "NIFTY FIN SERVICE": "FINNIFTY",
    "FINNIFTY": "FINNIFTY",
    "NIFTY MID SELECT": "MIDCPNIFTY",
    "INDIA VIX": "INDIAVIX",
    "SENSEX": "SENSEX",
    "BANKEX": "BANKEX",
}
CASH_HEADER: Final = ("Exchange", "Token", "LotSize", "Symbol", "TradingSymbol", "Instrument", "TickSize")
FNO_HEADER: Final = (
    "Exchange",
    "Token",
    "LotSize",
    "Symbol",
    "TradingSymbol",
    "Expiry",
    "Instrument",
    "OptionType",
    "StrikePrice",
    "TickSize",
)


def file_name(exchange: str) -> str:
    return f"{exchange}_symbols.txt.zip"


class NorenIndex(InstrumentIndex[Key]):
    """The instrument index plus the broker's trading symbols (order updates name instruments by them)."""

    def __init__(self) -> None:
        super().__init__()
        self.trading_symbols: dict[tuple[str, str], Instrument] = {}  # (wire exchange, tsym) -> instrument


def _text(data: bytes) -> str:
    if data[:2] == b"PK":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                names = [n for n in archive.namelist() if not n.endswith("/")]
                if not names:
                    raise InstrumentMasterError("empty instrument master archive")
                data = archive.read(names[0])
        except zipfile.BadZipFile as exc:
            raise InstrumentMasterError(f"bad instrument master archive: {exc}") from None
    return data.decode("utf-8-sig")


def _expiry(text: str) -> str:
    """27-JUL-2023 -> 27JUL23; '' when absent or malformed."""
    try:
        return dt.datetime.strptime(text.strip().title(), "%d-%b-%Y").strftime("%d%b%y").upper()
    except ValueError:
        return ""


def _strike(text: str) -> str:
    try:
        value = float(text)
    except ValueError:
        return ""
    return str(int(value)) if value == int(value) else f"{value:g}"


def client_name(row: Mapping[str, str]) -> tuple[str, str] | None:
    """(client exchange, client symbol) of a master row, or None for rows we do not serve."""
    exchange = row.get("Exchange", "").strip().upper()
    trading = row.get("TradingSymbol", "").strip()
    kind = row.get("Instrument", "").strip().upper()
    if exchange not in EXCHANGES or not trading or not row.get("Token", "").strip():
        return None
    if kind == "INDEX":
        client = INDEX_EXCHANGES.get(exchange)
        if client is None:
            return None
        name = trading.upper()
        return client, INDEX_NAMES.get(name, name.replace(" ", ""))
    if exchange in ("NSE", "BSE"):
        return exchange, trading[:-3] if trading.endswith("-EQ") else trading
    underlying = row.get("Symbol", "").strip().upper()
    expiry = _expiry(row.get("Expiry", ""))
    if not underlying or not expiry:
        return None
    option = row.get("OptionType", "").strip().upper()
    if option in ("CE", "PE"):
        strike = _strike(row.get("StrikePrice", ""))
        return (exchange, f"{underlying}{expiry}{strike}{option}") if strike else None
    return exchange, f"{underlying}{expiry}FUT"


def _number(text: str, default: float) -> float:
    try:
        return float(text)
    except ValueError:
        return default


def parse_rows(data: bytes) -> list[dict[str, str]]:
    """The rows of one exchange's master (zipped or plain), keyed by header name."""
    reader = csv.DictReader(io.StringIO(_text(data)))
    if reader.fieldnames is None or "Token" not in reader.fieldnames or "TradingSymbol" not in reader.fieldnames:
        raise InstrumentMasterError("instrument master without Token and TradingSymbol columns")
    return [{k: v for k, v in row.items() if k} for row in reader]


def add_rows(table: NorenIndex, rows: Iterable[Mapping[str, str]]) -> int:
    added = 0
    for row in rows:
        named = client_name(row)
        if named is None:
            continue
        exchange, symbol = named
        wire = row["Exchange"].strip().upper()
        token = row["Token"].strip()
        index = exchange.endswith("_INDEX")
        cash = exchange in ("NSE", "BSE")
        instrument = Instrument(
            symbol,
            exchange,
            token,
            tick_size=_number(row.get("TickSize", ""), 0.05) or 0.05,
            lot_size=int(_number(row.get("LotSize", ""), 1)) or 1,
            name=row["TradingSymbol"].strip() if index else row.get("Symbol", "").strip(),
            instrument_type="EQ" if cash else instrument_kind(row.get("Instrument", ""), symbol, exchange),
        )
        if table.add(instrument, (wire, token)):
            table.trading_symbols[(wire, row["TradingSymbol"].strip())] = instrument
            added += 1
    return added


def local_files(source: str) -> list[tuple[str, str]]:
    """(exchange, path) of the masters found in the directory `source`."""
    folder = Path(source)
    if not folder.is_dir():
        raise InstrumentMasterError(f"instrument master {source} is neither a URL nor a directory")
    found = []
    for exchange in EXCHANGES:
        for name in (file_name(exchange), file_name(exchange)[:-4]):
            if (folder / name).is_file():
                found.append((exchange, str(folder / name)))
                break
    if not found:
        raise InstrumentMasterError(f"no <EXCH>_symbols.txt(.zip) file in {source}")
    return found


async def load_master(source: str, cache_dir: str | None, prefix: str = "noren") -> NorenIndex:
    """Every exchange's master from a base URL or a directory, in one index."""
    index = NorenIndex()
    if master.is_url(source):
        base = source if source.endswith("/") else source + "/"
        for exchange in EXCHANGES:
            rows = await master.load_daily(
                base + file_name(exchange),
                parse_rows,
                prefix=f"{prefix}-{exchange}",
                suffix=".zip",
                cache_dir=cache_dir,
            )
            add_rows(index, rows)
    else:
        files = await asyncio.to_thread(local_files, source)
        for exchange, path in files:
            add_rows(index, await master.load_daily(path, parse_rows, prefix=f"{prefix}-{exchange}"))
    if not len(index):
        raise InstrumentMasterError("the instrument masters list no instrument we serve")
    return index


# -- the simulator's masters -----------------------------------------------------------------------

#: our index symbol -> Noren's index trading symbol (tokens are the exchange tokens of brokers/market.csv)
INDEX_TRADING_SYMBOLS: Final = {
    "NIFTY": "Nifty 50",
    "BANKNIFTY": "Nifty Bank",
    "FINNIFTY": "Nifty Fin Services",
    "MIDCPNIFTY": "NIFTY MID SELECT",
    "INDIAVIX": "India VIX",
    "SENSEX": "SENSEX",
}


def wire_exchange(listing: Listing) -> str:
    return {"NSE_INDEX": "NSE", "BSE_INDEX": "BSE"}.get(listing.exchange, listing.exchange)


def listing_key(listing: Listing) -> Key:
    """The simulated listing's (exchange, token) on a Noren server: Noren tokens are exchange tokens."""
    return wire_exchange(listing), listing.exchange_token


def decimals(exchange: str) -> int:
    return 4 if exchange == "CDS" else 2


def _master_row(listing: Listing) -> list[str]:
    exchange, token = listing_key(listing)
    tick = f"{listing.tick_size:.{decimals(exchange)}f}"
    if listing.is_index:
        return [exchange, token, "1", listing.symbol, INDEX_TRADING_SYMBOLS[listing.symbol], "INDEX", tick]
    if exchange in ("NSE", "BSE"):
        return [exchange, token, str(listing.lot_size), listing.symbol, f"{listing.symbol}-EQ", "EQ", tick]
    expiry = dt.datetime.strptime(listing.expiry, "%d%b%Y").strftime("%d-%b-%Y").upper()
    code = dt.datetime.strptime(listing.expiry, "%d%b%Y").strftime("%d%b%y").upper()
    tsym = f"{listing.name}{code}F" if exchange in ("NFO", "BFO") else f"{listing.name}{code}"
    row = [exchange, token, str(listing.lot_size), listing.name, tsym, expiry, listing.instrument_type, "XX"]
    return [*row, "-0.01", tick]


def master_files(listings: Iterable[Listing]) -> dict[str, bytes]:
    """`<EXCH>_symbols.txt.zip` bytes per exchange for the listings (the simulator serves them)."""
    rows: dict[str, list[list[str]]] = {exchange: [] for exchange in EXCHANGES}
    for listing in listings:
        if listing.is_index and listing.symbol not in INDEX_TRADING_SYMBOLS:
            continue
        row = _master_row(listing)
        rows[row[0]].append(row)
    files: dict[str, bytes] = {}
    for exchange, body in rows.items():
        header = list(CASH_HEADER if exchange in ("NSE", "BSE") else FNO_HEADER)
        if exchange == "CDS":
            header += ["Precision", "Multiplier"]
            body = [[*r, "4", "1"] for r in body]
        text = io.StringIO()
        for line in (header, *body):
            text.write(",".join(line) + ",\n")
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(file_name(exchange)[:-4], text.getvalue())
        files[exchange] = buffer.getvalue()
    return files
