"""Nothing is sent before the login is acknowledged (`ak`/`ck`/`cf`): a raw server holds the ack back."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from websockets.asyncio.server import ServerConnection, serve

from openalgo_proxy.brokers.base import FeedOptions
from openalgo_proxy.brokers.noren.adapter import NorenAdapter
from openalgo_proxy.brokers.noren.credentials import NorenCredentials
from openalgo_proxy.model import Mode

from ...support import wait_for
from .conftest import Collector

pytestmark = pytest.mark.timeout(20)
FIXTURES = Path(__file__).parents[2] / "fixtures" / "noren"


@pytest.mark.parametrize(("broker", "ack"), [("zebu", {"t": "ak", "s": "OK"}), ("aliceblue", {"t": "cf", "k": "OK"})])
async def test_requests_wait_for_the_login_acknowledgement(broker: str, ack: dict[str, str]) -> None:
    before_ack: list[str] = []
    after_ack: list[str] = []
    acked = asyncio.Event()

    async def handler(ws: ServerConnection) -> None:
        login = json.loads(await ws.recv())
        assert login["t"] in ("a", "c")
        try:  # a client that does not wait would send its subscription now
            before_ack.append(str(await asyncio.wait_for(ws.recv(), 0.5)))
        except TimeoutError:
            pass
        await ws.send(json.dumps(ack))
        acked.set()
        async for message in ws:
            after_ack.append(str(message))

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        options = FeedOptions(ws_url=f"ws://127.0.0.1:{port}/", instruments=str(FIXTURES))
        adapter = NorenAdapter(options, broker, NorenCredentials("U1", "tok"), backoff_base=0.05)
        seen = Collector()
        await adapter.start(seen.on_tick, seen.on_reject)
        try:
            reliance = adapter.lookup("NSE", "RELIANCE")
            assert reliance is not None
            await adapter.set_wanted({reliance: Mode.QUOTE})
            await wait_for(lambda: any('"t":"t"' in m for m in after_ack))
        finally:
            await adapter.stop()
    assert acked.is_set() and before_ack == []
    assert '{"t":"t","k":"NSE|2885"}' in after_ack
