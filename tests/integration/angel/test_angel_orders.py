"""Order updates: Angel's order-status socket feeds `#orders|angel|CLIENT` on the bus."""

from __future__ import annotations

import asyncio

import zmq
import zmq.asyncio

from openalgo_proxy import control, topics
from openalgo_proxy.brokers.angel.adapter import AngelAdapter
from openalgo_proxy.brokers.angel.orders import order_update
from openalgo_proxy.brokers.angel.simulator import AngelSimulator
from openalgo_proxy.feed import Feed
from tests.support import free_port, wait_for

ORDER = {
    "orderid": "250612000000123",
    "tradingsymbol": "SBIN-EQ",
    "symboltoken": "3045",
    "exchange": "NSE",
    "transactiontype": "SELL",
    "ordertype": "STOPLOSS_LIMIT",
    "producttype": "DELIVERY",
    "quantity": "5",
    "price": 960.5,
    "triggerprice": 961.0,
    "filledshares": "5",
    "unfilledshares": "0",
    "averageprice": 960.55,
    "status": "complete",
    "text": "",
}


def test_angel_fields_map_onto_the_openalgo_shape() -> None:
    message = {"user-id": "C1", "order-status": "AB03", "orderData": {**ORDER, "text": "RMS: margin"}}
    update = order_update(message, lambda etype, token: None)
    assert update is not None
    assert (update.order_status, update.rejection_reason, update.pricetype, update.product) == (
        "rejected",
        "RMS: margin",
        "SL",
        "CNC",
    )
    assert update.symbol == "SBIN-EQ"  # no instrument known: Angel's trading symbol
    assert order_update({"order-status": "AB00"}, lambda etype, token: None) is None  # the connect ack


async def test_order_status_event_is_published_on_the_bus() -> None:
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    async with AngelSimulator(ticks_per_second=0, seed=3) as sim:
        adapter = AngelAdapter(sim.feed_options(), sim.credentials(), backoff_base=0.05, backoff_cap=0.2)
        feed = Feed(adapter, endpoint, orders=True)
        ctx = zmq.asyncio.Context()
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.SUBSCRIBE, topics.ORDERS_PREFIX)
        await feed.start()
        try:
            sub.connect(endpoint)
            await wait_for(lambda: len(sim.order_sockets) == 1)
            assert sim.connection_count == 0  # the order socket is not one of the market-data connections
            async with asyncio.timeout(10):
                frames: list[bytes] = []
                while not frames:
                    await sim.publish_order("AB05", ORDER)  # until the SUB's subscription has arrived
                    if await sub.poll(200):
                        frames = await sub.recv_multipart()
            topic, _seq, data = frames
            assert topic == topics.orders_topic("angel", sim.client_code)
            event = control.decode_order_update(data)
            assert (event.orderid, event.order_status, event.symbol, event.exchange) == (
                "250612000000123",
                "complete",
                "SBIN",
                "NSE",
            )
            assert (event.action, event.pricetype, event.product, event.quantity) == ("SELL", "SL", "CNC", 5)
            assert (event.filled_quantity, event.average_price, event.broker) == (5, 960.55, "angel")
        finally:
            sub.close(0)
            ctx.term()
            await feed.stop()
