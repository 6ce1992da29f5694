"""A live simulated Indian market shared by every broker simulator and the in-process feed.

Prices start near real levels, move by whole multiples of each instrument's tick size, volumes
only grow, and the five-level book always has best bid < best ask. Deterministic for a seed.
"""

from __future__ import annotations

import csv
import datetime as dt
import itertools
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

import msgspec

from openalgo_proxy.chain.contracts import IST, years_to_expiry
from openalgo_proxy.chain.pricing import black_price
from openalgo_proxy.model import DepthLevel, Mode, Tick


@dataclass(frozen=True, slots=True)
class Listing:
    """An instrument of the simulated universe with its identities at each broker (market.csv says
    which broker uses which id, and the rules that fill a blank one)."""

    symbol: str
    exchange: str  # client exchange: NSE, NSE_INDEX, BSE_INDEX, NFO, MCX, CDS
    angel_token: str
    kite_token: int
    price: float  # reference (previous close) in rupees
    tick_size: float = 0.05
    lot_size: int = 1
    name: str = ""
    instrument_type: str = "EQ"  # EQ, INDEX, FUTIDX, FUTCOM, FUTCUR, OPTIDX, OPTSTK
    expiry: str = ""  # like 30DEC2025 (Angel master format), "" for cash and indices
    strike: float = 0.0  # options only
    underlying: tuple[str, str] = ("", "")  # options only: (exchange, symbol) their price follows
    exchange_token: str = ""  # the exchange's own token; "" = angel_token
    isin: str = ""  # equities only
    dhan_id: str = ""  # Dhan's security id; "" = exchange_token
    upstox_key: str = ""  # Upstox's instrument key where no rule makes it (indices)

    def __post_init__(self) -> None:
        if not self.exchange_token:
            object.__setattr__(self, "exchange_token", self.angel_token)
        if not self.dhan_id:
            object.__setattr__(self, "dhan_id", self.exchange_token)

    @property
    def is_option(self) -> bool:
        return self.instrument_type.startswith("OPT")

    @property
    def is_index(self) -> bool:
        return self.instrument_type == "INDEX"


def _weekday_on_or_before(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=max(0, day.weekday() - 4))  # Saturday and Sunday back to Friday


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


#: the futures series' expiry rules, by their name in market.csv
EXPIRY_RULES: dict[str, Callable[[int, int], dt.date | None]] = {
    "last_tuesday": _last_tuesday,
    "nineteenth": _nineteenth,
    "fifth_of_even_month": _fifth_of_even_month,
    "two_days_before_last_weekday": _two_days_before_last_weekday,
}
#: Kite's segment number of each exchange (a Kite token is exchange token * 256 + segment)
KITE_SEGMENTS = {"NSE": 1, "NFO": 2, "CDS": 3, "MCX": 7}


def next_expiry(rule: Callable[[int, int], dt.date | None], today: dt.date) -> dt.date:
    """The first expiry of a contract series on or after `today` (a contract trades on its expiry day)."""
    year, month = today.year, today.month
    for _ in range(24):
        expiry = rule(year, month)
        if expiry is not None and expiry >= today:
            return expiry
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    raise ValueError("no expiry within two years")


_TEXT = resources.files(__package__).joinpath("market.csv").read_text(encoding="utf-8")
#: the rows of market.csv (package data), its comment lines left out
TABLE: list[dict[str, str]] = list(csv.DictReader(line for line in _TEXT.splitlines() if not line.startswith("#")))


def _listing(row: dict[str, str], expiry: dt.date | None = None) -> Listing:
    """A row of market.csv (blank ids by the file's rules); a futures series as its contract of `expiry`."""
    values = {key: value for key, value in row.items() if value and key != "expiry_rule"}
    values.setdefault("angel_token", row["exchange_token"])
    if "kite_token" not in values:
        values["kite_token"] = str(int(row["exchange_token"]) * 256 + KITE_SEGMENTS[row["exchange"]])
    if expiry is not None:
        values |= {"symbol": row["symbol"] + f"{expiry:%d%b%y}FUT".upper(), "expiry": f"{expiry:%d%b%Y}".upper()}
    return msgspec.convert(values, Listing, strict=False)


