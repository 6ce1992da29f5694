"""How the market watches show numbers: prices by the instrument's tick size, Indian digit grouping.

USDINR moves in 0.0025 steps, so two decimals would show bid = ask; prices carry the decimals of
the tick size (at least two). Until the tick size is known, the exchange's usual precision is used
and widened by the prices seen. Changes that round to zero never show as ``-0.00``.
"""

from __future__ import annotations

import math

MIN_DECIMALS = 2
MAX_DECIMALS = 6
# exchanges whose instruments move in steps finer than a paisa
EXCHANGE_DECIMALS = {"CDS": 4, "BCD": 4}


def decimals_of(value: float) -> int:
    """Digits after the point of a number as it was meant: 0.0025 -> 4, 0.05 -> 2, 1.0 -> 0."""
    if not math.isfinite(value):
        return 0
    text = f"{abs(value):.{MAX_DECIMALS}f}".rstrip("0")
    return len(text) - text.index(".") - 1


def decimals_for(tick_size: float | None, exchange: str) -> int:
    """Decimals to show for an instrument: from its tick size when known, else from its exchange."""
    if tick_size is not None and tick_size > 0:
        return max(MIN_DECIMALS, decimals_of(tick_size))
    return max(MIN_DECIMALS, EXCHANGE_DECIMALS.get(exchange, 0))


def widen(decimals: int, value: float) -> int:
    """Decimals widened (never narrowed) to show `value` exactly."""
    return max(decimals, min(MAX_DECIMALS, decimals_of(value)))


def _grouped(digits: str) -> str:
    """Indian grouping of an integer's digits: the last three, then pairs (12345678 -> 1,23,45,678)."""
    if len(digits) <= 3:
        return digits
    head, groups = digits[:-3], [digits[-3:]]
    while len(head) > 2:
        groups.insert(0, head[-2:])
        head = head[:-2]
    groups.insert(0, head)
    return ",".join(groups)


def _is_zero_at(value: float, decimals: int) -> bool:
    return abs(value) < 0.5 * 10.0**-decimals


def price(value: float, decimals: int = MIN_DECIMALS) -> str:
    """``127500.0`` -> ``1,27,500.00``; never ``-0.00``."""
    if not math.isfinite(value):
        return "-"
    if _is_zero_at(value, decimals):
        value = 0.0
    text = f"{abs(value):.{decimals}f}"
    whole, _, fraction = text.partition(".")
    body = _grouped(whole) + (f".{fraction}" if fraction else "")
    return f"-{body}" if value < 0 else body


def signed(value: float, decimals: int = MIN_DECIMALS, suffix: str = "") -> str:
    """A change: ``+12.50``, ``-3.0025``, ``0.00`` (no sign when it rounds to zero)."""
    if not math.isfinite(value):
        return "-"
    if _is_zero_at(value, decimals):
        return price(0.0, decimals) + suffix
    return f"{'+' if value > 0 else ''}{price(value, decimals)}{suffix}"


def integer(value: int) -> str:
    """``12345678`` -> ``1,23,45,678``."""
    return ("-" if value < 0 else "") + _grouped(str(abs(int(value))))
