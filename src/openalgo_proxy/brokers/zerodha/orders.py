"""Kite order postbacks (`{"type":"order","data":{..}}` on the ticker) -> OpenAlgo's `order_update` (pure).

Kite's field names and upper-case statuses map onto OpenAlgo's keys: `order_id` -> orderid,
`transaction_type` -> action, `order_type` -> pricetype (MARKET, LIMIT, SL, SL-M as they are),
`status` lower-cased (COMPLETE, OPEN, REJECTED, CANCELLED, TRIGGER PENDING; Kite's transient
states such as UPDATE or OPEN PENDING read as "open"), `status_message` -> rejection_reason. The
symbol is our client name of the instrument token when we know it, else Kite's trading symbol.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from openalgo_proxy.control import OrderUpdate
from openalgo_proxy.model import Instrument

FINAL = {"COMPLETE": "complete", "REJECTED": "rejected", "CANCELLED": "cancelled", "TRIGGER PENDING": "trigger pending"}


def _num(data: Mapping[str, object], key: str) -> float:
    value = data.get(key)
    try:
        return float(value) if isinstance(value, int | float | str) and value != "" else 0.0
    except ValueError:
        return 0.0


def order_update(data: Mapping[str, object], account: str, by_token: Callable[[int], Instrument | None]) -> OrderUpdate:
    token = int(_num(data, "instrument_token"))
    instrument = by_token(token) if token else None
    status = str(data.get("status") or "").upper()
    return OrderUpdate(
        user_id=str(data.get("user_id") or data.get("placed_by") or account),
        mode="live",
        broker="zerodha",
        orderid=str(data.get("order_id") or ""),
        symbol=instrument.symbol if instrument else str(data.get("tradingsymbol") or ""),
        exchange=instrument.exchange if instrument else str(data.get("exchange") or ""),
        action=str(data.get("transaction_type") or ""),
        quantity=int(_num(data, "quantity")),
        price=_num(data, "price"),
        trigger_price=_num(data, "trigger_price"),
        pricetype=str(data.get("order_type") or ""),
        product=str(data.get("product") or ""),
        order_status=FINAL.get(status, "open"),
        filled_quantity=int(_num(data, "filled_quantity")),
        pending_quantity=int(_num(data, "pending_quantity")),
        average_price=_num(data, "average_price"),
        rejection_reason=str(data.get("status_message") or "") if status == "REJECTED" else "",
    )
