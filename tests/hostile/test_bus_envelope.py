"""Finding 7, the proxy side: the proxy splices a bus frame's `data` into the client envelope
without decoding it, so a forged `data` such as `{}, "type":"error"` must not be able to change
the message's `type` (or any envelope key). Defence in depth: with the bus secured (ipc:// in a
private directory, CURVE on TCP) a forged publisher should not be on the bus in the first place.

A publisher of our own plays the feed (plain ZeroMQ, as docs/bus.md describes the frames)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator

import pytest
import zmq

from openalgo_proxy.config import ProxySettings
from openalgo_proxy.proxy.server import ProxyServer
from tests.support import client, free_port, wait_for

pytestmark = pytest.mark.timing

TOPIC = b"NSE|RELIANCE|1"
GOOD = b'{"symbol":"RELIANCE","exchange":"NSE","ltp":2500.0,"ltt":0,"timestamp":"2026-01-01T09:15:00+05:30"}'
FORGED = [
    b'{}, "type":"error", "code":"FORGED"',
    b'{"ltp":1.23}, "type":"error"',
    b'{}, "topic":"FORGED.NSE", "symbol":"FORGED", "seq":1',
    b'{}}, {"type":"error"',
    b"[1,2,3]",
    b'"a string"',
    b"",
]


@contextlib.asynccontextmanager
async def proxy_behind_a_forger() -> AsyncIterator[tuple[ProxyServer, zmq.Socket[bytes]]]:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    pub = ctx.socket(zmq.XPUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.bind(endpoint)
    server = ProxyServer(ProxySettings.model_validate({"port": 0, "bus": [endpoint]}), ctx=ctx)
    await server.start()
    seq = 1

    def control(topic: bytes, payload: object) -> None:
        nonlocal seq
        seq += 1
        pub.send_multipart([topic, seq.to_bytes(8, "big"), json.dumps(payload).encode()])

    async def announce() -> None:
        while True:
            control(
                b"#instruments|forger", {"broker": "forger", "exchanges": ["NSE"], "symbols": {"NSE": ["RELIANCE"]}}
            )
            control(
                b"#status|forger",
                {"broker": "forger", "state": "connected", "exchanges": ["NSE"], "last_tick_age": 0.1,
                 "connections": 1, "subscriptions": 1, "topics": 1, "reconnects": 0,
                 "time": int(time.time() * 1000)},  # every field docs/bus.md requires of a status
            )  # fmt: skip
            await asyncio.sleep(0.2)

    announcer = asyncio.ensure_future(announce())
    try:
        await wait_for(lambda: server.ready()[0], within=10)
        yield server, pub
    finally:
        announcer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await announcer
        await server.stop(within=2.0)
        pub.close(linger=0)
        ctx.term()


async def test_forged_data_cannot_change_the_envelope() -> None:
    async with proxy_behind_a_forger() as (server, pub), client(f"ws://127.0.0.1:{server.port}") as c:
        reply = await c.reply({"action": "subscribe", "symbol": "RELIANCE", "exchange": "NSE", "mode": 1})
        assert reply["status"] == "success", reply
        seq = 2**40
        for data in [*FORGED, GOOD]:
            seq += 1
            pub.send_multipart([TOPIC, seq.to_bytes(8, "big"), data])
        received: list[dict[str, object]] = []
        while True:
            raw = await asyncio.wait_for(c.ws.recv(), 5)
            try:
                msg = json.loads(raw)
            except ValueError:
                continue  # an unparseable message changes nothing; better never sent, but not a forgery
            received.append(msg)
            if isinstance(msg, dict) and msg.get("data") == json.loads(GOOD):
                break
        for msg in received:
            assert isinstance(msg, dict)
            assert msg.get("type") == "market_data", f"a forged data changed the envelope: {msg}"
            assert (msg.get("topic"), msg.get("symbol")) == ("RELIANCE.NSE", "RELIANCE"), msg
            assert isinstance(msg.get("data"), dict), msg
        assert (await c.reply({"action": "ping"}))["type"] == "pong"
