"""Kite order postbacks (`{"type":"order","data":{..}}` on the ticker) -> OpenAlgo's `order_update` (pure).

Kite's field names and upper-case statuses map onto OpenAlgo's keys: `order_id` -> orderid,
`transaction_type` -> action, `order_type` -> pricetype (MARKET, LIMIT, SL, SL-M as they are),
`status` lower-cased (COMPLETE, OPEN, REJECTED, CANCELLED, TRIGGER PENDING; Kite's transient
states such as UPDATE or OPEN PENDING read as "open"), `status_message` -> rejection_reason. The
symbol is our client name of the instrument token when we know it, else Kite's trading symbol.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from openalgo_proxy.brokers.order_stream import OrderFields, number
from openalgo_proxy.control import OrderUpdate
from openalgo_proxy.model import Instrument

FIELDS = OrderFields(
    user_id=("user_id", "placed_by"),
    orderid=("order_id",),
    symbol=("tradingsymbol",),
    action=("transaction_type",),
    pricetype=("order_type",),
    rejection_reason=("status_message",),
    statuses={
        "COMPLETE": "complete",
        "REJECTED": "rejected",
        "CANCELLED": "cancelled",
        "TRIGGER_PENDING": "trigger pending",
    },
    other_status="open",
)


def order_update(data: Mapping[str, object], account: str, by_token: Callable[[int], Instrument | None]) -> OrderUpdate:
    update = FIELDS.read(data, "zerodha")
    update.user_id = update.user_id or account
    token = int(number(data, "instrument_token"))
    instrument = by_token(token) if token else None
    if instrument is not None:
        update.symbol, update.exchange = instrument.symbol, instrument.exchange
    return update