# NIFTY 50 constituents and the indices, from market.csv
NIFTY50: tuple[Listing, ...] = tuple(_listing(row) for row in TABLE if row["instrument_type"] == "EQ")
INDICES: tuple[Listing, ...] = tuple(_listing(row) for row in TABLE if row["instrument_type"] == "INDEX")


def derivatives(today: dt.date) -> tuple[Listing, ...]:
    """The simulated near-month futures as of `today`: never expired, named like the brokers name them
    (NAME + DDMMMYY + FUT, e.g. NIFTY30DEC25FUT)."""
    rules = [(row, EXPIRY_RULES[row["expiry_rule"]]) for row in TABLE if row["expiry_rule"]]
    return tuple(_listing(row, next_expiry(rule, today)) for row, rule in rules)


def future_symbol(name: str, listings: tuple[Listing, ...] | None = None) -> str:
    """The simulated near-month future of `name` (NIFTY -> NIFTY29DEC26FUT on 2026-12-06)."""
    for listing in DERIVATIVES if listings is None else listings:
        if listing.name == name:
            return listing.symbol
    raise KeyError(name)


# derived once per process from the date in India: a long-running demo keeps its contracts
DERIVATIVES: tuple[Listing, ...] = derivatives(dt.datetime.now(IST).date())

UNIVERSE: tuple[Listing, ...] = NIFTY50 + INDICES + DERIVATIVES


def option_symbol(name: str, expiry: dt.date, strike: float, right: str) -> str:
    """The common (OpenAlgo) option symbol: NAME + DDMMMYY + STRIKE (26000, 1490, 2.5) + CE|PE,
    e.g. NIFTY30DEC2526000CE."""
    text = str(int(strike)) if float(strike).is_integer() else f"{strike:g}"
    return f"{name}{expiry:%d%b%y}".upper() + text + right


#: name, underlying (exchange, symbol), kind, strike step, strikes each side of the reference, lot size,
#: weekly expiries as well as the monthly one, at-the-money volatility of the simulated smile
_OPTION_SERIES: tuple[tuple[str, tuple[str, str], str, float, int, int, bool, float], ...] = (
    ("NIFTY", ("NSE_INDEX", "NIFTY"), "OPTIDX", 50.0, 40, 75, True, 0.12),
    ("BANKNIFTY", ("NSE_INDEX", "BANKNIFTY"), "OPTIDX", 100.0, 30, 35, False, 0.14),
    ("RELIANCE", ("NSE", "RELIANCE"), "OPTSTK", 10.0, 25, 500, False, 0.22),
)
OPTION_TOKEN_BASE = 7_000_000  # simulated option tokens (Angel-style); far from the real ones above
ATM_VOLATILITY = {name: vol for name, _, _, _, _, _, _, vol in _OPTION_SERIES}


def options(today: dt.date, listings: tuple[Listing, ...] = NIFTY50 + INDICES) -> tuple[Listing, ...]:
    """Simulated option contracts as of `today` on NFO: NIFTY weekly (the next two Tuesdays) and
    monthly, BANKNIFTY and RELIANCE monthly (last Tuesday), strikes around each reference price."""
    prices = {(lst.exchange, lst.symbol): lst.price for lst in listings}
    out: list[Listing] = []
    token = OPTION_TOKEN_BASE
    tuesday = today + dt.timedelta(days=(1 - today.weekday()) % 7)
    for name, underlying, kind, step, each_side, lot, weekly, _vol in _OPTION_SERIES:
        expiries = {next_expiry(_last_tuesday, today)}
        if weekly:
            expiries |= {tuesday, tuesday + dt.timedelta(days=7)}
        centre = round(prices[underlying] / step) * step
        strikes = [centre + i * step for i in range(-each_side, each_side + 1)]
        for expiry, strike, right in itertools.product(sorted(expiries), strikes, ("CE", "PE")):
            token += 1
            symbol = option_symbol(name, expiry, strike, right)
            expiry_text = f"{expiry:%d%b%Y}".upper()
            # the market prices an option from its underlying (SimulatedMarket): its price here is a placeholder
            contract = Listing(
                symbol, "NFO", str(token), token * 256 + 2, 0.05, 0.05, lot, name, kind, expiry_text, strike, underlying
            )
            out.append(contract)
    return tuple(out)


