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

from collections.abc import Callable, Mapping

from openalgo_proxy.brokers.angel.login import AngelSession
from openalgo_proxy.brokers.order_stream import OrderFields, OrderStream, text
from openalgo_proxy.brokers.upstream import Frame, Handshake
from openalgo_proxy.control import OrderUpdate
from openalgo_proxy.model import Instrument

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
FIELDS = OrderFields(
    orderid=("orderid",),
    symbol=("tradingsymbol",),
    action=("transactiontype",),
    trigger_price=("triggerprice",),
    pricetype=("ordertype",),
    product=("producttype",),
    filled_quantity=("filledshares",),
    pending_quantity=("unfilledshares",),
    average_price=("averageprice",),
    rejection_reason=("text",),
    pricetypes={"STOPLOSS_LIMIT": "SL", "STOPLOSS_MARKET": "SL-M"},
    products={"DELIVERY": "CNC", "INTRADAY": "MIS", "CARRYFORWARD": "NRML", "MARGIN": "NRML"},
)
EXCHANGES = {"NSE": 1, "NFO": 2, "BSE": 3, "BFO": 4, "MCX": 5, "NCDEX": 7, "CDS": 13}

ByToken = Callable[[int, str], Instrument | None]


def order_update(message: Mapping[str, object], by_token: ByToken) -> OrderUpdate | None:
    """The event of one order-status message; None for the connection ack and unknown codes."""
    status = STATUS.get(str(message.get("order-status") or ""))
    data = message.get("orderData")
    if status is None or not isinstance(data, dict):
        return None
    update = FIELDS.read(data, "angel", order_status=status)
    update.user_id = text(message, "user-id")
    instrument = by_token(EXCHANGES.get(update.exchange, 0), text(data, "symboltoken"))
    if instrument is not None:
        update.symbol, update.exchange = instrument.symbol, instrument.exchange
    return update


class AngelOrderStream(OrderStream[AngelSession]):
    """The account's order-status socket: header authentication with the login session, `ping` heartbeat."""

    heartbeat = "ping"
    _generation = 0

    async def handshake(self) -> Handshake:
        tokens = await self.credentials.tokens()
        self._generation = tokens.generation
        creds = self.credentials.credentials
        headers = {
            "Authorization": f"Bearer {tokens.jwt_token}",
            "x-api-key": creds.api_key,
            "x-client-code": creds.client_code,
            "x-feed-token": tokens.feed_token,
        }
        return Handshake(self.url, headers)

    async def refresh_credentials(self) -> None:
        await self.credentials.invalidate(self._generation)

    def is_heartbeat(self, message: Frame) -> bool:
        return message == "pong"
