"""Order updates from the Dhan simulator's order-update socket through the adapter's order path."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from openalgo_proxy.control import decode_order_update
from tests.integration.dhan.conftest import until
from tests.unit.dhan.test_dhan_orders import TRADED

pytestmark = pytest.mark.timeout(60)


async def test_order_alerts_reach_the_order_sink_and_survive_a_reconnect(harness: Any) -> None:
    h = await harness({"ticks_per_second": 0})
    events: list[Any] = []
    async with asyncio.timeout(15):
        h.adapter.set_order_sink(events.append)
        await until(lambda: len(h.sim.order_logins) == 1, what="order-socket login")
        assert h.sim.order_logins[0] == {
            "LoginReq": {"MsgCode": 42, "ClientId": h.sim.client_id, "Token": h.sim.access_token},
            "UserType": "SELF",
        }
        assert await h.sim.push_order(TRADED) == 1
        await until(lambda: len(events) == 1, what="the order event")
        update = decode_order_update(json.dumps(events[0]).encode())
        assert (update.orderid, update.symbol, update.exchange, update.order_status) == (
            "112512090001",
            "RELIANCE",
            "NSE",
            "complete",
        )
        h.sim.drop_connections()
        await until(lambda: len(h.sim.order_logins) == 2, what="login again after a drop")
        await h.sim.push_order({**TRADED, "OrderNo": "2", "Status": "Rejected", "ReasonDescription": "RMS"})
        await until(lambda: len(events) == 2, what="the second event")
    assert events[1]["order_status"] == "rejected" and events[1]["rejection_reason"] == "RMS"
    assert h.adapter.status().extra["order_alerts"] == 2
