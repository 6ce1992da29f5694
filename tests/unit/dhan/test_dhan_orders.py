"""Dhan `order_alert` Data -> OpenAlgo's `order_update` object (pure mapping)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from openalgo_proxy.brokers.dhan.credentials import DhanCredentials
from openalgo_proxy.brokers.dhan.orders import login_frame, order_update
from openalgo_proxy.control import OrderUpdate, decode_order_update
from openalgo_proxy.model import Instrument

#: an order alert as Dhan's order-update socket documents it (CamelCase keys)
TRADED: dict[str, Any] = {
    "Exchange": "NSE",
    "Segment": "E",
    "Source": "P",
    "SecurityId": "2885",
    "ClientId": "1000000001",
    "ExchOrderNo": "1100000000012345",
    "OrderNo": "112512090001",
    "Product": "I",
    "TxnType": "B",
    "OrderType": "LMT",
    "Validity": "DAY",
    "RemainingQuantity": 0,
    "Quantity": 10,
    "TradedQty": 10,
    "Price": 1485.05,
    "TriggerPrice": 0,
    "TradedPrice": 1485.0,
    "AvgTradedPrice": 1485.0,
    "Status": "Traded",
    "Symbol": "RELIANCE",
    "DisplayName": "Reliance Industries",
    "ReasonDescription": "CONFIRMED",
}


def _instrument_of(segment: int, security_id: int) -> Instrument | None:
    return Instrument("RELIANCE", "NSE", "2885") if (segment, security_id) == (1, 2885) else None


def test_traded_order_maps_to_complete_with_every_key() -> None:
    event = order_update(TRADED, "dhan", _instrument_of)
    update = decode_order_update(json.dumps(event).encode())  # the bus's strict struct accepts it
    assert isinstance(update, OrderUpdate)
    assert event == {
        "type": "order_update",
        "user_id": "1000000001",
        "mode": "live",
        "broker": "dhan",
        "orderid": "112512090001",
        "symbol": "RELIANCE",
        "exchange": "NSE",
        "action": "BUY",
        "quantity": 10,
        "price": 1485.05,
        "trigger_price": 0.0,
        "pricetype": "LIMIT",
        "product": "MIS",
        "order_status": "complete",
        "filled_quantity": 10,
        "pending_quantity": 0,
        "average_price": 1485.0,
        "rejection_reason": "",
    }


@pytest.mark.parametrize(
    ("changes", "status"),
    [
        ({"Status": "Pending", "TradedQty": 0, "RemainingQuantity": 10}, "open"),
        ({"Status": "Pending", "OrderType": "SL", "TradedQty": 0, "RemainingQuantity": 10}, "trigger pending"),
        ({"Status": "Part_Traded", "TradedQty": 4, "RemainingQuantity": 6}, "open"),
        ({"Status": "Cancelled", "TradedQty": 0}, "cancelled"),
        ({"Status": "Rejected", "TradedQty": 0, "ReasonDescription": "RMS: margin shortfall"}, "rejected"),
    ],
)
def test_statuses(changes: dict[str, Any], status: str) -> None:
    event = order_update({**TRADED, **changes}, "dhan", _instrument_of)
    assert event["order_status"] == status
    if status == "rejected":
        assert event["rejection_reason"] == "RMS: margin shortfall"
    else:
        assert event["rejection_reason"] == ""


def test_derivative_without_index_entry_keeps_the_alerts_names() -> None:
    alert = {**TRADED, "Segment": "D", "SecurityId": "52175", "Symbol": "NIFTY-Dec2025-FUT", "TxnType": "S"}
    alert |= {"Product": "M", "OrderType": "SLM", "TriggerPrice": 26100.5}
    event = order_update(alert, "dhan", _instrument_of)
    assert (event["symbol"], event["exchange"], event["action"]) == ("NIFTY-Dec2025-FUT", "NFO", "SELL")
    assert (event["product"], event["pricetype"], event["trigger_price"]) == ("NRML", "SL-M", 26100.5)


def test_login_frame() -> None:
    frame = json.loads(login_frame(DhanCredentials("1000000001", "tok")))
    assert frame == {"LoginReq": {"MsgCode": 42, "ClientId": "1000000001", "Token": "tok"}, "UserType": "SELF"}
