from __future__ import annotations

from tests.support import System, client


async def test_subscribe_receives_snapshot_then_ticks(system: System) -> None:
    async with client(system.url) as c:
        reply = await c.reply({"action": "subscribe", "symbol": "RELIANCE", "exchange": "NSE", "mode": 2})
        assert reply["type"] == "subscription" and reply["status"] == "success"
        first = await c.market_data()
        second = await c.market_data()
        assert first["symbol"] == "RELIANCE" and first["mode"] == 2
        assert second["seq"] > first["seq"]
