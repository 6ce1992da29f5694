"""Upstox's portfolio stream: order updates of the account -> OpenAlgo `order_update`.

`GET wss://api.upstox.com/v2/feed/portfolio-stream-feed?update_types=order` with the bearer header,
redirected (302) to a single-use authorised URL like the market feed. Nothing is sent; the server
pushes JSON text messages, one per event; those with `"update_type":"order"` are order updates
(position, holding and GTT updates are not asked for). `order_update()` maps one to OpenAlgo's
client-facing `order_update` object (pure); `UpstoxOrderStream` is the socket on the shared
`OrderStream` (liveness from the server's pings and the protocol's).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from openalgo_proxy.brokers.base import OrderEvent
from openalgo_proxy.brokers.order_stream import OrderFields, OrderStream, json_object, text
from openalgo_proxy.brokers.upstox.credentials import UpstoxCredentials
from openalgo_proxy.brokers.upstox.instruments import SEGMENTS
from openalgo_proxy.brokers.upstream import Frame, Handshake
from openalgo_proxy.model import Instrument

log = logging.getLogger(__name__)

PORTFOLIO_URL = "wss://api.upstox.com/v2/feed/portfolio-stream-feed"
PORTFOLIO_PATH = "/v2/feed/portfolio-stream-feed"

FIELDS = OrderFields(
    user_id=("user_id", "userId", "placed_by"),
    orderid=("order_id",),
    symbol=("trading_symbol", "tradingsymbol"),
    action=("transaction_type",),
    pricetype=("order_type",),
    rejection_reason=("status_message", "status_message_raw"),
    pricetypes={"SLM": "SL-M"},
    products={"I": "MIS", "OCO": "BO"},  # D (delivery) is CNC for cash, NRML for derivatives
    statuses={
        "COMPLETE": "complete",
        "REJECTED": "rejected",
        "CANCELLED": "cancelled",
        "CANCELLED_AFTER_MARKET_ORDER": "cancelled",
        "TRIGGER_PENDING": "trigger pending",
    },
    other_status="open",  # every other Upstox status is an order still working
)
CASH_EXCHANGES = frozenset({"NSE", "BSE"})

InstrumentOf = Callable[[str], Instrument | None]  # instrument key -> instrument


def portfolio_url(base: str) -> str:
    return f"{base}?update_types=order"


def order_update(data: Mapping[str, Any], broker: str, instrument_of: InstrumentOf | None = None) -> OrderEvent:
    """One Upstox order update as OpenAlgo's `order_update` object (exactly its keys).

    Symbol and exchange come from the instrument index by instrument key when known, else from the
    message's trading symbol and the key's segment.
    """
    update = FIELDS.read(data, broker)
    key = text(data, "instrument_key", "instrument_token")
    update.exchange = SEGMENTS.get(key.split("|", 1)[0], update.exchange)
    instrument = instrument_of(key) if instrument_of is not None and key else None
    if instrument is not None:
        update.symbol, update.exchange = instrument.symbol, instrument.exchange
    if update.product == "D":
        update.product = "CNC" if update.exchange in CASH_EXCHANGES else "NRML"
    return msgspec.structs.asdict(update)


class UpstoxOrderStream(OrderStream[UpstoxCredentials]):
    """The account's portfolio stream; hands on each order update."""

    async def handshake(self) -> Handshake:
        return Handshake(portfolio_url(self.url), self.credentials.authorization())

    def order_of(self, message: Frame) -> OrderEvent | None:
        obj = json_object(message)
        if obj.get("update_type") != "order":
            log.debug("%s: ignoring update type %r", self.label, obj.get("update_type"))
            return None
        return self.to_event(obj)
