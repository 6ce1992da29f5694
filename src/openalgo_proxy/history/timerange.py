"""Time ranges as users give them (IST dates or ISO date-times) and the replay speed. Pure."""

from __future__ import annotations

import datetime as dt

from openalgo_proxy.errors import ConfigError
from openalgo_proxy.history.sessions import DAY_MS, IST


def parse_instant(text: str, *, end: bool = False) -> int:
    """Epoch ms of ``YYYY-MM-DD`` (an IST day: its start, or with `end` the start of the next day) or of
    an ISO date-time (IST when it has no offset); ConfigError otherwise."""
    value = text.strip()
    try:
        if len(value) == 10:
            day = dt.datetime.combine(dt.date.fromisoformat(value), dt.time(), IST)
            return int(day.timestamp() * 1000) + (DAY_MS if end else 0)
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"not a date or date-time: {text!r} (use YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS])") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=IST)
    return int(moment.timestamp() * 1000)


def parse_range(start: str | None, end: str | None, now_ms: int) -> tuple[int, int]:
    """[start, end) in epoch ms; a missing bound is today's IST day (start) or now's day end."""
    today = dt.datetime.fromtimestamp(now_ms / 1000, IST).date().isoformat()
    first = parse_instant(start or today)
    last = parse_instant(end or start or today, end=True)
    if last <= first:
        raise ConfigError(f"empty time range: {start} .. {end}")
    return first, last


def parse_speed(text: str | float) -> float:
    """Replay speed factor: a positive number, or "max" (0.0: as fast as the bus takes it)."""
    if isinstance(text, str) and text.strip().lower() == "max":
        return 0.0
    try:
        speed = float(text)
    except ValueError:
        raise ConfigError(f"replay speed must be a positive number or 'max', not {text!r}") from None
    if not speed > 0:
        raise ConfigError(f"replay speed must be a positive number or 'max', not {text!r}")
    return speed
