"""Scenario 8: 1000 connect / subscribe / disconnect cycles return FDs, tasks, threads and RSS to
baseline, and leave no connection, topic or upstream subscription behind."""

from __future__ import annotations

import asyncio
import gc
import json

import pytest
import websockets

from openalgo_proxy.brokers.market import NIFTY50
from tests.reliability.scenarios import Resources, resources
from tests.support import System, running_system, wait_for

pytestmark = pytest.mark.timing

CYCLES = 1000
WARMUP = 50


async def _cycle(url: str, i: int) -> None:
    symbol = NIFTY50[i % 20].symbol
    async with websockets.connect(url, open_timeout=5, close_timeout=2, compression=None) as ws:
        await ws.send(json.dumps({"action": "subscribe", "symbol": symbol, "exchange": "NSE", "mode": 1 + i % 3}))
        while True:  # the reply; a snapshot may follow it and is left unread on purpose
            reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
            if reply.get("type") == "subscription":
                assert reply["status"] == "success", reply
                break
        if i % 4 == 0:
            ws.transport.abort()  # every fourth client vanishes without a closing handshake


async def _settled(system: System) -> Resources:
    await wait_for(lambda: not system.proxy.connections, within=10)
    await wait_for(lambda: not system.proxy.hub.topics and not system.feed.table, within=10)
    await wait_for(lambda: not system.feed.upstream, within=10)
    gc.collect()
    return resources()


async def test_thousand_connect_subscribe_disconnect_cycles_leak_nothing() -> None:
    async with running_system(ticks_per_second=5) as system:
        for i in range(WARMUP):
            await _cycle(system.url, i)
        before = await _settled(system)
        async with asyncio.timeout(30):
            for i in range(CYCLES):
                await _cycle(system.url, i)
        after = await _settled(system)
        print(f"\nleak check over {CYCLES} cycles: before {before}; after {after}")
        assert after.fds <= before.fds + 2, (before, after)
        assert after.tasks <= before.tasks + 1, (before, after)
        assert after.threads <= before.threads, (before, after)
        assert after.rss - before.rss < 8 * 2**20, (before, after)
        assert system.proxy.metrics.disconnects[1006] >= CYCLES // 4  # the aborted ones were noticed
