"""Angel's instrument master (OpenAPIScripMaster.json): client names <-> (exchange type, token).

Naming rules (what a trader types):
- NSE and BSE cash: `symbol` without the `-EQ` series suffix (`RELIANCE-EQ` -> RELIANCE). Other series
  (`-BE`, `-BL`, `-SM`, ...) keep their suffix (`XYZ-BE`) so they stay reachable without clashing.
- Indices (`instrumenttype` AMXIDX) are named by `name`, upper case without spaces (NIFTY, BANKNIFTY,
  INDIAVIX) on NSE_INDEX / BSE_INDEX / MCX_INDEX.
- Derivatives by `symbol` (NIFTY30DEC25FUT, NIFTY30DEC2526000CE) on NFO, BFO, MCX, CDS, NCDEX.
`tick_size` in the master is paise; Instrument.tick_size is rupees.
The master is downloaded (TLS verified) or read from a file, and cached on disk for the day (IST).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path

import msgspec

from openalgo_proxy.brokers import master
from openalgo_proxy.brokers.angel.codec import ExchangeType
from openalgo_proxy.brokers.index import InstrumentIndex
from openalgo_proxy.brokers.master import InstrumentMasterError, today_ist
from openalgo_proxy.model import Instrument, instrument_kind

__all__ = ["EXCHANGE_TYPES", "MASTER_PATH", "InstrumentMaster", "InstrumentMasterError", "today_ist"]

MASTER_URL = "https://margincalculator.angelbroking.com/OpenAPI_File/files/OpenAPIScripMaster.json"
MASTER_PATH = "/OpenAPI_File/files/OpenAPIScripMaster.json"
CACHE_PREFIX = "angel-scripmaster"


#: exchange type, Angel's segment names (exch_seg, both spellings), client exchange for tradables, for indices
_SEGMENT_ROWS = (
    (ExchangeType.NSE_CM, ("NSE", "NSE_CM"), "NSE", "NSE_INDEX"),
    (ExchangeType.NSE_FO, ("NFO", "NSE_FO"), "NFO", "NFO"),
    (ExchangeType.BSE_CM, ("BSE", "BSE_CM"), "BSE", "BSE_INDEX"),
    (ExchangeType.BSE_FO, ("BFO", "BSE_FO"), "BFO", "BFO"),
    (ExchangeType.MCX_FO, ("MCX", "MCX_FO"), "MCX", "MCX_INDEX"),
    (ExchangeType.NCX_FO, ("NCDEX", "NCX_FO"), "NCDEX", "NCDEX"),
    (ExchangeType.CDE_FO, ("CDS", "CDE_FO"), "CDS", "CDS"),
)
#: exch_seg -> (client exchange for tradables, client exchange for indices, exchange type)
SEGMENTS = {name: (trade, index, etype) for etype, names, trade, index in _SEGMENT_ROWS for name in names}
#: client exchange -> Angel exchange type
EXCHANGE_TYPES = {exchange: etype for etype, _, trade, index in _SEGMENT_ROWS for exchange in (trade, index)}


class MasterRecord(msgspec.Struct, frozen=True):
    """One row of the master; every value is a string."""

    token: str = ""
    symbol: str = ""
    name: str = ""
    expiry: str = ""
    strike: str = ""
    lotsize: str = ""
    instrumenttype: str = ""
    exch_seg: str = ""
    tick_size: str = ""


_decode_master = msgspec.json.Decoder(list[MasterRecord]).decode


def _number(text: str, default: float) -> float:
    try:
        return float(text)
    except ValueError:
        return default


def client_name(record: MasterRecord) -> tuple[str, str] | None:
    """(client exchange, client symbol) for a master row, or None for rows we do not serve."""
    segment = SEGMENTS.get(record.exch_seg.strip().upper())
    if segment is None or not record.token or not record.symbol:
        return None
    trade_exchange, index_exchange, _ = segment
    if record.instrumenttype.strip().upper() == "AMXIDX":
        name = (record.name or record.symbol).upper().replace(" ", "")
        return index_exchange, name
    symbol = record.symbol.strip()
    if trade_exchange in ("NSE", "BSE") and symbol.endswith("-EQ"):
        symbol = symbol[:-3]
    if not symbol or "|" in symbol:
        return None
    return trade_exchange, symbol


class InstrumentMaster(InstrumentIndex[tuple[int, str]]):
    """Both-way index over the master: lookup by client name and by (exchange type, token)."""

    def __init__(self, records: Iterable[MasterRecord]) -> None:
        super().__init__()
        for record in records:
            names = client_name(record)
            if names is None:
                continue
            exchange, symbol = names
            existing = self.lookup(exchange, symbol)
            # NSE/BSE cash: the -EQ series wins a clash with a suffix-less row of the same name
            if existing is not None and not record.symbol.endswith("-EQ"):
                continue
            tick_paise = _number(record.tick_size, 5.0) or 5.0  # indices list 0: use one paisa step of 5
            lot = int(_number(record.lotsize, 1.0)) or 1
            kind = instrument_kind(record.instrumenttype, symbol, exchange)
            instrument = Instrument(
                symbol, exchange, record.token, round(tick_paise / 100.0, 6), lot, record.name, kind
            )
            self.add(instrument, (int(EXCHANGE_TYPES[exchange]), record.token), replace=True)

    def by_token(self, exchange_type: int, token: str) -> Instrument | None:
        return self.by_key((exchange_type, token))

    @staticmethod
    def key(instrument: Instrument) -> tuple[int, str]:
        """(exchange type, token) of an instrument, as the wire names it."""
        return int(EXCHANGE_TYPES[instrument.exchange]), instrument.token


def parse_master(data: bytes) -> InstrumentMaster:
    try:
        return InstrumentMaster(_decode_master(data))
    except msgspec.DecodeError as exc:
        raise InstrumentMasterError(f"instrument master is not a JSON array of string records: {exc}") from None


def cache_path(cache_dir: str, url: str, day: dt.date) -> Path:
    return master.cache_path(cache_dir, CACHE_PREFIX, url, day, ".json")


async def load_master(source: str | None = None, cache_dir: str | None = None) -> InstrumentMaster:
    """Load from a URL (cached for the IST day in `cache_dir`) or a file path."""
    return await master.load_daily(
        source or MASTER_URL, parse_master, prefix=CACHE_PREFIX, suffix=".json", cache_dir=cache_dir
    )
