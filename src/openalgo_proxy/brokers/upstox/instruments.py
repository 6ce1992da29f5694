"""Upstox's instrument master (`complete.json.gz`, a gzipped JSON array): client names <-> instrument keys.

Fields used: `segment` (NSE_EQ, BSE_EQ, NSE_FO, BSE_FO, MCX_FO, NCD_FO, BCD_FO, NSE_INDEX, BSE_INDEX;
NSE_COM and GLOBAL_INDEX are not served), `instrument_key` (the wire key: `NSE_EQ|<ISIN>` for
equities, `NSE_FO|<token>` for derivatives, `NSE_INDEX|Nifty 50` for indices), `trading_symbol`,
`name`, `instrument_type` (EQ, INDEX, FUT, CE, PE, ...), `underlying_symbol`, `expiry` (epoch ms),
`strike_price`, `lot_size`, `tick_size` (paise), `exchange_token`.

Naming rules (the names Angel, Zerodha and Dhan users type):
- cash: the trading symbol (RELIANCE) on NSE or BSE;
- indices: NIFTY, BANKNIFTY, FINNIFTY, MIDCPNIFTY, INDIAVIX, SENSEX, BANKEX for the well-known ones,
  else the trading symbol upper case without spaces, on NSE_INDEX or BSE_INDEX;
- futures: underlying + expiry DDMMMYY + FUT (NIFTY30DEC25FUT); options: underlying + DDMMMYY +
  strike + CE/PE (NIFTY30DEC2526000CE), on NFO, BFO, MCX, CDS, BCD.
"""

from __future__ import annotations

import datetime as dt
import gzip
from collections.abc import Iterable, Iterator

import msgspec

from openalgo_proxy.brokers import master
from openalgo_proxy.brokers.index import InstrumentIndex
from openalgo_proxy.brokers.market import UNIVERSE, Listing
from openalgo_proxy.brokers.master import IST, InstrumentMasterError
from openalgo_proxy.model import Instrument, instrument_kind

__all__ = ["MASTER_PATH", "MASTER_URL", "InstrumentMasterError", "Key", "load_master", "parse_master", "wire_key"]

MASTER_URL = "https://assets.upstox.com/market-quote/instruments/exchange/complete.json.gz"
MASTER_PATH = "/market-quote/instruments/exchange/complete.json.gz"
CACHE_PREFIX = "upstox-instruments"

Key = str  # the instrument key, e.g. "NSE_EQ|INE002A01018"

#: Upstox segment -> client exchange
SEGMENTS: dict[str, str] = {
    "NSE_EQ": "NSE",
    "BSE_EQ": "BSE",
    "NSE_FO": "NFO",
    "BSE_FO": "BFO",
    "MCX_FO": "MCX",
    "NCD_FO": "CDS",
    "BCD_FO": "BCD",
    "NSE_INDEX": "NSE_INDEX",
    "BSE_INDEX": "BSE_INDEX",
}
#: well-known index names (upper case, as in `name` or `trading_symbol`) -> our symbol
INDEX_SYMBOLS: dict[str, str] = {
    "NIFTY 50": "NIFTY",
    "NIFTY": "NIFTY",
    "NIFTY BANK": "BANKNIFTY",
    "BANKNIFTY": "BANKNIFTY",
    "NIFTY FIN SERVICE": "FINNIFTY",
    "FINNIFTY": "FINNIFTY",
    "NIFTY MID SELECT": "MIDCPNIFTY",
    "MIDCPNIFTY": "MIDCPNIFTY",
    "INDIA VIX": "INDIAVIX",
    "SENSEX": "SENSEX",
    "BANKEX": "BANKEX",
}
DERIVATIVE_SEGMENTS = frozenset({"NSE_FO", "BSE_FO", "MCX_FO", "NCD_FO", "BCD_FO"})


class MasterRecord(msgspec.Struct, frozen=True):
    """One record of the master; fields not listed here are skipped."""

    segment: str = ""
    instrument_key: str = ""
    trading_symbol: str = ""
    name: str = ""
    instrument_type: str = ""
    underlying_symbol: str = ""
    expiry: int | None = None
    strike_price: float | None = None
    lot_size: float | None = None
    tick_size: float | None = None
    exchange_token: str = ""
    isin: str = ""


_RECORDS = msgspec.json.Decoder(list[MasterRecord])


def _expiry(ms: int | None) -> str:
    """Epoch ms -> `30DEC25` (the IST date); '' when absent."""
    if not ms:
        return ""
    return dt.datetime.fromtimestamp(ms / 1000.0, IST).strftime("%d%b%y").upper()


def _strike(value: float | None) -> str:
    value = value or 0.0
    return str(int(value)) if value == int(value) else f"{value:g}"


def client_name(record: MasterRecord) -> tuple[str, str] | None:
    """(client exchange, client symbol) of a record, or None for records we do not serve."""
    exchange = SEGMENTS.get(record.segment)
    trading = record.trading_symbol.strip()
    if exchange is None or not trading or "|" not in record.instrument_key:
        return None
    if record.segment.endswith("_INDEX"):
        for text in (record.name, trading):
            known = INDEX_SYMBOLS.get(text.strip().upper())
            if known is not None:
                return exchange, known
        return exchange, trading.upper().replace(" ", "")
    if record.segment.endswith("_EQ"):
        return exchange, trading
    kind = record.instrument_type.strip().upper()
    underlying = (record.underlying_symbol or trading.split(" ", 1)[0]).strip().upper()
    expiry = _expiry(record.expiry)
    if not underlying or not expiry:
        return None
    if kind.startswith("FUT"):
        return exchange, f"{underlying}{expiry}FUT"
    if kind in ("CE", "PE"):
        return exchange, f"{underlying}{expiry}{_strike(record.strike_price)}{kind}"
    return None


