"""Order updates, once for every broker: a broker's order messages -> OpenAlgo's `order_update`.

Three pieces; a broker supplies only its wire facts:

- `OrderFields`: where the broker's order message keeps each `order_update` key and how its codes
  (side, order type, product, status) read. `read()` makes the typed `control.OrderUpdate`: the
  first non-empty of the named keys, numbers that are not numbers read as 0, codes translated by
  the broker's tables (an unknown code passes through upper-cased, an unknown status lower-cased),
  the pending quantity worked out when the message has none, and the rejection reason kept only
  for a rejected order. A broker whose updates arrive on its market connection (Kite's text
  messages, Noren's `om`) uses only this.
- `OrderStream`: the account's separate order-update WebSocket on the toolkit's
  `UpstreamConnection` (reconnect, stall watchdog, counters). Nothing is subscribed; each message
  is at most one event for the order sink. The broker implements `handshake()` (URL and
  authentication), and where needed `order_of(message)` (which messages are orders),
  `authenticate()` (a login frame), `refresh_credentials()` and the heartbeat hooks. An account
  can be quiet for hours, so unless the broker has a heartbeat its liveness comes from protocol
  pings and the stall timeout is long.
- `OrderStreamAdapter`: a pooled adapter whose account has such a stream. The stream opens once
  the feed asks for order events and the adapter has started (in either order) and stops with the
  adapter; the broker implements `open_order_stream()`.
"""

from __future__ import annotations

import abc
import json
import math
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from openalgo_proxy.brokers.base import Backoff, OrderEvent, OrderSink, RejectSink, TickSink
from openalgo_proxy.brokers.pooled import PooledAdapter
from openalgo_proxy.brokers.upstream import Frame, Settings, UpstreamConnection
from openalgo_proxy.control import OrderUpdate
from openalgo_proxy.model import Instrument

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
C = TypeVar("C")  # what an order stream authenticates with

#: stall timeout of a stream without a heartbeat: orders may not come for hours, pings prove liveness
QUIET_STALL_TIMEOUT = 24 * 3600.0
Names = tuple[str, ...]


class OrderMessageError(ValueError):
    """A malformed order message: counted as a decode error, and the connection stays."""


def text(data: Mapping[str, Any], *names: str) -> str:
    """The first of `names` that `data` holds as a non-empty value, as stripped text; "" when none."""
    for name in names:
        value = data.get(name)
        if value is not None and (found := str(value).strip()):
            return found
    return ""


def number(data: Mapping[str, Any], *names: str) -> float:
    """The first of `names` as a number; 0.0 when absent or not a finite number."""
    try:
        value = float(text(data, *names) or 0.0)
    except ValueError:
        return 0.0
    return value if math.isfinite(value) else 0.0


def json_object(message: Frame) -> dict[str, Any]:
    """One JSON-object message; `OrderMessageError` for anything else."""
    try:
        obj = json.loads(message)
    except (ValueError, RecursionError):
        raise OrderMessageError(f"order message is not JSON: {message[:80]!r}") from None
    if not isinstance(obj, dict):
        raise OrderMessageError("order message is not a JSON object")
    return obj