OPTIONS: tuple[Listing, ...] = options(dt.datetime.now(IST).date())

#: what the simulated broker adapter streams: the universe plus the option chains
SIMULATED: tuple[Listing, ...] = UNIVERSE + OPTIONS

#: the simulated options' pricing (the chain service's defaults are the same: docs/chain.md)
OPTION_RATE = 0.065
OPTION_DIVIDEND_YIELD = 0.0


def smile(atm: float, forward: float, strike: float, years: float) -> float:
    """The simulated volatility surface: a skewed smile in log-moneyness scaled by sqrt(time)."""
    x = math.log(strike / forward) / math.sqrt(max(years, 1.0 / 365.0))
    return min(max(atm * (1.0 - 0.9 * x + 2.0 * x * x), 0.03), 2.0)


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
    while len(out) < count and (price := round_to_tick(price + step, tick_size)) > 0:
        out.append(DepthLevel(price, (7 + len(out) * 13 % 50) * lot, 1 + len(out) % 9))
    return tuple(out)


class _Book:
    """One instrument's state in the simulated market."""

    def __init__(self, listing: Listing, rng: random.Random, now_ms: int) -> None:
        self.listing = listing
        tick = listing.tick_size
        self.close = round_to_tick(listing.price, tick)
        self.open = self.ltp = self.high = self.low = round_to_tick(self.close * (1.0 + rng.gauss(0.0, 0.004)), tick)
        self.volume = 0 if listing.is_index else rng.randint(50, 500) * listing.lot_size * 100
        self.turnover = self.volume * self.ltp
        derivative = listing.instrument_type.startswith("FUT") or listing.is_option
        self.oi = rng.randint(1000, 50000) * listing.lot_size if derivative else 0
        self.theoretical = 0.0  # options: the model price the book is quoted around
        self.ltq = 0
        self.changed = now_ms  # exchange time of the book's last change (and of its last trade)
        self.last: Tick | None = None  # the tick of that change, book included


