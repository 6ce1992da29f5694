"""Option contracts as the instrument directory names them (pure).

Every broker adapter maps its contracts to the common (OpenAlgo) symbol format, so an option is
recognised by its symbol alone: ``NAME + DDMMMYY + STRIKE + CE|PE`` on a derivatives exchange
(``NIFTY30DEC2526000CE``), a future ``NAME + DDMMMYY + FUT``. The name is the underlying's.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import NamedTuple

IST = dt.timezone(dt.timedelta(hours=5, minutes=30))
EXPIRY_TIME_IST = dt.time(15, 30)  # contracts expire at the close of their expiry day
_YEAR_MS = 365.0 * 86_400_000

_OPTION = re.compile(
    r"^(?P<name>[A-Z0-9&\-]+?)(?P<day>\d{2})(?P<month>[A-Z]{3})(?P<year>\d{2})(?P<strike>\d+(?:\.\d+)?)(?P<right>CE|PE)$"
)
_FUTURE = re.compile(r"^(?P<name>[A-Z0-9&\-]+?)(?P<day>\d{2})(?P<month>[A-Z]{3})(?P<year>\d{2})FUT$")
_MONTHS = {
    m: i for i, m in enumerate(("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1)
}

#: derivatives exchange -> (index exchange, cash exchange) of its underlyings
UNDERLYING_EXCHANGES = {"NFO": ("NSE_INDEX", "NSE"), "BFO": ("BSE_INDEX", "BSE")}


class OptionContract(NamedTuple):
    name: str
    expiry: dt.date
    strike: float
    is_call: bool
    symbol: str


class FutureContract(NamedTuple):
    name: str
    expiry: dt.date
    symbol: str


def _date(day: str, month: str, year: str) -> dt.date | None:
    number = _MONTHS.get(month)
    if number is None:
        return None
    try:
        return dt.date(2000 + int(year), number, int(day))
    except ValueError:
        return None


def parse_option(symbol: str) -> OptionContract | None:
    """The contract an option symbol names; None for anything else."""
    match = _OPTION.match(symbol)
    if match is None:
        return None
    expiry = _date(match["day"], match["month"], match["year"])
    if expiry is None:
        return None
    return OptionContract(match["name"], expiry, float(match["strike"]), match["right"] == "CE", symbol)


def parse_future(symbol: str) -> FutureContract | None:
    match = _FUTURE.match(symbol)
    if match is None:
        return None
    expiry = _date(match["day"], match["month"], match["year"])
    return FutureContract(match["name"], expiry, symbol) if expiry is not None else None


def expiry_code(expiry: dt.date) -> str:
    """30DEC25: how symbols and chain requests spell an expiry."""
    return expiry.strftime("%d%b%y").upper()


def parse_expiry_code(code: str) -> dt.date | None:
    if len(code) != 7 or not code[:2].isdigit() or not code[5:].isdigit():
        return None
    return _date(code[:2], code[2:5].upper(), code[5:])


def expiry_ms(expiry: dt.date) -> int:
    """Epoch ms of 15:30 IST on the expiry day."""
    return int(dt.datetime.combine(expiry, EXPIRY_TIME_IST, IST).timestamp() * 1000)


def years_to_expiry(expiry: dt.date, now_ms: int) -> float:
    """Years (of 365 days) from `now_ms` to 15:30 IST on the expiry day; 0 once it has passed."""
    return max(0.0, (expiry_ms(expiry) - now_ms) / _YEAR_MS)
