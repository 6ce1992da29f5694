"""Noren order updates (`om` messages) -> OpenAlgo's `order_update` object (pure).

An `om` carries (all strings): `norenordno` order number, `uid`/`actid`, `exch`, `tsym` trading
symbol, `trantype` B/S, `qty`, `prc`, `trgprc`, `prctyp` LMT/MKT/SL-LMT/SL-MKT, `prd` C/I/M/H/B,
`status` (OPEN, COMPLETE, REJECTED, CANCELED, TRIGGER_PENDING, ...), `fillshares`, `avgprc`,
`rejreason`, `reporttype`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

from openalgo_proxy.brokers.base import OrderEvent
from openalgo_proxy.model import Instrument

STATUSES: Final = {
    "OPEN": "open",
    "PENDING": "open",
    "PENDING_NEW": "open",
    "NEW": "open",
    "REPLACED": "open",
    "COMPLETE": "complete",
    "COMPLETED": "complete",
    "FILLED": "complete",
    "REJECTED": "rejected",
    "CANCELED": "cancelled",
    "CANCELLED": "cancelled",
    "TRIGGER_PENDING": "trigger pending",
    "TRIGGER PENDING": "trigger pending",
}
PRODUCTS: Final = {"C": "CNC", "I": "MIS", "M": "NRML", "H": "CO", "B": "BO"}
PRICE_TYPES: Final = {"LMT": "LIMIT", "MKT": "MARKET", "SL-LMT": "SL", "SL-MKT": "SL-M"}
ACTIONS: Final = {"B": "BUY", "S": "SELL"}

InstrumentOf = Callable[[str, str], Instrument | None]  # (wire exchange, trading symbol) -> instrument


def _text(data: Mapping[str, object], name: str) -> str:
    value = data.get(name)
    return str(value).strip() if value is not None else ""


def _number(data: Mapping[str, object], name: str) -> float:
    try:
        return float(_text(data, name) or 0.0)
    except ValueError:
        return 0.0


def order_update(data: Mapping[str, object], broker: str, instrument_of: InstrumentOf | None = None) -> OrderEvent:
    """One `om` message as OpenAlgo's `order_update` object (exactly its keys)."""
    exchange = _text(data, "exch")
    tsym = _text(data, "tsym")
    instrument = instrument_of(exchange, tsym) if instrument_of is not None else None
    symbol = instrument.symbol if instrument is not None else (tsym[:-3] if tsym.endswith("-EQ") else tsym)
    quantity = int(_number(data, "qty"))
    filled = int(_number(data, "fillshares"))
    status = _text(data, "status").upper()
    return {
        "type": "order_update",
        "user_id": _text(data, "uid") or _text(data, "actid"),
        "mode": "live",
        "broker": broker,
        "orderid": _text(data, "norenordno"),
        "symbol": symbol,
        "exchange": instrument.exchange if instrument is not None else exchange,
        "action": ACTIONS.get(_text(data, "trantype").upper(), _text(data, "trantype").upper()),
        "quantity": quantity,
        "price": _number(data, "prc"),
        "trigger_price": _number(data, "trgprc"),
        "pricetype": PRICE_TYPES.get(_text(data, "prctyp").upper(), _text(data, "prctyp").upper()),
        "product": PRODUCTS.get(_text(data, "prd").upper(), _text(data, "prd").upper()),
        "order_status": STATUSES.get(status, status.lower().replace("_", " ")),
        "filled_quantity": filled,
        "pending_quantity": max(0, quantity - filled),
        "average_price": _number(data, "avgprc"),
        "rejection_reason": _text(data, "rejreason"),
    }
