"""The shared order-update pieces: the OrderFields mapping rules, OrderStream against a loopback order
socket (events handed on and counted, malformed messages counted while the connection stays, reconnect
after a drop), and OrderStreamAdapter's wiring (opened once wanted and started, stopped with the adapter)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve

from openalgo_proxy.brokers.base import Backoff, ConnectionState, FeedOptions, OrderEvent
from openalgo_proxy.brokers.index import InstrumentIndex
from openalgo_proxy.brokers.order_stream import (
    QUIET_STALL_TIMEOUT,
    OrderFields,
    OrderMessageError,
    OrderStream,
    OrderStreamAdapter,
    json_object,
    number,
    text,
)
from openalgo_proxy.brokers.pool import Slot
from openalgo_proxy.brokers.upstream import Handshake
from openalgo_proxy.control import OrderUpdate
from openalgo_proxy.model import Instrument, Mode
from tests.support import wait_for

pytestmark = pytest.mark.timeout(30)

FIELDS = OrderFields(
    orderid=("OrderNo", "orderNo"),
    action=("Side",),
    pricetype=("Type",),
    rejection_reason=("Reason",),
    actions={"B": "BUY", "S": "SELL"},
    pricetypes={"LMT": "LIMIT"},
    statuses={"TRADED": "complete", "REJECTED": "rejected", "TRIGGER_PENDING": "trigger pending"},
)


def test_names_default_to_openalgos_and_codes_translate() -> None:
    message = {"orderNo": " 42 ", "Side": "b", "Type": "LMT", "exchange": "nse", "symbol": "INFY", "quantity": "10"}
    update = FIELDS.read({**message, "filled_quantity": 4, "price": "1500.5", "status": "Traded"}, "x")
    assert update == OrderUpdate(
        user_id="", mode="live", broker="x", orderid="42", symbol="INFY", exchange="NSE", action="BUY",
        quantity=10, price=1500.5, trigger_price=0.0, pricetype="LIMIT", product="", order_status="complete",
        filled_quantity=4, pending_quantity=6, average_price=0.0, rejection_reason="",
    )  # fmt: skip


def test_statuses_unknown_codes_pending_and_reasons() -> None:
    assert FIELDS.read({"status": "trigger pending"}, "x").order_status == "trigger pending"  # spaces read as _
    assert FIELDS.read({"status": "OPEN_PENDING"}, "x").order_status == "open pending"  # the broker's word
    assert FIELDS.read({"status": ""}, "x").order_status == ""
    assert OrderFields(other_status="open").read({"status": "AMO"}, "x").order_status == "open"
    assert FIELDS.read({"Side": "x", "Type": "stop"}, "x").action == "X"  # unknown codes pass upper-cased
    given = FIELDS.read({"quantity": 10, "filled_quantity": 4, "pending_quantity": 0}, "x")
    assert given.pending_quantity == 0  # the message's own pending quantity wins
    assert FIELDS.read({"quantity": 1, "filled_quantity": 3}, "x").pending_quantity == 0
    rejected = FIELDS.read({"status": "REJECTED", "Reason": "margin"}, "x")
    assert (rejected.order_status, rejected.rejection_reason) == ("rejected", "margin")
    assert FIELDS.read({"status": "TRADED", "Reason": "ok"}, "x").rejection_reason == ""
    assert FIELDS.read({"status": "TRADED"}, "x", order_status="cancelled").order_status == "cancelled"


def test_text_and_number_helpers() -> None:
    data = {"a": None, "b": "  ", "c": " x ", "n": "1e999", "m": "abc", "k": 7}
    assert text(data, "a", "b", "c") == "x"  # the first non-empty
    assert text(data, "missing") == ""
    assert (number(data, "n"), number(data, "m"), number(data, "k"), number(data, "none")) == (0.0, 0.0, 7.0, 0.0)
    assert json_object(b'{"a":1}') == {"a": 1}
    for bad in ("[1]", "not json", b"\xff"):
        with pytest.raises(OrderMessageError):
            json_object(bad)


class LoopbackStream(OrderStream[str]):
    """The token in the query string; the default `order_of`: each JSON object through `to_event`."""

    async def handshake(self) -> Handshake:
        return Handshake(f"{self.url}?token={self.credentials}")


def loopback_order(obj: dict[str, Any]) -> OrderEvent | None:
    """Orders are `{"kind":"order",...}` objects; anything else is ignored."""
    return FIELDS.read(obj, "loop") if obj.get("kind") == "order" else None


@pytest.fixture
async def order_socket() -> AsyncIterator[tuple[Server, list[ServerConnection]]]:
    connections: list[ServerConnection] = []

    async def handler(ws: ServerConnection) -> None:
        assert ws.request is not None and ws.request.path == "/?token=t0k"
        connections.append(ws)
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0) as server:
        yield server, connections


async def test_stream_hands_on_orders_counts_malformed_and_reconnects(
    order_socket: tuple[Server, list[ServerConnection]],
) -> None:
    server, connections = order_socket
    port = server.sockets[0].getsockname()[1]
    events: list[OrderEvent] = []
    url = f"ws://127.0.0.1:{port}"
    stream = LoopbackStream("loop-orders", url, "t0k", loopback_order, events.append, backoff=Backoff(0.01, 0.05))
    assert stream.stall_timeout == QUIET_STALL_TIMEOUT  # no heartbeat: an account may be quiet for hours
    stream.start()
    try:
        await wait_for(lambda: len(connections) == 1)
        await connections[0].send('{"kind":"ack"}')
        await connections[0].send("{broken")
        await connections[0].send('{"kind":"order","OrderNo":"1","status":"TRADED"}')
        await wait_for(lambda: len(events) == 1)
        assert (stream.events, stream.decode_errors, stream.reconnects) == (1, 1, 0)
        assert isinstance(events[0], OrderUpdate) and events[0].orderid == "1"
        assert stream.requests({}, {}) == []  # nothing is ever subscribed
        await connections[0].close()
        await wait_for(lambda: len(connections) == 2)
        await connections[1].send('{"kind":"order","OrderNo":"2","status":"REJECTED","Reason":"RMS"}')
        await wait_for(lambda: len(events) == 2)
        assert stream.events == 2 and stream.reconnects == 1
    finally:
        await asyncio.wait_for(stream.stop(), 5)


class FakeOrderAdapter(OrderStreamAdapter[str, int]):
    """A pooled adapter with one indexed instrument and an order stream to the loopback socket."""

    name = "fake"

    def __init__(self, url: str) -> None:
        super().__init__(FeedOptions())
        self.url = url
        self.opened = 0

    async def load_index(self) -> InstrumentIndex[str]:
        index: InstrumentIndex[str] = InstrumentIndex()
        index.add(Instrument("INFY", "NSE", "1594"), "1594")
        return index

    def wire_key(self, instrument: Instrument) -> str:
        return instrument.token

    def upstream_mode(self, instrument: Instrument, mode: Mode) -> int:
        return int(mode)

    def open_connection(self, slot: int) -> Slot:
        raise AssertionError("no market connection in this test")

    def open_order_stream(self) -> LoopbackStream:
        self.opened += 1
        return LoopbackStream("fake-orders", self.url, "t0k", self._order, self.emit_order, backoff=Backoff(0.01, 0.05))

    def _order(self, obj: dict[str, Any]) -> OrderEvent | None:
        update = FIELDS.read(obj, self.name)
        instrument = self.indexed(text(obj, "token"))  # any indexed instrument, subscribed or not
        if instrument is not None:
            update.symbol = instrument.symbol
        return update


async def test_adapter_opens_the_stream_once_wanted_and_started_and_stops_it(
    order_socket: tuple[Server, list[ServerConnection]],
) -> None:
    server, connections = order_socket
    adapter = FakeOrderAdapter(f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}")
    first: list[OrderEvent] = []
    adapter.set_order_sink(first.append)
    assert adapter.opened == 0  # wanted, but not started: no index to name instruments yet
    await adapter.start(lambda tick: None, lambda rejection: None)
    stream = adapter.orders
    try:
        assert stream is not None and adapter.opened == 1
        await wait_for(lambda: len(connections) == 1)
        later: list[OrderEvent] = []
        adapter.set_order_sink(later.append)  # the sink set last receives, on the same stream
        assert adapter.opened == 1
        await connections[0].send('{"OrderNo":"7","token":"1594","status":"TRADED"}')
        await wait_for(lambda: len(later) == 1)
        assert first == [] and isinstance(later[0], OrderUpdate) and later[0].symbol == "INFY"
        assert adapter.order_events() == 1
    finally:
        await adapter.stop()
    assert stream.state is ConnectionState.CLOSED