@dataclass(frozen=True, kw_only=True)
class OrderFields:
    """Where one broker's order message keeps each `order_update` key (the first non-empty name
    wins; by default OpenAlgo's own name, `status` for the order status), and the broker's codes ->
    OpenAlgo's words (keys upper-case; a status key with `_` for spaces)."""

    user_id: Names = ("user_id",)
    orderid: Names = ("orderid",)
    symbol: Names = ("symbol",)
    exchange: Names = ("exchange",)
    action: Names = ("action",)
    quantity: Names = ("quantity",)
    price: Names = ("price",)
    trigger_price: Names = ("trigger_price",)
    pricetype: Names = ("pricetype",)
    product: Names = ("product",)
    status: Names = ("status",)
    filled_quantity: Names = ("filled_quantity",)
    pending_quantity: Names = ("pending_quantity",)
    average_price: Names = ("average_price",)
    rejection_reason: Names = ("rejection_reason",)
    actions: Mapping[str, str] = field(default_factory=dict)
    pricetypes: Mapping[str, str] = field(default_factory=dict)
    products: Mapping[str, str] = field(default_factory=dict)
    statuses: Mapping[str, str] = field(default_factory=dict)
    #: OpenAlgo's status for a status not in `statuses` (None: the broker's own word, lower-cased)
    other_status: str | None = None

    def status_of(self, raw: str) -> str:
        """The OpenAlgo `order_status` of the broker's status word ("" for none)."""
        key = raw.upper().replace(" ", "_")
        if not key or key in self.statuses:
            return self.statuses.get(key, "")
        return self.other_status if self.other_status is not None else raw.lower().replace("_", " ")

    def read(self, data: Mapping[str, Any], broker: str, *, order_status: str | None = None) -> OrderUpdate:
        """`data` as OpenAlgo's `order_update`; `order_status` when the broker says it elsewhere."""
        status = self.status_of(text(data, *self.status)) if order_status is None else order_status
        quantity = int(number(data, *self.quantity))
        filled = int(number(data, *self.filled_quantity))
        given = text(data, *self.pending_quantity)
        pending = int(number(data, *self.pending_quantity)) if given else max(0, quantity - filled)
        action = text(data, *self.action).upper()
        pricetype = text(data, *self.pricetype).upper()
        product = text(data, *self.product).upper()
        return OrderUpdate(
            user_id=text(data, *self.user_id),
            mode="live",
            broker=broker,
            orderid=text(data, *self.orderid),
            symbol=text(data, *self.symbol),
            exchange=text(data, *self.exchange).upper(),
            action=self.actions.get(action, action),
            quantity=quantity,
            price=number(data, *self.price),
            trigger_price=number(data, *self.trigger_price),
            pricetype=self.pricetypes.get(pricetype, pricetype),
            product=self.products.get(product, product),
            order_status=status,
            filled_quantity=filled,
            pending_quantity=pending,
            average_price=number(data, *self.average_price),
            rejection_reason=text(data, *self.rejection_reason) if status == "rejected" else "",
        )


class OrderStream(UpstreamConnection[str, int], Generic[C]):
    """An account's order-update socket: subscribes nothing, hands each order event to `on_order`.

    `credentials` are what `handshake()` and `authenticate()` need; `to_event` maps one JSON object
    to its order event (None for none), with the broker's name and instrument lookup bound in.
    """

    def __init__(
        self,
        label: str,
        url: str,
        credentials: C,
        to_event: Callable[[dict[str, Any]], OrderEvent | None],
        on_order: OrderSink,
        settings: Settings | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__(label, settings or Settings(stall_timeout=QUIET_STALL_TIMEOUT), backoff)
        self.url = url
        self.credentials = credentials
        self.to_event = to_event
        self._on_order = on_order
        self.events = 0  # order events handed on

    def order_of(self, message: Frame) -> OrderEvent | None:
        """The order event in one message, None for any other message (acks, other update kinds);
        a ValueError for a malformed one. By default: `to_event` of the message as a JSON object."""
        return self.to_event(json_object(message))

    def requests(self, sent: Mapping[str, int], wanted: Mapping[str, int]) -> list[Frame]:
        return []  # the handshake (and login frame) is the whole subscription

    def on_message(self, message: Frame) -> None:
        event = self.order_of(message)
        if event is not None:
            self.events += 1
            self._on_order(event)


class OrderStreamAdapter(PooledAdapter[K, V]):
    """A pooled adapter whose account streams its order updates on an `OrderStream` of its own."""

    orders: OrderStream[Any] | None = None
    _orders_wanted = False

    @abc.abstractmethod
    def open_order_stream(self) -> OrderStream[Any]:
        """A new (not yet started) order stream for the account, handing its events to `emit_order`;
        called once the adapter has started."""

    def set_order_sink(self, on_order: OrderSink) -> None:
        """Order events go to `on_order`: the order stream opens (now, or when started)."""
        super().set_order_sink(on_order)
        self._orders_wanted = True
        self._open_orders()

    async def start(self, on_tick: TickSink, on_reject: RejectSink) -> None:
        await super().start(on_tick, on_reject)
        self._open_orders()

    def _open_orders(self) -> None:
        if self._orders_wanted and self.orders is None and self.index is not None:
            self.orders = self.open_order_stream()
            self.orders.start()

    def emit_order(self, event: OrderEvent) -> None:
        self.on_order(event)  # the sink set last, even after the stream opened

    def indexed(self, key: K) -> Instrument | None:
        """The index's instrument of `key` (subscribed or not): order updates name any instrument."""
        return self.index.by_key(key) if self.index is not None else None

    def order_events(self) -> int:
        return self.orders.events if self.orders is not None else 0

    async def stop(self) -> None:
        try:
            if self.orders is not None:
                await self.orders.stop()
        finally:
            await super().stop()
