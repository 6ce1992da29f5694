"""Order updates: a Kite order postback on the ticker reaches the bus as `#orders|zerodha|USER`."""

from __future__ import annotations

import asyncio

import zmq
import zmq.asyncio

from openalgo_proxy import control, topics
from openalgo_proxy.brokers.zerodha.codec import OrderUpdate
from openalgo_proxy.brokers.zerodha.orders import order_update
from openalgo_proxy.brokers.zerodha.simulator import KiteSimulator
from openalgo_proxy.feed import Feed
from tests.integration.zerodha.conftest import make_adapter
from tests.support import free_port, wait_for

POSTBACK = {
    "user_id": "AB1234",
    "order_id": "151220000000000",
    "status": "REJECTED",
    "status_message": "Insufficient funds",
    "tradingsymbol": "RELIANCE",
    "instrument_token": 738561,
    "exchange": "NSE",
    "transaction_type": "BUY",
    "order_type": "SL",
    "product": "MIS",
    "quantity": 10,
    "price": 1485.5,
    "trigger_price": 1480.0,
    "filled_quantity": 0,
    "pending_quantity": 10,
    "average_price": 0,
}


def test_kite_fields_map_onto_the_openalgo_shape() -> None:
    update = order_update({**POSTBACK, "status": "TRIGGER PENDING"}, "KEY", lambda token: None)
    assert (update.order_status, update.rejection_reason, update.symbol, update.exchange) == (
        "trigger pending",
        "",
        "RELIANCE",
        "NSE",
    )
    assert order_update({"status": "OPEN PENDING"}, "KEY", lambda token: None).order_status == "open"
    assert order_update({"quantity": "x"}, "KEY", lambda token: None).quantity == 0


async def test_order_postback_is_published_on_the_bus(sim: KiteSimulator) -> None:
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    feed = Feed(make_adapter(sim), endpoint, orders=True)
    ctx = zmq.asyncio.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, topics.ORDERS_PREFIX)
    await feed.start()
    try:
        sub.connect(endpoint)
        await wait_for(lambda: len(sim.connections) == 1)
        async with asyncio.timeout(10):
            frames: list[bytes] = []
            while not frames:
                await sim.send_text(OrderUpdate(POSTBACK))  # until the SUB's subscription has arrived
                if await sub.poll(200):
                    frames = await sub.recv_multipart()
        topic, _seq, data = frames
        assert topic == topics.orders_topic("zerodha", "AB1234")
        event = control.decode_order_update(data)
        assert (event.orderid, event.order_status, event.rejection_reason) == (
            "151220000000000",
            "rejected",
            "Insufficient funds",
        )
        assert (event.symbol, event.exchange, event.action, event.pricetype, event.product) == (
            "RELIANCE",
            "NSE",
            "BUY",
            "SL",
            "MIS",
        )
        assert (event.quantity, event.price, event.trigger_price, event.pending_quantity) == (10, 1485.5, 1480.0, 10)
        assert (event.user_id, event.mode, event.broker) == ("AB1234", "live", "zerodha")
    finally:
        sub.close(0)
        ctx.term()
        await feed.stop()
