"""Noren order updates (`om` messages) -> OpenAlgo's `order_update` object (pure).

An `om` carries (all strings): `norenordno` order number, `uid`/`actid`, `exch`, `tsym` trading
symbol, `trantype` B/S, `qty`, `prc`, `trgprc`, `prctyp` LMT/MKT/SL-LMT/SL-MKT, `prd` C/I/M/H/B,
`status` (OPEN, COMPLETE, REJECTED, CANCELED, TRIGGER_PENDING, ...), `fillshares`, `avgprc`,
`rejreason`, `reporttype`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import msgspec

from openalgo_proxy.brokers.base import OrderEvent
from openalgo_proxy.brokers.order_stream import OrderFields, text
from openalgo_proxy.model import Instrument

FIELDS = OrderFields(
    user_id=("uid", "actid"),
    orderid=("norenordno",),
    symbol=("tsym",),
    exchange=("exch",),
    action=("trantype",),
    quantity=("qty",),
    price=("prc",),
    trigger_price=("trgprc",),
    pricetype=("prctyp",),
    product=("prd",),
    filled_quantity=("fillshares",),
    average_price=("avgprc",),
    rejection_reason=("rejreason",),
    actions={"B": "BUY", "S": "SELL"},
    pricetypes={"LMT": "LIMIT", "MKT": "MARKET", "SL-LMT": "SL", "SL-MKT": "SL-M"},
    products={"C": "CNC", "I": "MIS", "M": "NRML", "H": "CO", "B": "BO"},
    statuses={
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
    },
)

InstrumentOf = Callable[[str, str], Instrument | None]  # (wire exchange, trading symbol) -> instrument


def order_update(data: Mapping[str, object], broker: str, instrument_of: InstrumentOf | None = None) -> OrderEvent:
    """One `om` message as OpenAlgo's `order_update` object (exactly its keys)."""
    update = FIELDS.read(data, broker)
    update.rejection_reason = text(data, "rejreason")  # Noren gives a reason for other statuses too
    instrument = instrument_of(text(data, "exch"), update.symbol) if instrument_of is not None else None
    if instrument is not None:
        update.symbol, update.exchange = instrument.symbol, instrument.exchange
    elif update.symbol.endswith("-EQ"):
        update.symbol = update.symbol[:-3]
    return msgspec.structs.asdict(update)