def parse_records(data: bytes) -> Iterator[tuple[Instrument, Key]]:
    """Served records of the master (gzipped or plain JSON) as (instrument, key)."""
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise InstrumentMasterError(f"instrument master is not valid gzip: {exc}") from None
    try:
        records = _RECORDS.decode(data)
    except msgspec.DecodeError as exc:
        raise InstrumentMasterError(f"instrument master is not a JSON array of records: {exc}") from None
    for record in records:
        names = client_name(record)
        if names is None:
            continue
        exchange, symbol = names
        tick_paise = record.tick_size or 5.0  # indices list none: one step of 5 paise
        lot = int(record.lot_size or 1) or 1
        token = record.exchange_token or record.instrument_key.split("|", 1)[1]
        name = record.name.strip() or record.underlying_symbol
        kind = instrument_kind(record.instrument_type, symbol, exchange)
        tick_size = round(tick_paise / 100.0, 6)
        yield Instrument(symbol, exchange, token, tick_size, lot, name, kind), record.instrument_key


def parse_master(data: bytes) -> InstrumentIndex[Key]:
    """The master as the toolkit's both-way index; the first record of a name or key wins."""
    index: InstrumentIndex[Key] = InstrumentIndex()
    for instrument, key in parse_records(data):
        index.add(instrument, key)
    return index


async def load_master(source: str | None = None, cache_dir: str | None = None) -> InstrumentIndex[Key]:
    """From a URL (cached for the IST day in `cache_dir`) or a file path; Upstox's public master by default."""
    return await master.load_daily(
        source or MASTER_URL, parse_master, prefix=CACHE_PREFIX, suffix=".json.gz", cache_dir=cache_dir
    )


def wire_key(index: InstrumentIndex[Key], instrument: Instrument) -> Key:
    """The instrument key of an instrument of `index` (equities are keyed by ISIN, so no formula)."""
    key = index.key_of(instrument)
    if key is None:
        raise KeyError(f"{instrument.exchange}:{instrument.symbol} is not in the Upstox master")
    return key


# ---------------------------------------------------------------------------------------------
# the simulated universe as Upstox lists it

_LISTING_SEGMENTS: dict[str, str] = {
    "NSE": "NSE_EQ",
    "BSE": "BSE_EQ",
    "NFO": "NSE_FO",
    "BFO": "BSE_FO",
    "MCX": "MCX_FO",
    "CDS": "NCD_FO",
}


def listing_key(listing: Listing) -> Key:
    """The instrument key Upstox would use for a simulated listing (rules in brokers/market.csv)."""
    if listing.upstox_key:
        return listing.upstox_key
    segment = _LISTING_SEGMENTS[listing.exchange]
    return f"{segment}|{listing.isin if segment.endswith('_EQ') else listing.exchange_token}"


def _expiry_ms(listing: Listing) -> int:
    day = dt.datetime.strptime(listing.expiry, "%d%b%Y").replace(hour=15, minute=30, tzinfo=IST)
    return int(day.timestamp() * 1000)


def master_records(listings: Iterable[Listing] = UNIVERSE) -> list[dict[str, object]]:
    """The simulated universe as Upstox's master records."""
    out: list[dict[str, object]] = []
    for lst in listings:
        key = listing_key(lst)
        segment, _, ident = key.partition("|")
        tick_paise = round(lst.tick_size * 100, 4)
        if lst.is_index:
            out.append(
                {
                    "segment": segment,
                    "name": ident,
                    "exchange": segment.removesuffix("_INDEX"),
                    "instrument_type": "INDEX",
                    "instrument_key": key,
                    "exchange_token": lst.exchange_token,
                    "tick_size": tick_paise,
                    "lot_size": 1,
                    "trading_symbol": lst.symbol,
                }
            )
        elif segment.endswith("_EQ"):
            out.append(
                {
                    "segment": segment,
                    "name": (lst.name or lst.symbol).upper(),
                    "exchange": lst.exchange,
                    "isin": ident,
                    "instrument_type": "EQ",
                    "instrument_key": key,
                    "lot_size": lst.lot_size,
                    "freeze_quantity": 100000.0,
                    "exchange_token": lst.exchange_token,
                    "tick_size": tick_paise,
                    "trading_symbol": lst.symbol,
                    "short_name": (lst.name or lst.symbol).title(),
                    "security_type": "NORMAL",
                }
            )
        else:
            expiry = dt.datetime.strptime(lst.expiry, "%d%b%Y")
            underlying = lst.name or lst.symbol
            out.append(
                {
                    "segment": segment,
                    "name": underlying,
                    "exchange": {"NSE_FO": "NSE", "BSE_FO": "BSE", "MCX_FO": "MCX", "NCD_FO": "NSE"}[segment],
                    "expiry": _expiry_ms(lst),
                    "instrument_type": "FUT",
                    "asset_symbol": underlying,
                    "underlying_symbol": underlying,
                    "instrument_key": key,
                    "lot_size": lst.lot_size,
                    "freeze_quantity": 1800.0,
                    "exchange_token": lst.exchange_token,
                    "minimum_lot": lst.lot_size,
                    "tick_size": tick_paise,
                    "asset_type": "INDEX" if lst.instrument_type == "FUTIDX" else "COM",
                    "underlying_type": "INDEX" if lst.instrument_type == "FUTIDX" else "COM",
                    "trading_symbol": f"{underlying} FUT {expiry.strftime('%d %b %y').upper()}",
                    "strike_price": 0.0,
                    "weekly": False,
                }
            )
    return out


def master_gzip(listings: Iterable[Listing] = UNIVERSE) -> bytes:
    """`complete.json.gz` of the simulated universe."""
    return gzip.compress(msgspec.json.encode(master_records(listings)), mtime=0)