class SimulatedMarket:
    """Per-instrument random walks; `advance` moves one instrument and returns its full tick."""

    def __init__(self, listings: tuple[Listing, ...] = UNIVERSE, seed: int | None = None) -> None:
        self._rng = random.Random(seed)
        now = int(time.time() * 1000)
        self.listings = listings
        self._books = {(lst.exchange, lst.symbol): _Book(lst, self._rng, now) for lst in listings}
        # options: the book each is priced from, whether it is a future, and the expiry date
        self._option_sources: dict[tuple[str, str], tuple[_Book, bool, dt.date]] = {}
        futures = {(lst.name, lst.expiry): lst for lst in listings if lst.instrument_type.startswith("FUT")}
        for key, book in self._books.items():
            lst = book.listing
            if not lst.is_option or lst.underlying not in self._books:
                continue
            future = futures.get((lst.name, lst.expiry))
            source = self._books[(future.exchange, future.symbol) if future else lst.underlying]
            expiry = dt.datetime.strptime(lst.expiry, "%d%b%Y").date()
            self._option_sources[key] = (source, future is not None, expiry)
            self._reprice(book, now)
            book.open = book.high = book.low = book.close = book.ltp

    def _reprice(self, book: _Book, now_ms: int) -> None:
        """An option's model price from its underlying's last price and the simulated smile."""
        lst = book.listing
        source, on_future, expiry = self._option_sources[(lst.exchange, lst.symbol)]
        years = years_to_expiry(expiry, now_ms)
        forward = source.ltp if on_future else source.ltp * math.exp((OPTION_RATE - OPTION_DIVIDEND_YIELD) * years)
        sigma = smile(ATM_VOLATILITY.get(lst.name, 0.15), forward, lst.strike, years)
        value = float(black_price(forward, lst.strike, years, sigma, OPTION_RATE, lst.symbol.endswith("CE")))
        book.theoretical = value
        book.ltp = max(lst.tick_size, round_to_tick(value, lst.tick_size))

    def move(self, exchange: str, symbol: str, price: float) -> None:
        """Re-reference an instrument at `price` (its walk then reverts toward it): a market move."""
        book = self._books[(exchange, symbol)]
        book.close = book.ltp = round_to_tick(price, book.listing.tick_size)

    def listing(self, exchange: str, symbol: str) -> Listing | None:
        book = self._books.get((exchange, symbol))
        return book.listing if book else None

    def advance(self, exchange: str, symbol: str, now_ms: int | None = None) -> Tick:
        """One trade (or index move) on an instrument; returns the resulting full tick. An option
        trades at its model price (the underlying may have moved since)."""
        book = self._books[(exchange, symbol)]
        rng = self._rng
        lst = book.listing
        tick = lst.tick_size
        now = now_ms if now_ms is not None else int(time.time() * 1000)
        if lst.is_option and (exchange, symbol) in self._option_sources:
            self._reprice(book, now)
        else:  # volatility ~ 1.5 bp of price per step, at least one tick, mean-reverting toward close
            sigma_ticks = max(1.0, book.ltp * 0.00015 / tick)
            steps = round(rng.gauss((book.close - book.ltp) / tick * 0.001, sigma_ticks))
            price = min(max(book.ltp + steps * tick, book.close * 0.9), book.close * 1.1)
            book.ltp = round_to_tick(price, tick)
        book.high = max(book.high, book.ltp)
        book.low = min(book.low, book.ltp)
        book.changed = now
        if not lst.is_index:
            qty = rng.randint(1, 40) * lst.lot_size
            book.ltq = qty
            book.volume += qty
            book.turnover += qty * book.ltp
            if book.oi:  # options drift upward: more contracts open than close
                oi_step = rng.randint(-3, 4 if lst.is_option else 3)
                book.oi = max(lst.lot_size, book.oi + oi_step * lst.lot_size)
        book.last = self._tick(book)
        return book.last

    def snapshot(self, exchange: str, symbol: str) -> Tick:
        """The instrument's current state without moving it, stamped with the exchange time of its
        last change (what a broker sends on subscribe): old values never look fresh."""
        book = self._books[(exchange, symbol)]
        if book.last is None:
            book.last = self._tick(book)
        return book.last

    def _side(self, best: float, step: float, lot: int) -> tuple[DepthLevel, ...]:
        """Five levels of one side of a book, one tick (`step`, negative for bids) apart from `best`."""
        rng = self._rng
        return tuple(
            DepthLevel(round_to_tick(best + i * step, abs(step)), rng.randint(1, 60) * lot, rng.randint(1, 12))
            for i in range(5)
        )

    def _tick(self, book: _Book) -> Tick:
        lst = book.listing
        tick = Tick(lst.symbol, lst.exchange, Mode.DEPTH, book.ltp, ltt=book.changed, exchange_time=book.changed)
        tick.open, tick.high, tick.low, tick.close = book.open, book.high, book.low, book.close
        if lst.is_index:
            return tick
        size = lst.tick_size
        rng = self._rng
        spread = rng.randint(1, 3)
        if lst.is_option:  # quoted around the model price: the mid is where the smile is
            half = max(1, round(book.theoretical * 0.004 / size)) * size
            best_bid = max(size, round_to_tick(book.theoretical - half, size))
            best_ask = round_to_tick(max(best_bid + size, book.theoretical + half), size)
        else:
            best_bid = round_to_tick(book.ltp - size * rng.randint(0, 1), size)
            best_ask = round_to_tick(best_bid + spread * size, size)
        tick.bids = self._side(best_bid, -size, lst.lot_size)
        tick.asks = self._side(best_ask, size, lst.lot_size)
        tick.volume, tick.last_trade_quantity, tick.oi = book.volume, book.ltq, book.oi
        tick.avg_trade_price = round_to_tick(book.turnover / book.volume, size) if book.volume else book.ltp
        tick.total_buy_quantity = sum(level.quantity for level in tick.bids) * 40
        tick.total_sell_quantity = sum(level.quantity for level in tick.asks) * 40
        tick.upper_circuit = round_to_tick(book.close * 1.1, size)
        tick.lower_circuit = round_to_tick(book.close * 0.9, size)
        return tick
