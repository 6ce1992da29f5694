"""Order updates: the `o` subscription, `om` messages -> OpenAlgo `order_update` events (control.OrderUpdate)."""

from __future__ import annotations

import json

import msgspec
import pytest

from openalgo_proxy.brokers.noren.simulator import NorenSimulator
from openalgo_proxy.control import OrderUpdate

from ...support import wait_for
from .conftest import Collector, make_adapter

pytestmark = pytest.mark.timeout(30)

OM = {
    "norenordno": "24120600000777", "uid": "FA12345", "actid": "FA12345", "exch": "NSE", "tsym": "RELIANCE-EQ",
    "trantype": "S", "qty": "20", "prc": "0.00", "trgprc": "1470.00", "prctyp": "SL-MKT", "prd": "C",
    "status": "TRIGGER_PENDING", "fillshares": "5", "avgprc": "1471.10", "rejreason": "",
}  # fmt: skip


@pytest.mark.parametrize("broker", ["shoonya", "tradesmart", "aliceblue"])
async def test_order_updates_reach_the_order_sink_as_openalgo_order_update(broker: str) -> None:
    async with NorenSimulator(broker=broker, ticks_per_second=5.0) as sim:
        adapter = make_adapter(sim)
        seen = Collector()
        adapter.set_order_sink(seen.on_order)
        await adapter.start(seen.on_tick, seen.on_reject)
        try:
            await wait_for(lambda: any(getattr(c, "orders", False) for c in sim.clients.values()))
            ident = next(iter(sim.clients))
            requests = [json.loads(t) for t in sim.received_from(ident)]
            order_requests = [r for r in requests if r["t"] == "o"]
            if broker == "tradesmart":  # pushes order updates without a request
                assert order_requests == []
            else:
                uid = sim.user_id + ("_API" if broker == "aliceblue" else "")
                assert order_requests == [{"t": "o", "actid": uid}]
            await sim.push_order(OM)
            await wait_for(lambda: len(seen.orders) == 1)
        finally:
            await adapter.stop()
    event = seen.orders[0]
    typed = msgspec.json.decode(msgspec.json.encode(event), type=OrderUpdate)
    assert list(event) == list(OrderUpdate.__struct_fields__)
    assert typed == OrderUpdate(
        user_id="FA12345", mode="live", broker=broker, orderid="24120600000777", symbol="RELIANCE", exchange="NSE",
        action="SELL", quantity=20, price=0.0, trigger_price=1470.0, pricetype="SL-M", product="CNC",
        order_status="trigger pending", filled_quantity=5, pending_quantity=15, average_price=1471.1,
        rejection_reason="",
    )  # fmt: skip
