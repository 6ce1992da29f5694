"""Dhan's order-update socket: login by first frame, `order_alert` messages -> OpenAlgo `order_update`.

`wss://api-order-update.dhan.co` (no query string). The first text frame logs in:
`{"LoginReq":{"MsgCode":42,"ClientId":..,"Token":..},"UserType":"SELF"}`. Then the server pushes
`{"Type":"order_alert","Data":{...}}` for every order event of the account. `order_update()` maps one
`Data` object to OpenAlgo's client-facing `order_update` object (pure); `DhanOrderStream` is the
socket on the shared `OrderStream`. Dhan spells its keys in CamelCase (`OrderNo`); the lower-case
spellings some messages use (`orderNo`) are accepted too.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

import msgspec
from websockets.asyncio.client import ClientConnection

from openalgo_proxy.brokers.base import OrderEvent
from openalgo_proxy.brokers.dhan.credentials import DhanCredentials
from openalgo_proxy.brokers.dhan.instruments import SEGMENTS
from openalgo_proxy.brokers.order_stream import OrderFields, OrderMessageError, OrderStream, json_object, text
from openalgo_proxy.brokers.upstream import Frame, Handshake
from openalgo_proxy.model import Instrument

log = logging.getLogger(__name__)

ORDER_UPDATE_URL = "wss://api-order-update.dhan.co"
LOGIN_MSG_CODE = 42

FIELDS = OrderFields(
    user_id=("ClientId", "clientId", "dhanClientId"),
    orderid=("OrderNo", "orderNo", "orderId"),
    symbol=("Symbol", "DisplayName", "symbol"),
    exchange=("Exchange", "exchange"),
    action=("TxnType", "transactionType"),
    quantity=("Quantity", "quantity"),
    price=("Price", "price"),
    trigger_price=("TriggerPrice", "triggerPrice"),
    pricetype=("OrderType", "orderType"),
    product=("Product", "product"),
    status=("Status", "status"),
    filled_quantity=("TradedQty", "tradedQty"),
    pending_quantity=("RemainingQuantity", "remainingQuantity"),
    average_price=("AvgTradedPrice", "avgTradedPrice", "TradedPrice"),
    rejection_reason=("ReasonDescription", "reasonDescription"),
    actions={"B": "BUY", "S": "SELL"},
    pricetypes={"LMT": "LIMIT", "MKT": "MARKET", "SLM": "SL-M"},
    products={"C": "CNC", "I": "MIS", "M": "NRML", "F": "MTF", "V": "CO", "B": "BO"},
    statuses={
        "TRADED": "complete",
        "PART_TRADED": "open",
        "PENDING": "open",
        "TRANSIT": "open",
        "MODIFIED": "open",
        "TRIGGERED": "open",
        "REJECTED": "rejected",
        "CANCELLED": "cancelled",
        "EXPIRED": "cancelled",
    },
)
#: a stop order not yet triggered is "trigger pending" in OpenAlgo, "Pending" (or "Transit") in Dhan
UNTRIGGERED = frozenset({"PENDING", "TRANSIT"})

InstrumentOf = Callable[[int, int], Instrument | None]  # (segment, security id) -> instrument


def login_frame(credentials: DhanCredentials) -> str:
    body = {
        "LoginReq": {"MsgCode": LOGIN_MSG_CODE, "ClientId": credentials.client_id, "Token": credentials.token()},
        "UserType": "SELF",
    }
    return json.dumps(body, separators=(",", ":"))


def order_update(data: Mapping[str, Any], broker: str, instrument_of: InstrumentOf | None = None) -> OrderEvent:
    """One `order_alert` `Data` object as OpenAlgo's `order_update` object (exactly its keys).

    Symbol and exchange come from the instrument index by (segment, security id) when known, else
    from the alert's own names.
    """
    update = FIELDS.read(data, broker)
    found = SEGMENTS.get((update.exchange, text(data, "Segment", "segment").upper()))
    if found is not None:
        update.exchange = found[1]
        security_id = text(data, "SecurityId", "securityId")
        instrument = instrument_of(int(found[0]), int(security_id)) if instrument_of and security_id.isdigit() else None
        if instrument is not None:
            update.symbol, update.exchange = instrument.symbol, instrument.exchange
    stop = update.pricetype in ("SL", "SL-M")
    if stop and not update.filled_quantity and text(data, *FIELDS.status).upper() in UNTRIGGERED:
        update.order_status = "trigger pending"
    return msgspec.structs.asdict(update)


class DhanOrderStream(OrderStream[DhanCredentials]):
    """The account's order-update socket: logs in with the first frame, hands on each `order_alert`."""

    async def handshake(self) -> Handshake:
        return Handshake(self.url)

    async def authenticate(self, ws: ClientConnection) -> None:
        await ws.send(login_frame(self.credentials))

    def order_of(self, message: Frame) -> OrderEvent | None:
        obj = json_object(message)
        if obj.get("Type") != "order_alert":
            log.debug("%s: ignoring message type %r", self.label, obj.get("Type"))
            return None
        data = obj.get("Data")
        if not isinstance(data, dict):
            raise OrderMessageError("order_alert without a Data object")
        return self.to_event(data)
