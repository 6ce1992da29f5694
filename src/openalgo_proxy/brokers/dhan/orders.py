"""Dhan's order-update socket: login by first frame, `order_alert` messages -> OpenAlgo `order_update`.

`wss://api-order-update.dhan.co` (no query string). The first text frame logs in:
`{"LoginReq":{"MsgCode":42,"ClientId":..,"Token":..},"UserType":"SELF"}`. Then the server pushes
`{"Type":"order_alert","Data":{...}}` for every order event of the account. `order_update()` maps one
`Data` object to OpenAlgo's client-facing `order_update` object (pure); `DhanOrderConnection` is the
socket on the toolkit's `UpstreamConnection` (nothing to subscribe, protocol pings for liveness: an
account can be quiet for hours, so its stall timeout is long).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from websockets.asyncio.client import ClientConnection

from openalgo_proxy.brokers.base import Backoff, OrderEvent
from openalgo_proxy.brokers.dhan.codec import DhanCodecError
from openalgo_proxy.brokers.dhan.credentials import DhanCredentials
from openalgo_proxy.brokers.dhan.instruments import SEGMENTS
from openalgo_proxy.brokers.upstream import Frame, Handshake, Settings, UpstreamConnection
from openalgo_proxy.model import Instrument

log = logging.getLogger(__name__)

ORDER_UPDATE_URL = "wss://api-order-update.dhan.co"
LOGIN_MSG_CODE = 42
ORDER_STALL_TIMEOUT = 24 * 3600.0  # liveness comes from protocol pings; orders may not come for hours

#: Dhan status (upper case) -> OpenAlgo order_status
STATUSES: dict[str, str] = {
    "TRADED": "complete",
    "PART_TRADED": "open",
    "PENDING": "open",
    "TRANSIT": "open",
    "MODIFIED": "open",
    "TRIGGERED": "open",
    "REJECTED": "rejected",
    "CANCELLED": "cancelled",
    "EXPIRED": "cancelled",
}
#: Dhan product code -> OpenAlgo product
PRODUCTS: dict[str, str] = {"C": "CNC", "I": "MIS", "M": "NRML", "F": "MTF", "V": "CO", "B": "BO"}
#: Dhan order type -> OpenAlgo pricetype
PRICE_TYPES: dict[str, str] = {"LMT": "LIMIT", "MKT": "MARKET", "SL": "SL", "SLM": "SL-M", "SL-M": "SL-M"}
STOP_TYPES = frozenset({"SL", "SLM", "SL-M"})

InstrumentOf = Callable[[int, int], Instrument | None]  # (segment, security id) -> instrument


def login_frame(credentials: DhanCredentials) -> str:
    body = {
        "LoginReq": {"MsgCode": LOGIN_MSG_CODE, "ClientId": credentials.client_id, "Token": credentials.token()},
        "UserType": "SELF",
    }
    return json.dumps(body, separators=(",", ":"))


def _text(data: Mapping[str, Any], *names: str) -> str:
    for name in names:
        value = data.get(name)
        if value is not None and value != "":
            return str(value).strip()
    return ""


def _number(data: Mapping[str, Any], *names: str) -> float:
    text = _text(data, *names)
    try:
        return float(text) if text else 0.0
    except ValueError:
        return 0.0


def order_update(data: Mapping[str, Any], broker: str, instrument_of: InstrumentOf | None = None) -> OrderEvent:
    """One `order_alert` `Data` object as OpenAlgo's `order_update` object (exactly its keys).

    Symbol and exchange come from the instrument index by (segment, security id) when known, else
    from the alert's own names. Dhan spells its keys in CamelCase (`OrderNo`); the lower-case
    spellings some messages use (`orderNo`) are accepted too.
    """
    exchange_id = _text(data, "Exchange", "exchange").upper()
    segment_letter = _text(data, "Segment", "segment").upper()
    found = SEGMENTS.get((exchange_id, segment_letter))
    exchange = found[1] if found is not None else exchange_id
    symbol = _text(data, "Symbol", "DisplayName", "symbol")
    security_id = _text(data, "SecurityId", "securityId")
    if found is not None and security_id.isdigit() and instrument_of is not None:
        instrument = instrument_of(int(found[0]), int(security_id))
        if instrument is not None:
            symbol, exchange = instrument.symbol, instrument.exchange
    order_type = _text(data, "OrderType", "orderType").upper()
    raw_status = _text(data, "Status", "status").upper().replace(" ", "_")
    status = STATUSES.get(raw_status, raw_status.lower())
    filled = int(_number(data, "TradedQty", "tradedQty"))
    if status == "open" and order_type in STOP_TYPES and raw_status in ("PENDING", "TRANSIT") and not filled:
        status = "trigger pending"
    side = _text(data, "TxnType", "transactionType").upper()
    quantity = int(_number(data, "Quantity", "quantity"))
    pending = _text(data, "RemainingQuantity", "remainingQuantity")
    return {
        "type": "order_update",
        "user_id": _text(data, "ClientId", "clientId", "dhanClientId"),
        "mode": "live",
        "broker": broker,
        "orderid": _text(data, "OrderNo", "orderNo", "orderId"),
        "symbol": symbol,
        "exchange": exchange,
        "action": {"B": "BUY", "S": "SELL"}.get(side, side),
        "quantity": quantity,
        "price": _number(data, "Price", "price"),
        "trigger_price": _number(data, "TriggerPrice", "triggerPrice"),
        "pricetype": PRICE_TYPES.get(order_type, order_type),
        "product": PRODUCTS.get(_text(data, "Product", "product").upper(), _text(data, "Product", "product")),
        "order_status": status,
        "filled_quantity": filled,
        "pending_quantity": int(float(pending)) if pending else max(0, quantity - filled),
        "average_price": _number(data, "AvgTradedPrice", "avgTradedPrice", "TradedPrice"),
        "rejection_reason": _text(data, "ReasonDescription", "reasonDescription") if status == "rejected" else "",
    }


class DhanOrderConnection(UpstreamConnection[str, int]):
    """The account's order-update socket; hands each `order_alert` to `on_order`."""

    decode_errors_raised = (DhanCodecError,)

    def __init__(
        self,
        url: str,
        credentials: DhanCredentials,
        on_order: Callable[[OrderEvent], None],
        broker: str,
        instrument_of: InstrumentOf | None = None,
        settings: Settings | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__("dhan-orders", settings or Settings(stall_timeout=ORDER_STALL_TIMEOUT), backoff)
        self.url = url
        self._credentials = credentials
        self._on_order = on_order
        self._broker = broker
        self._instrument_of = instrument_of
        self.alerts = 0

    async def handshake(self) -> Handshake:
        return Handshake(self.url)

    async def authenticate(self, ws: ClientConnection) -> None:
        await ws.send(login_frame(self._credentials))

    def requests(self, sent: Mapping[str, int], wanted: Mapping[str, int]) -> list[Frame]:
        return []  # the login frame is the whole subscription

    def on_message(self, message: Frame) -> None:
        try:
            obj = json.loads(message)
        except ValueError:
            raise DhanCodecError(f"order update is not JSON: {message[:80]!r}") from None
        if not isinstance(obj, dict):
            raise DhanCodecError("order update is not an object")
        if obj.get("Type") != "order_alert":
            log.debug("%s: ignoring message type %r", self.label, obj.get("Type"))
            return
        data = obj.get("Data")
        if not isinstance(data, dict):
            raise DhanCodecError("order_alert without a Data object")
        self.alerts += 1
        self._on_order(order_update(data, self._broker, self._instrument_of))
