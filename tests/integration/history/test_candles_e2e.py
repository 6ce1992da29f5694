"""Candles end to end: a real feed (simulated market), the candle service and the proxy on real
sockets; clients subscribe candles, get history then live candles, each completed candle once; the
service holds the tick topic only while someone wants candles."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import zmq

from openalgo_proxy import topics
from openalgo_proxy.brokers.base import FeedOptions
from openalgo_proxy.brokers.simulated.adapter import SimulatedAdapter
from openalgo_proxy.config import AuthSettings, LimitSettings, ProxySettings, TlsSettings
from openalgo_proxy.feed import Feed
from openalgo_proxy.history.candle_service import CandleService
from openalgo_proxy.history.sessions import WHOLE_DAY
from openalgo_proxy.model import Mode
from openalgo_proxy.proxy.server import ProxyServer
from tests.support import Client, client, free_port, wait_for

REQUEST = {"action": "subscribe_candles", "symbol": "RELIANCE", "exchange": "NSE", "interval": "1m"}


@dataclass
class Clock:
    offset: float = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@dataclass
class CandleSystem:
    url: str
    service: CandleService
    clock: Clock


@contextlib.asynccontextmanager
async def candle_system(dialect: str = "seed") -> AsyncIterator[CandleSystem]:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    feed_bus, candle_bus = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    feed = Feed(SimulatedAdapter(FeedOptions(ticks_per_second=40, seed=3)), feed_bus, status_interval=0.5, ctx=ctx)
    clock = Clock()
    service = CandleService(
        candle_bus, [feed_bus], history=50, conflate=0.05, clock=clock, session_for=lambda _: WHOLE_DAY, ctx=ctx
    )
    cfg = ProxySettings.model_validate({"port": 0, "bus": [feed_bus, candle_bus], "dialect": dialect})
    proxy = ProxyServer(
        cfg,
        AuthSettings.model_validate({}),
        ctx=ctx,
        limits=LimitSettings.model_validate({}),
        tls=TlsSettings.model_validate({}),
    )
    await feed.start()
    await service.start()
    await proxy.start()
    try:
        await wait_for(lambda: proxy.ready()[0], within=20)
        yield CandleSystem(f"ws://127.0.0.1:{proxy.port}", service, clock)
    finally:
        await proxy.stop(within=2.0)
        await service.stop()
        await feed.stop()
        ctx.term()


async def candle(c: Client, within: float = 10.0, **match: Any) -> dict[str, Any]:
    while True:
        msg = await c.recv(within)
        if msg.get("type") != "candle":
            continue
        if all(msg.get(k) == v or msg["data"].get(k) == v for k, v in match.items()):
            return msg


@pytest.mark.parametrize("dialect", ["seed", "openalgo"])
async def test_candles_history_then_live_completed_once_and_released(dialect: str) -> None:
    key = "action" if dialect == "seed" else "type"  # the OpenAlgo dialect names the action `type`
    request = {key: "subscribe_candles", **{k: v for k, v in REQUEST.items() if k != "action"}}
    async with candle_system(dialect) as system, client(system.url) as a:
        reply = await a.reply(request)
        assert reply["type"] == "candle_subscription" and reply["status"] == "success", reply
        forming = await candle(a, completed=False)
        assert forming["topic"] == "RELIANCE.NSE" and forming["interval"] == "1m"
        data = forming["data"]
        assert data["low"] <= data["open"] <= data["high"] and data["end"] - data["start"] <= 60_000
        start = data["start"]
        system.clock.offset = 120.0  # the interval clock passes the candle's end
        done = await candle(a, completed=True)
        assert done["data"]["start"] == start and "snapshot" not in done
        tick_topic = topics.bus_topic("NSE", "RELIANCE", Mode.QUOTE)
        assert system.service.tick_topics == {tick_topic}

        async with client(system.url) as b:  # joins later on the same proxy: history first
            await b.send(request)
            first = await candle(b, completed=True)
            assert first["snapshot"] is True and first["data"] == done["data"]

        later = []
        with contextlib.suppress(TimeoutError):
            while True:
                later.append(await candle(a, within=0.5))
        assert all(m["data"]["start"] != start or not m["data"]["completed"] for m in later)  # completed once

        assert (await a.reply({**request, key: "unsubscribe_candles"}))["status"] == "success"
        await wait_for(lambda: not system.service.tick_topics and not system.service.series, within=10)

        async with client(system.url) as c:  # a new subscription: the service's history burst
            await c.send(request)
            again = await candle(c, completed=True)
            assert again["snapshot"] is True and again["data"] == done["data"]
            assert system.service.tick_topics == {tick_topic}
