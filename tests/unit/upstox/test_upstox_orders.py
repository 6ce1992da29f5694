"""Upstox portfolio-stream order updates -> OpenAlgo's `order_update` object."""

from __future__ import annotations

import msgspec

from openalgo_proxy.brokers.upstox.orders import order_update
from openalgo_proxy.control import OrderUpdate
from openalgo_proxy.model import Instrument

ORDER = {
    "update_type": "order",
    "user_id": "AB1234",
    "userId": "AB1234",
    "exchange": "NSE",
    "instrument_token": "NSE_EQ|INE002A01018",
    "instrument_key": "NSE_EQ|INE002A01018",
    "trading_symbol": "RELIANCE",
    "tradingsymbol": "RELIANCE",
    "product": "D",
    "order_type": "LIMIT",
    "average_price": 0,
    "price": 1480.5,
    "trigger_price": 0,
    "quantity": 10,
    "disclosed_quantity": 0,
    "pending_quantity": 10,
    "transaction_type": "BUY",
    "exchange_order_id": "1300000025660919",
    "validity": "DAY",
    "status": "open",
    "variety": "SIMPLE",
    "order_id": "240612010520046",
    "filled_quantity": 0,
    "status_message": None,
}


def test_an_open_order_maps_to_exactly_openalgos_keys() -> None:
    event = order_update(ORDER, "upstox")
    assert event == {
        "type": "order_update",
        "user_id": "AB1234",
        "mode": "live",
        "broker": "upstox",
        "orderid": "240612010520046",
        "symbol": "RELIANCE",
        "exchange": "NSE",
        "action": "BUY",
        "quantity": 10,
        "price": 1480.5,
        "trigger_price": 0.0,
        "pricetype": "LIMIT",
        "product": "CNC",
        "order_status": "open",
        "filled_quantity": 0,
        "pending_quantity": 10,
        "average_price": 0.0,
        "rejection_reason": "",
    }
    msgspec.convert(event, OrderUpdate)  # the bus's typed struct accepts it


def test_statuses_products_and_names() -> None:
    fut = Instrument("NIFTY30DEC25FUT", "NFO", "52175")
    base = {**ORDER, "instrument_key": "NSE_FO|52175", "trading_symbol": "NIFTY FUT 30 DEC 25"}
    done = order_update(
        {**base, "status": "complete", "filled_quantity": 10, "pending_quantity": 0},
        "upstox",
        {"NSE_FO|52175": fut}.get,
    )
    assert (done["symbol"], done["exchange"], done["product"], done["order_status"]) == (
        "NIFTY30DEC25FUT",
        "NFO",
        "NRML",
        "complete",
    )
    rejected = order_update({**ORDER, "status": "rejected", "status_message": "margin shortfall"}, "upstox")
    assert rejected["order_status"] == "rejected" and rejected["rejection_reason"] == "margin shortfall"
    sl = order_update({**ORDER, "status": "trigger pending", "order_type": "SL-M", "product": "I"}, "upstox")
    assert (sl["order_status"], sl["pricetype"], sl["product"]) == ("trigger pending", "SL-M", "MIS")
    working = order_update({**ORDER, "status": "modify pending"}, "upstox")
    assert working["order_status"] == "open"
    assert order_update({**ORDER, "status": "cancelled"}, "upstox")["order_status"] == "cancelled"
