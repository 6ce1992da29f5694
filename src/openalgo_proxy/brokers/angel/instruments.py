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

import asyncio
import datetime as dt
import hashlib
import logging
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import aiohttp
import msgspec

from openalgo_proxy.brokers.angel.codec import ExchangeType
from openalgo_proxy.errors import BrokerError
from openalgo_proxy.model import Instrument

log = logging.getLogger(__name__)

MASTER_URL = "https://margincalculator.angelbroking.com/OpenAPI_File/files/OpenAPIScripMaster.json"
MASTER_PATH = "/OpenAPI_File/files/OpenAPIScripMaster.json"
IST = dt.timezone(dt.timedelta(hours=5, minutes=30))


def default_cache_dir() -> str:
    """Where the production master is cached when no cache_dir is configured."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "openalgo-proxy")


#: exch_seg (both spellings) -> (client exchange for tradables, client exchange for indices, exchange type)
SEGMENTS: dict[str, tuple[str, str, ExchangeType]] = {
    "NSE": ("NSE", "NSE_INDEX", ExchangeType.NSE_CM),
    "NSE_CM": ("NSE", "NSE_INDEX", ExchangeType.NSE_CM),
    "NFO": ("NFO", "NFO", ExchangeType.NSE_FO),
    "NSE_FO": ("NFO", "NFO", ExchangeType.NSE_FO),
    "BSE": ("BSE", "BSE_INDEX", ExchangeType.BSE_CM),
    "BSE_CM": ("BSE", "BSE_INDEX", ExchangeType.BSE_CM),
    "BFO": ("BFO", "BFO", ExchangeType.BSE_FO),
    "BSE_FO": ("BFO", "BFO", ExchangeType.BSE_FO),
    "MCX": ("MCX", "MCX_INDEX", ExchangeType.MCX_FO),
    "MCX_FO": ("MCX", "MCX_INDEX", ExchangeType.MCX_FO),
    "NCDEX": ("NCDEX", "NCDEX", ExchangeType.NCX_FO),
    "NCX_FO": ("NCDEX", "NCDEX", ExchangeType.NCX_FO),
    "CDS": ("CDS", "CDS", ExchangeType.CDE_FO),
    "CDE_FO": ("CDS", "CDS", ExchangeType.CDE_FO),
}

#: client exchange -> Angel exchange type
EXCHANGE_TYPES: dict[str, ExchangeType] = {}
for _trade, _index, _etype in SEGMENTS.values():
    EXCHANGE_TYPES[_trade] = _etype
    EXCHANGE_TYPES[_index] = _etype


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


class InstrumentMasterError(BrokerError):
    """The instrument master could not be loaded or parsed."""


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


class InstrumentMaster:
    """Both-way index over the master: lookup by client name and by (exchange type, token)."""

    def __init__(self, records: Iterable[MasterRecord]) -> None:
        self._by_name: dict[tuple[str, str], Instrument] = {}
        self._by_key: dict[tuple[int, str], Instrument] = {}
        for record in records:
            names = client_name(record)
            if names is None:
                continue
            exchange, symbol = names
            key = (exchange, symbol)
            existing = self._by_name.get(key)
            # NSE/BSE cash: the -EQ series wins a clash with a suffix-less row of the same name
            if existing is not None and not record.symbol.endswith("-EQ"):
                continue
            tick_paise = _number(record.tick_size, 5.0) or 5.0  # indices list 0: use one paisa step of 5
            lot = int(_number(record.lotsize, 1.0)) or 1
            instrument = Instrument(symbol, exchange, record.token, round(tick_paise / 100.0, 6), lot, record.name)
            if existing is not None:
                self._by_key.pop((EXCHANGE_TYPES[exchange], existing.token), None)
            self._by_name[key] = instrument
            self._by_key[(int(EXCHANGE_TYPES[exchange]), record.token)] = instrument

    def __len__(self) -> int:
        return len(self._by_name)

    def lookup(self, exchange: str, symbol: str) -> Instrument | None:
        return self._by_name.get((exchange, symbol))

    def by_token(self, exchange_type: int, token: str) -> Instrument | None:
        return self._by_key.get((exchange_type, token))

    @staticmethod
    def key(instrument: Instrument) -> tuple[int, str]:
        """(exchange type, token) of an instrument, as the wire names it."""
        return int(EXCHANGE_TYPES[instrument.exchange]), instrument.token

    def exchanges(self) -> tuple[str, ...]:
        return tuple(sorted({exchange for exchange, _ in self._by_name}))

    def directory(self) -> Mapping[str, list[str]]:
        out: dict[str, list[str]] = {}
        for exchange, symbol in self._by_name:
            out.setdefault(exchange, []).append(symbol)
        return out


def parse_master(data: bytes) -> InstrumentMaster:
    try:
        return InstrumentMaster(_decode_master(data))
    except msgspec.DecodeError as exc:
        raise InstrumentMasterError(f"instrument master is not a JSON array of string records: {exc}") from None


def today_ist(now: dt.datetime | None = None) -> str:
    return (now or dt.datetime.now(dt.UTC)).astimezone(IST).strftime("%Y-%m-%d")


def cache_path(cache_dir: str, url: str, day: str) -> Path:
    digest = hashlib.sha256(url.encode()).hexdigest()[:12]
    return Path(cache_dir) / f"angel-scripmaster-{day}-{digest}.json"


async def fetch(url: str, total_seconds: float = 180.0) -> bytes:
    """Download the master over HTTP(S); certificates are verified (aiohttp's default SSL context)."""
    client_timeout = aiohttp.ClientTimeout(total=total_seconds)
    try:
        async with (
            aiohttp.ClientSession(timeout=client_timeout) as session,
            session.get(url) as response,
        ):
            if response.status != 200:
                raise InstrumentMasterError(f"instrument master download failed: HTTP {response.status}")
            return await response.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise InstrumentMasterError(f"instrument master download failed: {exc}") from exc


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)
        raise


async def load_master(source: str | None = None, cache_dir: str | None = None) -> InstrumentMaster:
    """Load from a URL (cached for the IST day in `cache_dir`) or a file path."""
    source = source or MASTER_URL
    if not source.startswith(("http://", "https://")):
        try:
            data = await asyncio.to_thread(Path(source).read_bytes)
        except OSError as exc:
            raise InstrumentMasterError(f"cannot read instrument master {source}: {exc}") from exc
        return parse_master(data)
    cached = cache_path(cache_dir, source, today_ist()) if cache_dir else None
    if cached is not None and cached.exists():
        try:
            master = parse_master(await asyncio.to_thread(cached.read_bytes))
            log.info("angel: instrument master from cache %s (%d instruments)", cached, len(master))
            return master
        except (OSError, InstrumentMasterError) as exc:
            log.warning("angel: ignoring unreadable cache %s: %s", cached, exc)
    data = await fetch(source)
    master = parse_master(data)
    if cached is not None:
        try:
            await asyncio.to_thread(_write_atomic, cached, data)
        except OSError as exc:
            log.warning("angel: cannot cache instrument master in %s: %s", cached.parent, exc)
    log.info("angel: instrument master downloaded (%d instruments)", len(master))
    return master
