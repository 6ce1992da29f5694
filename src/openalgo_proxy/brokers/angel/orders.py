"""Angel's order-status WebSocket (`wss://tns.angelone.in/smart-order-update`) -> `order_update` events.

One connection per account, apart from the market-data pool: header authentication with the login
session's JWT (`Authorization: Bearer ..`), the text `ping` heartbeat every 10 s, nothing to
subscribe. Each text frame is JSON `{"user-id", "status-code", "order-status": "ABnn",
"error-message", "orderData": {..}}`; AB00 acknowledges the connection. `orderData` carries Angel's
order-book fields (`orderid`, `tradingsymbol`, `symboltoken`, `exchange`, `transactiontype`,
`ordertype`, `producttype`, `quantity`, `price`, `triggerprice`, `filledshares`, `unfilledshares`,
`averageprice`, `status`, `text`); they map onto OpenAlgo's keys with Angel's names for order and
product types translated (STOPLOSS_LIMIT -> SL, STOPLOSS_MARKET -> SL-M; DELIVERY -> CNC,
INTRADAY -> MIS, CARRYFORWARD/MARGIN -> NRML).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping

from openalgo_proxy.brokers.angel.login import AngelSession
from openalgo_proxy.brokers.base import Backoff, OrderSink
from openalgo_proxy.brokers.upstream import Frame, Handshake, Settings, UpstreamConnection
from openalgo_proxy.control import OrderUpdate
from openalgo_proxy.model import Instrument

log = logging.getLogger(__name__)

ORDER_WS_URL = "wss://tns.angelone.in/smart-order-update"
ORDER_PATH = "/smart-order-update"
#: ABnn -> OpenAlgo order_status
STATUS = {
    "AB01": "open",
    "AB02": "cancelled",
    "AB03": "rejected",
    "AB04": "open",  # modified
    "AB05": "complete",
    "AB06": "open",  # after-market order received
    "AB07": "cancelled",  # after-market order cancelled
    "AB08": "open",  # after-market modify received
    "AB09": "open",  # open pending
    "AB10": "trigger pending",
    "AB11": "open",  # modify pending
}
PRICE_TYPE = {"STOPLOSS_LIMIT": "SL", "STOPLOSS_MARKET": "SL-M"}
PRODUCT = {"DELIVERY": "CNC", "INTRADAY": "MIS", "CARRYFORWARD": "NRML", "MARGIN": "NRML"}
EXCHANGES = {"NSE": 1, "NFO": 2, "BSE": 3, "BFO": 4, "MCX": 5, "NCDEX": 7, "CDS": 13}

ByToken = Callable[[int, str], Instrument | None]


def _num(data: Mapping[str, object], key: str) -> float:
    value = data.get(key)
    try:
        return float(value) if isinstance(value, int | float | str) and value != "" else 0.0
    except ValueError:
        return 0.0


def order_update(message: Mapping[str, object], by_token: ByToken) -> OrderUpdate | None:
    """The event of one order-status message; None for the connection ack and unknown codes."""
    status = STATUS.get(str(message.get("order-status") or ""))
    data = message.get("orderData")
    if status is None or not isinstance(data, dict):
        return None
    exchange = str(data.get("exchange") or "")
    instrument = by_token(EXCHANGES.get(exchange, 0), str(data.get("symboltoken") or ""))
    ordertype, product = str(data.get("ordertype") or ""), str(data.get("producttype") or "")
    return OrderUpdate(
        user_id=str(message.get("user-id") or ""),
        mode="live",
        broker="angel",
        orderid=str(data.get("orderid") or ""),
        symbol=instrument.symbol if instrument else str(data.get("tradingsymbol") or ""),
        exchange=instrument.exchange if instrument else exchange,
        action=str(data.get("transactiontype") or ""),
        quantity=int(_num(data, "quantity")),
        price=_num(data, "price"),
        trigger_price=_num(data, "triggerprice"),
        pricetype=PRICE_TYPE.get(ordertype, ordertype),
        product=PRODUCT.get(product, product),
        order_status=status,
        filled_quantity=int(_num(data, "filledshares")),
        pending_quantity=int(_num(data, "unfilledshares")),
        average_price=_num(data, "averageprice"),
        rejection_reason=str(data.get("text") or "") if status == "rejected" else "",
    )


class AngelOrderConnection(UpstreamConnection[str, int]):
    """The account's order-status socket; subscribes nothing, hands each event to `on_order`."""

    heartbeat = "ping"

    def __init__(
        self,
        url: str,
        session: AngelSession,
        by_token: ByToken,
        on_order: OrderSink,
        settings: Settings | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__("angel-orders", settings, backoff)
        self.url = url
        self._session = session
        self._by_token = by_token
        self._on_order = on_order
        self._generation = 0
        self.events = 0

    async def handshake(self) -> Handshake:
        tokens = await self._session.tokens()
        self._generation = tokens.generation
        creds = self._session.credentials
        headers = {
            "Authorization": f"Bearer {tokens.jwt_token}",
            "x-api-key": creds.api_key,
            "x-client-code": creds.client_code,
            "x-feed-token": tokens.feed_token,
        }
        return Handshake(self.url, headers)

    async def refresh_credentials(self) -> None:
        await self._session.invalidate(self._generation)

    def requests(self, sent: Mapping[str, int], wanted: Mapping[str, int]) -> list[Frame]:
        return []

    def is_heartbeat(self, message: Frame) -> bool:
        return message == "pong"

    def on_message(self, message: Frame) -> None:
        try:
            parsed = json.loads(message)
            event = order_update(parsed, self._by_token) if isinstance(parsed, dict) else None
        except (ValueError, OverflowError) as exc:
            raise ValueError(f"order-status frame is not a usable JSON object: {exc}") from None
        if event is not None:
            self.events += 1
            self._on_order(event)
