"""The startup race: until a feed's instrument list has reached the proxy, subscribing to its
exchanges is BROKER_UNAVAILABLE (retryable), never SYMBOL_NOT_FOUND, and /readyz is not ready."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import zmq

from openalgo_proxy import topics
from openalgo_proxy.bus import SEQ
from openalgo_proxy.config import AuthSettings, ProxySettings
from openalgo_proxy.proxy.server import ProxyServer
from tests.support import client, free_port, wait_for

STATUS = {
    "broker": "slowfeed",
    "state": "connected",
    "connections": 1,
    "subscriptions": 0,
    "topics": 0,
    "reconnects": 0,
    "last_tick_age": -1,
    "exchanges": ["NSE"],
    "instance": "1-test",
}
DIRECTORY = {"broker": "slowfeed", "exchanges": ["NSE"], "symbols": {"NSE": ["INFY"]}}


class SlowFeed:
    """A feed on a raw XPUB that announces itself but ignores the first requests for its instrument
    list (as if it was published before the proxy connected, or dropped on the way)."""

    def __init__(self, ctx: zmq.Context[zmq.Socket[bytes]], endpoint: str, ignore_first: int) -> None:
        self.sock = ctx.socket(zmq.XPUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.XPUB_VERBOSE, 1)
        self.sock.bind(endpoint)
        self.ignore = ignore_first
        self.asked = 0
        self.seq = 0

    def publish(self, topic: bytes, payload: dict[str, Any]) -> None:
        self.seq += 1
        self.sock.send_multipart([topic, SEQ.pack(self.seq), json.dumps(payload).encode()])

    async def serve(self) -> None:
        next_status = 0.0
        while True:
            while self.sock.poll(0):
                msg = self.sock.recv()
                if msg[:1] == b"\x01" and msg[1:].startswith(topics.INSTRUMENTS_PREFIX):
                    self.asked += 1
                    if self.asked > self.ignore:
                        self.publish(topics.instruments_topic("slowfeed"), DIRECTORY)
            if time.monotonic() >= next_status:
                self.publish(topics.status_topic("slowfeed"), {**STATUS, "time": int(time.time() * 1000)})
                next_status = time.monotonic() + 0.2
            await asyncio.sleep(0.02)


async def _readyz(port: int) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n" % port)
    await writer.drain()
    head = await asyncio.wait_for(reader.readline(), 5)
    writer.close()
    return int(head.split()[1])


async def test_subscribe_is_retryable_and_not_ready_until_the_instrument_list_arrives() -> None:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    bus = f"tcp://127.0.0.1:{free_port()}"
    feed = SlowFeed(ctx, bus, ignore_first=3)  # the proxy asks at most once a second: >= 2 s without a list
    serving = asyncio.ensure_future(feed.serve())
    server = ProxyServer(ProxySettings.model_validate({"port": 0, "bus": [bus]}), AuthSettings(), ctx=ctx)
    await server.start()
    try:
        await wait_for(lambda: "slowfeed" in server.hub.directory.status, within=10)
        async with client(f"ws://127.0.0.1:{server.port}") as c:
            reply = await c.reply({"action": "subscribe", "symbol": "INFY", "exchange": "NSE", "mode": 1})
            (entry,) = reply["subscriptions"]
            assert entry["code"] == "BROKER_UNAVAILABLE", reply  # retryable, not SYMBOL_NOT_FOUND
            assert await _readyz(server.port) == 503
            await wait_for(lambda: feed.asked >= 4, within=10)  # the proxy kept asking by itself
            await wait_for(lambda: bool(server.hub.directory.symbols), within=10)
            assert await _readyz(server.port) == 200
            reply = await c.reply({"action": "subscribe", "symbol": "INFY", "exchange": "NSE", "mode": 1})
            assert reply["status"] == "success", reply
            reply = await c.reply({"action": "subscribe", "symbol": "NOPE", "exchange": "NSE", "mode": 1})
            assert reply["subscriptions"][0]["code"] == "SYMBOL_NOT_FOUND"
    finally:
        await server.stop(within=2.0)
        serving.cancel()
        feed.sock.close()
        ctx.term()
