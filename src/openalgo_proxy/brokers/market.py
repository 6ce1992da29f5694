"""A live simulated Indian market shared by every broker simulator and the in-process feed.

Prices start near real levels, move by whole multiples of each instrument's tick size, volumes
only grow, and the five-level book always has best bid < best ask. Deterministic for a seed.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from openalgo_proxy.model import DepthLevel, Mode, Tick


@dataclass(frozen=True, slots=True)
class Listing:
    """An instrument of the simulated universe with its identities at each broker."""

    symbol: str
    exchange: str  # client exchange: NSE, NSE_INDEX, BSE_INDEX, NFO, MCX, CDS
    angel_token: str
    kite_token: int
    price: float  # reference (previous close) in rupees
    tick_size: float = 0.05
    lot_size: int = 1
    name: str = ""
    instrument_type: str = "EQ"  # EQ, INDEX, FUTIDX, FUTCOM, FUTCUR
    expiry: str = ""  # like 30DEC2025 (Angel master format), "" for cash and indices

    @property
    def is_index(self) -> bool:
        return self.instrument_type == "INDEX"


def _eq(symbol: str, token: int, price: float, name: str = "") -> Listing:
    return Listing(symbol, "NSE", str(token), token * 256 + 1, price, 0.05 if price < 5000 else 0.5, 1, name or symbol)


# NIFTY 50 constituents: NSE exchange tokens (Angel token; Kite token = token*256 + 1), rough prices.
NIFTY50: tuple[Listing, ...] = (
    _eq("RELIANCE", 2885, 1485.0, "RELIANCE INDUSTRIES"),
    _eq("HDFCBANK", 1333, 990.0, "HDFC BANK"),
    _eq("ICICIBANK", 4963, 1390.0, "ICICI BANK"),
    _eq("INFY", 1594, 1530.0, "INFOSYS"),
    _eq("TCS", 11536, 3120.0, "TATA CONSULTANCY SERVICES"),
    _eq("BHARTIARTL", 10604, 2080.0, "BHARTI AIRTEL"),
    _eq("SBIN", 3045, 965.0, "STATE BANK OF INDIA"),
    _eq("ITC", 1660, 405.0),
    _eq("LT", 11483, 4020.0, "LARSEN & TOUBRO"),
    _eq("HINDUNILVR", 1394, 2430.0, "HINDUSTAN UNILEVER"),
    _eq("KOTAKBANK", 1922, 2110.0, "KOTAK MAHINDRA BANK"),
    _eq("AXISBANK", 5900, 1265.0, "AXIS BANK"),
    _eq("BAJFINANCE", 317, 1025.0, "BAJAJ FINANCE"),
    _eq("MARUTI", 10999, 15900.0, "MARUTI SUZUKI"),
    _eq("M&M", 2031, 3720.0, "MAHINDRA & MAHINDRA"),
    _eq("SUNPHARMA", 3351, 1790.0, "SUN PHARMACEUTICAL"),
    _eq("HCLTECH", 7229, 1610.0, "HCL TECHNOLOGIES"),
    _eq("ULTRACEMCO", 11532, 11800.0, "ULTRATECH CEMENT"),
    _eq("NTPC", 11630, 325.0),
    _eq("TITAN", 3506, 3880.0, "TITAN COMPANY"),
    _eq("ONGC", 2475, 245.0),
    _eq("TATAMOTORS", 3456, 690.0, "TATA MOTORS"),
    _eq("POWERGRID", 14977, 285.0, "POWER GRID CORPORATION"),
    _eq("ADANIPORTS", 15083, 1480.0, "ADANI PORTS"),
    _eq("ASIANPAINT", 236, 2880.0, "ASIAN PAINTS"),
    _eq("BAJAJFINSV", 16675, 2050.0, "BAJAJ FINSERV"),
    _eq("WIPRO", 3787, 245.0),
    _eq("NESTLEIND", 17963, 1270.0, "NESTLE INDIA"),
    _eq("JSWSTEEL", 11723, 1170.0, "JSW STEEL"),
    _eq("COALINDIA", 20374, 380.0, "COAL INDIA"),
    _eq("TATASTEEL", 3499, 170.0, "TATA STEEL"),
    _eq("ETERNAL", 5097, 300.0),
    _eq("BEL", 383, 410.0, "BHARAT ELECTRONICS"),
    _eq("TRENT", 1964, 4350.0),
    _eq("GRASIM", 1232, 2780.0, "GRASIM INDUSTRIES"),
    _eq("HINDALCO", 1363, 800.0, "HINDALCO INDUSTRIES"),
    _eq("ADANIENT", 25, 2420.0, "ADANI ENTERPRISES"),
    _eq("TECHM", 13538, 1470.0, "TECH MAHINDRA"),
    _eq("SBILIFE", 21808, 1990.0, "SBI LIFE INSURANCE"),
    _eq("BAJAJ-AUTO", 16669, 9050.0, "BAJAJ AUTO"),
    _eq("HDFCLIFE", 467, 770.0, "HDFC LIFE INSURANCE"),
    _eq("SHRIRAMFIN", 4306, 780.0, "SHRIRAM FINANCE"),
    _eq("CIPLA", 694, 1520.0),
    _eq("TATACONSUM", 3432, 1160.0, "TATA CONSUMER PRODUCTS"),
    _eq("DRREDDY", 881, 1250.0, "DR. REDDY'S LABORATORIES"),
    _eq("APOLLOHOSP", 157, 7450.0, "APOLLO HOSPITALS"),
    _eq("EICHERMOT", 910, 6900.0, "EICHER MOTORS"),
    _eq("INDUSINDBK", 5258, 760.0, "INDUSIND BANK"),
    _eq("HEROMOTOCO", 1348, 5600.0, "HERO MOTOCORP"),
    _eq("JIOFIN", 18143, 305.0, "JIO FINANCIAL SERVICES"),
)

INDICES: tuple[Listing, ...] = (
    Listing("NIFTY", "NSE_INDEX", "99926000", 256265, 26050.0, 0.05, 1, "NIFTY 50", "INDEX"),
    Listing("BANKNIFTY", "NSE_INDEX", "99926009", 260105, 59200.0, 0.05, 1, "NIFTY BANK", "INDEX"),
    Listing("FINNIFTY", "NSE_INDEX", "99926037", 257801, 27600.0, 0.05, 1, "NIFTY FIN SERVICE", "INDEX"),
    Listing("INDIAVIX", "NSE_INDEX", "99926017", 264969, 12.5, 0.0025, 1, "INDIA VIX", "INDEX"),
    Listing("SENSEX", "BSE_INDEX", "99919000", 265, 85400.0, 0.01, 1, "SENSEX", "INDEX"),
)

IST = dt.timezone(dt.timedelta(hours=5, minutes=30))


def _weekday_on_or_before(day: dt.date) -> dt.date:
    while day.weekday() >= 5:  # Saturday, Sunday
        day -= dt.timedelta(days=1)
    return day


def _month_end(year: int, month: int) -> dt.date:
    return dt.date(year + month // 12, month % 12 + 1, 1) - dt.timedelta(days=1)


def _last_tuesday(year: int, month: int) -> dt.date:
    end = _month_end(year, month)
    return end - dt.timedelta(days=(end.weekday() - 1) % 7)


def _nineteenth(year: int, month: int) -> dt.date:
    return _weekday_on_or_before(dt.date(year, month, 19))


def _fifth_of_even_month(year: int, month: int) -> dt.date | None:
    return _weekday_on_or_before(dt.date(year, month, 5)) if month % 2 == 0 else None


def _two_days_before_last_weekday(year: int, month: int) -> dt.date:
    day = _weekday_on_or_before(_month_end(year, month))
    for _ in range(2):
        day = _weekday_on_or_before(day - dt.timedelta(days=1))
    return day


def next_expiry(rule: Callable[[int, int], dt.date | None], today: dt.date) -> dt.date:
    """The first expiry of a contract series on or after `today` (a contract trades on its expiry day)."""
    year, month = today.year, today.month
    for _ in range(24):
        expiry = rule(year, month)
        if expiry is not None and expiry >= today:
            return expiry
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    raise ValueError("no expiry within two years")


#: name, exchange, Angel token, Kite segment, reference price, tick size, lot size, type, expiry rule
_FUTURES: tuple[tuple[str, str, int, int, float, float, int, str, Callable[[int, int], dt.date | None]], ...] = (
    ("NIFTY", "NFO", 52175, 2, 26180.0, 0.1, 75, "FUTIDX", _last_tuesday),
    ("BANKNIFTY", "NFO", 52174, 2, 59450.0, 0.2, 35, "FUTIDX", _last_tuesday),
    ("CRUDEOIL", "MCX", 450161, 7, 5240.0, 1.0, 100, "FUTCOM", _nineteenth),
    ("GOLD", "MCX", 449534, 7, 127500.0, 1.0, 1, "FUTCOM", _fifth_of_even_month),
    ("USDINR", "CDS", 1185, 3, 89.1525, 0.0025, 1000, "FUTCUR", _two_days_before_last_weekday),
)


def derivatives(today: dt.date) -> tuple[Listing, ...]:
    """The simulated near-month futures as of `today`: never expired, named like the brokers name them
    (NAME + DDMMMYY + FUT, e.g. NIFTY30DEC25FUT)."""
    listings = []
    for name, exchange, token, segment, price, tick_size, lot, kind, rule in _FUTURES:
        expiry = next_expiry(rule, today)
        code = expiry.strftime("%d%b%y").upper()
        listings.append(
            Listing(
                f"{name}{code}FUT",
                exchange,
                str(token),
                token * 256 + segment,
                price,
                tick_size,
                lot,
                name,
                kind,
                expiry.strftime("%d%b%Y").upper(),
            )
        )
    return tuple(listings)


def future_symbol(name: str, listings: tuple[Listing, ...] | None = None) -> str:
    """The simulated near-month future of `name` (NIFTY -> NIFTY29DEC26FUT on 2026-12-06)."""
    for listing in DERIVATIVES if listings is None else listings:
        if listing.name == name:
            return listing.symbol
    raise KeyError(name)


# derived once per process from the date in India: a long-running demo keeps its contracts
DERIVATIVES: tuple[Listing, ...] = derivatives(dt.datetime.now(IST).date())

UNIVERSE: tuple[Listing, ...] = NIFTY50 + INDICES + DERIVATIVES


def round_to_tick(price: float, tick_size: float) -> float:
    """Nearest multiple of tick_size, free of binary noise (2 decimals for paise ticks)."""
    steps = round(price / tick_size)
    decimals = max(0, -math.floor(math.log10(tick_size)) + 1) if tick_size < 1 else 0
    return round(steps * tick_size, max(decimals, 2))


def deeper_side(
    levels: tuple[DepthLevel, ...], count: int, tick_size: float, bid: bool, lot: int
) -> tuple[DepthLevel, ...]:
    """`count` levels of one side of a simulated book: its five levels, then one tick apart outward
    with deterministic quantities (for the brokers' 20- and 200-level feeds)."""
    out = list(levels[:count])
    if not out:
        return ()
    price = out[-1].price
    step = -tick_size if bid else tick_size
    while len(out) < count:
        price = round_to_tick(price + step, tick_size)
        if price <= 0:
            break
        n = len(out)
        out.append(DepthLevel(price, (7 + n * 13 % 50) * lot, 1 + n % 9))
    return tuple(out)


class _Book:
    __slots__ = (
        "changed",
        "close",
        "high",
        "last",
        "listing",
        "low",
        "ltp",
        "ltq",
        "ltt",
        "oi",
        "open",
        "turnover",
        "volume",
    )

    def __init__(self, listing: Listing, rng: random.Random, now_ms: int) -> None:
        self.listing = listing
        tick = listing.tick_size
        self.close = round_to_tick(listing.price, tick)
        gap = rng.gauss(0.0, 0.004)
        self.open = round_to_tick(self.close * (1.0 + gap), tick)
        self.ltp = self.open
        self.high = self.open
        self.low = self.open
        self.volume = 0 if listing.is_index else rng.randint(50, 500) * listing.lot_size * 100
        self.turnover = self.volume * self.ltp
        self.oi = rng.randint(1000, 50000) * listing.lot_size if listing.instrument_type.startswith("FUT") else 0
        self.ltq = 0
        self.ltt = now_ms
        self.changed = now_ms  # exchange time of the book's last change
        self.last: Tick | None = None  # the tick of that change, book included


class SimulatedMarket:
    """Per-instrument random walks; `advance` moves one instrument and returns its full tick."""

    def __init__(self, listings: tuple[Listing, ...] = UNIVERSE, seed: int | None = None) -> None:
        self._rng = random.Random(seed)
        now = int(time.time() * 1000)
        self.listings = listings
        self._books = {(lst.exchange, lst.symbol): _Book(lst, self._rng, now) for lst in listings}

    def listing(self, exchange: str, symbol: str) -> Listing | None:
        book = self._books.get((exchange, symbol))
        return book.listing if book else None

    def advance(self, exchange: str, symbol: str, now_ms: int | None = None) -> Tick:
        """One trade (or index move) on an instrument; returns the resulting full tick."""
        book = self._books[(exchange, symbol)]
        rng = self._rng
        lst = book.listing
        tick = lst.tick_size
        now = now_ms if now_ms is not None else int(time.time() * 1000)
        # volatility ~ 1.5 bp of price per step, at least one tick, mean-reverting toward close
        sigma_ticks = max(1.0, book.ltp * 0.00015 / tick)
        drift = (book.close - book.ltp) / tick * 0.001
        steps = round(rng.gauss(drift, sigma_ticks))
        floor = book.close * 0.9
        ceiling = book.close * 1.1
        price = min(max(book.ltp + steps * tick, floor), ceiling)
        book.ltp = round_to_tick(price, tick)
        book.high = max(book.high, book.ltp)
        book.low = min(book.low, book.ltp)
        book.ltt = now
        book.changed = now
        if not lst.is_index:
            qty = rng.randint(1, 40) * lst.lot_size
            book.ltq = qty
            book.volume += qty
            book.turnover += qty * book.ltp
            if book.oi:
                book.oi = max(lst.lot_size, book.oi + rng.randint(-3, 3) * lst.lot_size)
        book.last = self._tick(book)
        return book.last

    def snapshot(self, exchange: str, symbol: str) -> Tick:
        """The instrument's current state without moving it, stamped with the exchange time of its
        last change (what a broker sends on subscribe): old values never look fresh."""
        book = self._books[(exchange, symbol)]
        if book.last is None:
            book.last = self._tick(book)
        return book.last

    def _tick(self, book: _Book) -> Tick:
        lst = book.listing
        now = book.changed
        if lst.is_index:
            return Tick(
                symbol=lst.symbol,
                exchange=lst.exchange,
                mode=Mode.DEPTH,
                ltp=book.ltp,
                ltt=book.ltt,
                exchange_time=now,
                open=book.open,
                high=book.high,
                low=book.low,
                close=book.close,
            )
        tick = lst.tick_size
        rng = self._rng
        spread = rng.randint(1, 3)
        best_bid = round_to_tick(book.ltp - tick * rng.randint(0, 1), tick)
        best_ask = round_to_tick(best_bid + spread * tick, tick)
        lot = lst.lot_size
        bids = tuple(
            DepthLevel(round_to_tick(best_bid - i * tick, tick), rng.randint(1, 60) * lot, rng.randint(1, 12))
            for i in range(5)
        )
        asks = tuple(
            DepthLevel(round_to_tick(best_ask + i * tick, tick), rng.randint(1, 60) * lot, rng.randint(1, 12))
            for i in range(5)
        )
        avg = round_to_tick(book.turnover / book.volume, tick) if book.volume else book.ltp
        return Tick(
            symbol=lst.symbol,
            exchange=lst.exchange,
            mode=Mode.DEPTH,
            ltp=book.ltp,
            ltt=book.ltt,
            exchange_time=now,
            open=book.open,
            high=book.high,
            low=book.low,
            close=book.close,
            volume=book.volume,
            avg_trade_price=avg,
            last_trade_quantity=book.ltq,
            total_buy_quantity=sum(level.quantity for level in bids) * 40,
            total_sell_quantity=sum(level.quantity for level in asks) * 40,
            oi=book.oi,
            upper_circuit=round_to_tick(book.close * 1.1, tick),
            lower_circuit=round_to_tick(book.close * 0.9, tick),
            bids=bids,
            asks=asks,
        )
