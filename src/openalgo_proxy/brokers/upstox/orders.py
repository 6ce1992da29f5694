"""Upstox's portfolio stream: order updates of the account -> OpenAlgo `order_update`.

`GET wss://api.upstox.com/v2/feed/portfolio-stream-feed?update_types=order` with the bearer header,
redirected (302) to a single-use authorised URL like the market feed. Nothing is sent; the server
pushes JSON text messages, one per event; those with `"update_type":"order"` are order updates
(position, holding and GTT updates are not asked for). `order_update()` maps one to OpenAlgo's
client-facing `order_update` object (pure); `UpstoxOrderConnection` is the socket on the toolkit's
`UpstreamConnection` (an account can be quiet for hours: liveness comes from the server's pings and
the protocol's, so its stall timeout is long).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from openalgo_proxy.brokers.base import Backoff, OrderEvent
from openalgo_proxy.brokers.upstox.codec import UpstoxCodecError
from openalgo_proxy.brokers.upstox.credentials import UpstoxCredentials
from openalgo_proxy.brokers.upstox.instruments import SEGMENTS
from openalgo_proxy.brokers.upstream import Frame, Handshake, Settings, UpstreamConnection
from openalgo_proxy.model import Instrument

log = logging.getLogger(__name__)

PORTFOLIO_URL = "wss://api.upstox.com/v2/feed/portfolio-stream-feed"
PORTFOLIO_PATH = "/v2/feed/portfolio-stream-feed"
ORDER_STALL_TIMEOUT = 24 * 3600.0

#: Upstox order status -> OpenAlgo order_status (anything else still working is "open")
STATUSES: dict[str, str] = {
    "complete": "complete",
    "rejected": "rejected",
    "cancelled": "cancelled",
    "cancelled after market order": "cancelled",
    "trigger pending": "trigger pending",
}
#: Upstox product -> OpenAlgo product (D is delivery: CNC for cash, NRML for derivatives)
PRODUCTS: dict[str, str] = {"I": "MIS", "MTF": "MTF", "CO": "CO", "OCO": "BO"}
PRICE_TYPES: dict[str, str] = {"MARKET": "MARKET", "LIMIT": "LIMIT", "SL": "SL", "SL-M": "SL-M", "SLM": "SL-M"}
CASH_EXCHANGES = frozenset({"NSE", "BSE"})

InstrumentOf = Callable[[str], Instrument | None]  # instrument key -> instrument


def portfolio_url(base: str) -> str:
    return f"{base}?update_types=order"


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
    """One Upstox order update as OpenAlgo's `order_update` object (exactly its keys).

    Symbol and exchange come from the instrument index by instrument key when known, else from the
    message's trading symbol and the key's segment.
    """
    key = _text(data, "instrument_key", "instrument_token")
    segment = key.split("|", 1)[0]
    exchange = SEGMENTS.get(segment, _text(data, "exchange"))
    symbol = _text(data, "trading_symbol", "tradingsymbol")
    instrument = instrument_of(key) if instrument_of is not None and key else None
    if instrument is not None:
        symbol, exchange = instrument.symbol, instrument.exchange
    raw_status = _text(data, "status").lower()
    status = STATUSES.get(raw_status, "open" if raw_status else "")
    quantity = int(_number(data, "quantity"))
    filled = int(_number(data, "filled_quantity"))
    pending = _text(data, "pending_quantity")
    raw_product = _text(data, "product").upper()
    product = PRODUCTS.get(raw_product, raw_product)
    if raw_product == "D":
        product = "CNC" if exchange in CASH_EXCHANGES else "NRML"
    order_type = _text(data, "order_type").upper()
    return {
        "type": "order_update",
        "user_id": _text(data, "user_id", "userId", "placed_by"),
        "mode": "live",
        "broker": broker,
        "orderid": _text(data, "order_id"),
        "symbol": symbol,
        "exchange": exchange,
        "action": _text(data, "transaction_type").upper(),
        "quantity": quantity,
        "price": _number(data, "price"),
        "trigger_price": _number(data, "trigger_price"),
        "pricetype": PRICE_TYPES.get(order_type, order_type),
        "product": product,
        "order_status": status,
        "filled_quantity": filled,
        "pending_quantity": int(float(pending)) if pending else max(0, quantity - filled),
        "average_price": _number(data, "average_price"),
        "rejection_reason": _text(data, "status_message", "status_message_raw") if status == "rejected" else "",
    }


class UpstoxOrderConnection(UpstreamConnection[str, int]):
    """The account's portfolio stream; hands each order update to `on_order`."""

    decode_errors_raised = (UpstoxCodecError,)

    def __init__(
        self,
        url: str,
        credentials: UpstoxCredentials,
        on_order: Callable[[OrderEvent], None],
        broker: str,
        instrument_of: InstrumentOf | None = None,
        settings: Settings | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__("upstox-orders", settings or Settings(stall_timeout=ORDER_STALL_TIMEOUT), backoff)
        self.url = url
        self._credentials = credentials
        self._on_order = on_order
        self._broker = broker
        self._instrument_of = instrument_of
        self.updates = 0

    async def handshake(self) -> Handshake:
        return Handshake(portfolio_url(self.url), self._credentials.authorization())

    def requests(self, sent: Mapping[str, int], wanted: Mapping[str, int]) -> list[Frame]:
        return []  # the URL's update_types is the whole subscription

    def on_message(self, message: Frame) -> None:
        try:
            obj = json.loads(message)
        except (ValueError, UnicodeDecodeError):
            raise UpstoxCodecError(f"portfolio update is not JSON: {message[:80]!r}") from None
        if not isinstance(obj, dict):
            raise UpstoxCodecError("portfolio update is not an object")
        if obj.get("update_type") != "order":
            log.debug("%s: ignoring update type %r", self.label, obj.get("update_type"))
            return
        self.updates += 1
        self._on_order(order_update(obj, self._broker, self._instrument_of))
